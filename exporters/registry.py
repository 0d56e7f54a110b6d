"""The collector registry: collectors register by name; flags and health metrics derive from that name.

A collector is a class with a `name`, the agents it is on by default for, its options, an
`available()` check run once at start-up, and `collect()` that yields prometheus_client metric
families built fresh per scrape. Snapshot collectors also return their background `sources()`.
"""

from __future__ import annotations

import dataclasses
import importlib
import logging
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.registry")

AGENTS = ("node", "cluster")

# Modules that define collectors; importing one registers its collectors.
COLLECTOR_MODULES = (
    "hpcwatch.exporters.node",
    "hpcwatch.exporters.jobs",
    "hpcwatch.exporters.slurm",
    "hpcwatch.exporters.flux",
    "hpcwatch.exporters.gpu",
    "hpcwatch.exporters.energy",
    "hpcwatch.exporters.fabric",
    "hpcwatch.exporters.fabric_switches",
    "hpcwatch.exporters.lustre",
    "hpcwatch.exporters.gpfs",
    "hpcwatch.exporters.nfs",
    "hpcwatch.exporters.beegfs",
)


@dataclasses.dataclass(frozen=True)
class Option:
    """One `--collector.<name>.<option>` flag: its name, parser, default and help."""

    name: str
    default: Any
    help: str
    type: Callable[[str], Any] = str
    choices: Sequence[str] | None = None


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
    """What a collector gets at construction: paths, its own options, and the agent it runs in."""

    paths: Paths = Paths()
    options: dict[str, Any] = dataclasses.field(default_factory=dict)
    agent: str = "node"

    def option(self, name: str) -> Any:
        return self.options[name]


class Collector:
    """Base class: subclasses set `name`, `help`, `default_agents`, `options` and implement `collect()`."""

    name: ClassVar[str] = ""
    help: ClassVar[str] = ""
    kind: ClassVar[str] = "live"  # "live" or "snapshot"
    default_agents: ClassVar[frozenset[str]] = frozenset()
    options: ClassVar[Sequence[Option]] = ()

    def __init__(self, ctx: CollectorContext) -> None:
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

    @classmethod
    def doc_examples(cls, repo: str) -> Sequence[Collector]:
        """Instances on the repository's fixture trees, rendered to generate docs/metrics.md."""
        return ()


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
    _REGISTRY[name] = cls
    return cls


def load_all() -> dict[str, type[Collector]]:
    """Import every collector module and return the registry, sorted by name."""
    for module in COLLECTOR_MODULES:
        importlib.import_module(module)
    return dict(sorted(_REGISTRY.items()))


def collectors() -> dict[str, type[Collector]]:
    return load_all()
