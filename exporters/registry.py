"""The collector registry: collectors register by name; flags and health metrics derive from that name.

A collector is a class with a `name`, the agents it is on by default for, its options, an
`available()` check run once at start-up, and `collect()` that yields prometheus_client metric
families built fresh per scrape. Snapshot collectors also return their background `sources()`.
Collectors are found, not listed: every `hpcwatch.exporters.<source>` package with a `collector`
module is imported, and importing it registers its collectors.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import logging
import pkgutil
import types
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from hpcwatch.exporters import options as opt
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:
    from hpcwatch.exporters.jobcap import JobCap

log = logging.getLogger("hpcwatch.registry")

AGENTS = ("node", "cluster")
EXPORTERS_PACKAGE = "hpcwatch.exporters"


@dataclasses.dataclass(frozen=True)
class Option:
    """One `--collector.<name>.<option>` flag: its name, typed default, help and value type.

    `type` parses the flag's text into the typed value (raising ValueError with what was expected);
    `bool` makes a `--[no-]collector.<name>.<option>` switch. `default` is already typed.
    """

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    choices: Sequence[str] | None = None
    format: Callable[[Any], str] | None = None  # how the default reads in --help (default: opt.show)

    def parse(self, value: Any) -> Any:
        """A value from a flag or from code: text goes through `type`; typed values are kept as they are."""
        if not isinstance(value, str):
            return value
        parsed = opt.boolean(value) if self.type is bool else self.type(value)
        if self.choices and parsed not in self.choices:
            raise ValueError(f"{value!r} is not one of {', '.join(self.choices)}")
        return parsed

    def shown_default(self) -> str:
        if self.format is not None:
            return self.format(self.default)
        if self.type is opt.duration:
            return opt.format_duration(self.default)
        return opt.show(self.default)


@dataclasses.dataclass(frozen=True)
class Paths:
    """Roots every file-reading collector resolves against, so tests can point them at fixture trees."""

    procfs: str = "/proc"
    sysfs: str = "/sys"
    rootfs: str = "/"

    def proc(self, *parts: str) -> str:
        return "/".join((self.procfs.rstrip("/"),) + parts)

    def sys(self, *parts: str) -> str:
        return "/".join((self.sysfs.rstrip("/"),) + parts)

    def root(self, path: str) -> str:
        """Map an absolute host path (e.g. a mount point) under --path.rootfs."""
        if self.rootfs in ("", "/"):
            return path
        return self.rootfs.rstrip("/") + "/" + path.lstrip("/")


@dataclasses.dataclass(frozen=True)
class CollectorContext:
    """What a collector gets at construction: paths, every one of its options (typed), and the agent."""

    paths: Paths = Paths()
    options: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    agent: str = "node"

    def option(self, name: str) -> Any:
        try:
            return self.options[name]
        except KeyError:
            raise KeyError(f"option {name!r} is not in this context (known: {', '.join(self.options)})") from None

    @classmethod
    def of(cls, collector: type[Collector], paths: Paths = Paths(), agent: str = "node",
           **options: Any) -> CollectorContext:
        """A complete context for `collector`: its declared defaults, overridden by `options`
        (text is parsed as the flag would be; unknown names raise ValueError)."""
        return cls(paths=paths, options=resolve_options(collector, options), agent=agent)


def resolve_options(collector: type[Collector], given: Mapping[str, Any]) -> Mapping[str, Any]:
    """Every option of `collector`, typed: defaults overridden by `given` (text parsed, names checked)."""
    declared = {o.name: o for o in collector.options}
    unknown = sorted(set(given) - set(declared))
    if unknown:
        raise ValueError(f"collector {collector.name}: unknown option(s) {', '.join(unknown)} "
                         f"(known: {', '.join(declared) or 'none'})")
    out: dict[str, Any] = {}
    for name, o in declared.items():
        if name not in given:
            out[name] = o.default
            continue
        try:
            out[name] = o.parse(given[name])
        except ValueError as exc:
            raise ValueError(f"--collector.{collector.name}.{name}: {exc}") from None
    return types.MappingProxyType(out)


class Collector:
    """Base class: subclasses set `name`, `help`, `default_agents`, `options` and implement `collect()`."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    kind: ClassVar[str] = "live"  # "live" or "snapshot"
    default_agents: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[Sequence[Option]] = ()
    job_cap: JobCap | None = None  # per-job collectors: their --collector.<name>.max-jobs cap (jobcap.py)

    def __init__(self, ctx: CollectorContext) -> None:
        missing = [o.name for o in self.options if o.name not in ctx.options]
        if missing:
            raise ValueError(f"collector {self.name}: context lacks option(s) {', '.join(missing)}; "
                             "build it with CollectorContext.of()")
        self.ctx = ctx

    def available(self) -> str | None:
        """None when this host has the source; otherwise why it is skipped (one log line at start-up)."""
        return None

    def sources(self) -> Sequence[Any]:
        """Background snapshot sources this collector owns (started and stopped by the server)."""
        return ()

    def collect(self) -> Iterable[Metric]:
        raise NotImplementedError

    def close(self) -> None:
        """Release what the collector holds (threads, handles); called once at shutdown."""


class CollectorUnavailable(RuntimeError):
    """Raised on every scrape by the stand-in of a requested collector that cannot run here."""


class UnavailableCollector(Collector):
    """Stands in for a collector that was asked for but cannot run (source absent or start-up failed):
    each scrape reports it with `hpcwatch_collector_success 0`, so the collector alert fires."""

    def __init__(self, name: str, reason: str) -> None:
        super().__init__(CollectorContext())
        self.name = name  # type: ignore[misc]  # the instance reports under the requested collector's name
        self.reason = reason

    def collect(self) -> Iterable[Metric]:
        raise CollectorUnavailable(f"cannot run: {self.reason}")


_REGISTRY: dict[str, type[Collector]] = {}


def register(cls: type[Collector]) -> type[Collector]:
    """Class decorator: add a collector under its `name`. Names are flag names, so they are checked."""
    name = cls.name
    if not name or not name.replace("_", "").isalnum() or not name.islower():
        raise ValueError(f"collector name {name!r} must be lower-case letters, digits and underscores")
    if name in _REGISTRY and _REGISTRY[name] is not cls:
        raise ValueError(f"collector {name!r} registered twice")
    unknown = set(cls.default_agents) - set(AGENTS)
    if unknown:
        raise ValueError(f"collector {name!r}: unknown agents {sorted(unknown)}")
    seen = set()
    for o in cls.options:
        if o.name in seen:
            raise ValueError(f"collector {name!r}: option {o.name!r} declared twice")
        seen.add(o.name)
    _REGISTRY[name] = cls
    return cls


def collector_modules() -> list[str]:
    """`hpcwatch.exporters.<pkg>.collector` of every source package that has one, sorted."""
    package = importlib.import_module(EXPORTERS_PACKAGE)
    found = []
    for info in pkgutil.iter_modules(package.__path__):
        if not info.ispkg:
            continue
        module = f"{EXPORTERS_PACKAGE}.{info.name}.collector"
        if importlib.util.find_spec(module) is not None:
            found.append(module)
    return sorted(found)


def load_all() -> dict[str, type[Collector]]:
    """Import every source package's collector module and return the registry, sorted by name."""
    for module in collector_modules():
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))
