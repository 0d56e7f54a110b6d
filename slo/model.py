"""The validated, immutable SLO model every generator reads (and the dashboards and history engines reuse)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from hpcwatch.slo.windows import AlertWindows, BurnWindow


def frozen_map(d: Mapping | None) -> Mapping:
    return MappingProxyType(dict(sorted((d or {}).items())))


@dataclasses.dataclass(frozen=True)
class EventsSLI:
    """error / total events; both queries hold `{{.window}}`."""

    error_query: str
    total_query: str


@dataclasses.dataclass(frozen=True)
class RawSLI:
    """An error ratio (0..1) computed by the query itself; holds `{{.window}}`."""

    error_ratio_query: str


@dataclasses.dataclass(frozen=True)
class AlertMeta:
    """Name, labels and annotations of one generated alert (page or ticket)."""

    name: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))


@dataclasses.dataclass(frozen=True)
class BurnRateAlert:
    """One OpenSLO burn-rate alert condition: the error ratio over `window_s`, divided by the budget,
    compared with `op` to `threshold`, held for `for_s` seconds."""

    name: str
    severity: str
    op: str
    threshold: float
    window_s: int
    for_s: int = 0
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))
    no_data: bool = False


@dataclasses.dataclass(frozen=True)
class Calendar:
    """A calendar-aligned period: the budget resets at every boundary. `index_expr` is a PromQL vector
    expression of `time()` that increases by one at each boundary, `elapsed_expr` the fraction of the
    current period gone by; `max_s` is the longest period."""

    duration: str
    index_expr: str
    elapsed_expr: str
    max_s: int


@dataclasses.dataclass(frozen=True)
class GroupIntervals:
    """Optional evaluation interval per rule group, seconds (Sloth's `interval: {all, slierror, ...}`)."""

    sli: int | None = None
    meta: int | None = None
    alerts: int | None = None


@dataclasses.dataclass(frozen=True)
class PluginCall:
    """One Sloth SLO plugin in an SLO's chain, its config already checked."""

    id: str
    config: Mapping = dataclasses.field(default_factory=lambda: frozen_map({}))
    priority: int = 0


@dataclasses.dataclass(frozen=True)
class SpecObject:
    """The input object (one YAML document or list item) SLOs came from: Sloth writes one output
    document per object, and a CRD's metadata becomes its PrometheusRule's."""

    file: str
    index: int = 0
    kind: str = "prometheus/v1"
    name: str | None = None
    namespace: str | None = None
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))
    annotations: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))


@dataclasses.dataclass(frozen=True)
class SLO:
    """One service level objective, ready for the generators.

    `objective` is a percentage (99.9); `windows` carries the alert windows and burn-rate factors for
    `period_s`; `min_events`, when set, makes every alert need that many events in its long window.
    `events_per_second` says the total query is a rate (events = value x window seconds).
    `inputs` are (record, expr) recording rules the SLI queries read (a catalogue SLI whose per-sample
    condition PromQL cannot count over a window without them), written in a group of their own.
    """

    id: str
    name: str
    service: str
    objective: float
    period_s: int
    sli: EventsSLI | RawSLI
    windows: AlertWindows
    labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))
    info_labels: Mapping[str, str] = dataclasses.field(default_factory=lambda: frozen_map({}))
    description: str = ""
    page_alert: AlertMeta | None = None
    ticket_alert: AlertMeta | None = None
    min_events: int | None = None
    events_per_second: bool = False
    low_traffic: bool = False
    intervals: GroupIntervals = GroupIntervals()
    source: str = "<input>"
    spec: str = "prometheus/v1"
    mode: str = "cli-gen-prom"
    origin: SpecObject | None = None
    plugins: tuple[PluginCall, ...] = ()
    override_plugins: bool = False
    burn_alerts: tuple[BurnRateAlert, ...] = ()
    calendar: Calendar | None = None
    inputs: tuple[tuple[str, str], ...] = ()

    @property
    def error_budget(self) -> float:
        """The error budget ratio exactly as Sloth computes it for alerts: (100 - objective) / 100."""
        return (100 - self.objective) / 100

    @property
    def objective_ratio(self) -> float:
        return self.objective / 100

    @property
    def period_days(self) -> float:
        return self.period_s / 86400

    def sli_windows(self) -> list[int]:
        """Every window an SLI recording covers: the alert windows plus burn-rate alert lookbacks."""
        return sorted(set(self.windows.windows()) | {a.window_s for a in self.burn_alerts})

    def burn_windows(self) -> tuple[tuple[str, BurnWindow, BurnWindow], ...]:
        """(severity, quick, slow) for each alert this SLO has enabled."""
        out = []
        for severity, quick, slow in self.windows.conditions:
            if (self.page_alert if severity == "page" else self.ticket_alert) is not None:
                out.append((severity, quick, slow))
        return tuple(out)
