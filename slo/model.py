"""The validated, immutable SLO model every generator reads (and the dashboards and history engines reuse)."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from types import MappingProxyType

from hpcwatch.slo.windows import AlertWindows, BurnWindow


def frozen_map(d: Mapping[str, str] | None) -> Mapping[str, str]:
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
class GroupIntervals:
    """Optional evaluation interval per rule group, seconds (Sloth's `interval: {all, slierror, ...}`)."""

    sli: int | None = None
    meta: int | None = None
    alerts: int | None = None


@dataclasses.dataclass(frozen=True)
class SLO:
    """One service level objective, ready for the generators.

    `objective` is a percentage (99.9); `windows` carries the alert windows and burn-rate factors for
    `period_s`; `min_events`, when set, makes every alert need that many events in its long window.
    `events_per_second` says the total query is a rate (events = value x window seconds).
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
    k8s_name: str | None = None
    k8s_namespace: str | None = None

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

    def burn_windows(self) -> tuple[tuple[str, BurnWindow, BurnWindow], ...]:
        """(severity, quick, slow) for each alert this SLO has enabled."""
        out = []
        for severity, quick, slow in self.windows.conditions:
            if (self.page_alert if severity == "page" else self.ticket_alert) is not None:
                out.append((severity, quick, slow))
        return tuple(out)
