"""Family specs as data: every family a collector exports is declared once, as a row of its table
(name, type, help, labels), and built from that row on each scrape.

The tables are what docs, hpcwatch/metric_names.py and tests check against (tests/unit/
test_family_specs.py): a family a collector renders but does not declare, or declares differently,
fails the suite. A name with `{field}` placeholders declares a set of families built from data
(e.g. one gauge per /proc/meminfo field); `FamilySpec.new(field=...)` fills it in.
"""

from __future__ import annotations

import dataclasses
import functools
import re
import string
from collections.abc import Iterable, Iterator, Mapping

from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    UnknownMetricFamily,
)
from prometheus_client.metrics_core import Metric

TYPES = {"counter": CounterMetricFamily, "gauge": GaugeMetricFamily, "histogram": HistogramMetricFamily,
         "gaugehistogram": GaugeHistogramMetricFamily, "unknown": UnknownMetricFamily}
_NAME = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")


@dataclasses.dataclass(frozen=True)
class FamilySpec:
    """One family: its exposed name (counters end in `_total`), type, HELP and label names."""

    name: str
    type: str
    help: str
    labels: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.type not in TYPES:
            raise ValueError(f"{self.name}: unknown family type {self.type!r}")
        if (self.type == "counter") != self.name.endswith("_total"):
            raise ValueError(f"{self.name}: counters, and only counters, end in _total")
        if not _NAME.fullmatch(self.name.replace("{", "").replace("}", "")):
            raise ValueError(f"{self.name!r} is not a metric name")
        if not self.help or any(not _NAME.fullmatch(label) for label in self.labels):
            raise ValueError(f"{self.name}: needs a HELP text and valid label names")

    @functools.cached_property  # a frozen spec's name never changes; matches() runs per lookup
    def fields(self) -> tuple[str, ...]:
        """The `{placeholders}` of a templated name, () for a plain one."""
        return tuple(f for _, f, _, _ in string.Formatter().parse(self.name) if f)

    def exposed(self, **fields: str) -> str:
        return self.name.format(**fields) if fields else self.name

    @functools.cached_property
    def _pattern(self) -> re.Pattern[str]:
        """A templated name as a regexp (a plain name matches only itself)."""
        return re.compile("".join(re.escape(text) + ("[a-zA-Z0-9_]+" if f else "")
                                  for text, f, _, _ in string.Formatter().parse(self.name)))

    def matches(self, name: str) -> bool:
        """True when `name` is this family (or, for a template, one of its family set)."""
        if not self.fields:
            return name == self.name
        return self._pattern.fullmatch(name) is not None

    def new(self, help: str | None = None, **fields: str) -> Metric:  # noqa: A002 - prometheus' own word
        """An empty prometheus_client family for this spec, for one scrape's samples."""
        return self.new_as(self.exposed(**fields), help)

    def new_as(self, exposed: str, help: str | None = None) -> Metric:  # noqa: A002
        """`new` for an exposed name already known to be of this spec (e.g. found with FamilyTable.spec_of):
        no template to fill in on a scrape's hot path."""
        name = exposed.removesuffix("_total") if self.type == "counter" else exposed
        return TYPES[self.type](name, help or self.help, labels=self.labels)

    def value(self, value: float, help: str | None = None, **fields: str) -> Metric:  # noqa: A002
        """A family of this label-less spec holding one sample."""
        fam = self.new(help, **fields)
        fam.add_metric([], value)
        return fam


class FamilyTable(Mapping[str, FamilySpec]):
    """A collector's families by name, in declaration order; names are checked unique. `passthrough`:
    the collector also serves families named by its input (textfile), which no table can list."""

    def __init__(self, specs: Iterable[FamilySpec] = (), passthrough: bool = False) -> None:
        self.passthrough = passthrough
        self._specs: dict[str, FamilySpec] = {}
        for spec in specs:
            if spec.name in self._specs:
                raise ValueError(f"family {spec.name} declared twice")
            self._specs[spec.name] = spec

    def __getitem__(self, name: str) -> FamilySpec:
        return self._specs[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def __add__(self, other: Iterable[FamilySpec]) -> FamilyTable:
        return FamilyTable([*self.values(), *(other.values() if isinstance(other, FamilyTable) else other)],
                           self.passthrough)

    def new(self, name: str, help: str | None = None, **fields: str) -> Metric:  # noqa: A002
        """An empty family of the spec `name` (see FamilySpec.new)."""
        return self._specs[name].new(help, **fields)

    def spec_of(self, exposed: str) -> FamilySpec | None:
        """The spec an exposed family name belongs to (templates included), or None."""
        spec = self._specs.get(exposed)
        if spec is not None:
            return spec
        return next((s for s in self._specs.values() if s.fields and s.matches(exposed)), None)


def counter(name: str, help: str, *labels: str) -> FamilySpec:  # noqa: A002
    return FamilySpec(name, "counter", help, labels)


def gauge(name: str, help: str, *labels: str) -> FamilySpec:  # noqa: A002
    return FamilySpec(name, "gauge", help, labels)


def histogram(name: str, help: str, *labels: str) -> FamilySpec:  # noqa: A002
    return FamilySpec(name, "histogram", help, labels)
