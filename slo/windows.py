"""Multiwindow multi-burn-rate alert windows: Google's catalogue (30d, 28d), Sloth `AlertWindows` files,
and windows derived for any other period from the same budget percentages."""

from __future__ import annotations

import dataclasses
import os

import yaml
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.goformat import go_hours, parse_duration

DAY = 86400


@dataclasses.dataclass(frozen=True)
class BurnWindow:
    """One alert condition: `budget_percent` of the period's budget spent within `long_s`, confirmed by
    `short_s`; the burn-rate factor is how many times faster than sustainable that is."""

    budget_percent: float
    short_s: int
    long_s: int
    factor: float


@dataclasses.dataclass(frozen=True)
class AlertWindows:
    """The four conditions of one SLO period: page (quick, slow) and ticket (quick, slow)."""

    period_s: int
    page_quick: BurnWindow
    page_slow: BurnWindow
    ticket_quick: BurnWindow
    ticket_slow: BurnWindow
    source: str | None = None  # the AlertWindows file, None for Google's windows

    @property
    def conditions(self) -> tuple[tuple[str, BurnWindow, BurnWindow], ...]:
        """(severity, quick, slow) for page then ticket."""
        return (("page", self.page_quick, self.page_slow), ("ticket", self.ticket_quick, self.ticket_slow))

    def windows(self) -> list[int]:
        """Every distinct short and long window, ascending (what the SLI recordings cover)."""
        ws = {w for c in (self.page_quick, self.page_slow, self.ticket_quick, self.ticket_slow)
              for w in (c.short_s, c.long_s)}
        return sorted(ws)

    def long_windows(self) -> list[int]:
        return sorted({c.long_s for c in (self.page_quick, self.page_slow, self.ticket_quick, self.ticket_slow)})


def burn_factor(period_s: int, budget_percent: float, long_s: int) -> float:
    """Sloth's getBurnRateFactor, same float operations in the same order (so the digits match)."""
    hours_required = budget_percent * go_hours(period_s) / 100
    return hours_required / go_hours(long_s)


def make_windows(period_s: int, spec: dict[str, tuple[float, int, int]], source: str | None = None) -> AlertWindows:
    """AlertWindows from {'page_quick': (budget %, short s, long s), ...}."""
    def bw(key: str) -> BurnWindow:
        pct, short, long_ = spec[key]
        return BurnWindow(float(pct), int(short), int(long_), burn_factor(period_s, float(pct), int(long_)))
    return AlertWindows(period_s, bw("page_quick"), bw("page_slow"), bw("ticket_quick"), bw("ticket_slow"),
                        source)


# Google SRE workbook, "Alerting on SLOs", recommended parameters; Sloth ships them for 30d and 28d.
GOOGLE = {"page_quick": (2, 300, 3600), "page_slow": (5, 1800, 6 * 3600),
          "ticket_quick": (10, 2 * 3600, DAY), "ticket_slow": (10, 6 * 3600, 3 * DAY)}


def default_windows(period_s: int) -> AlertWindows:
    """Google's windows for any period: the budget percentages fix the factors for that period
    (30d: 14.4, 6, 3, 1; 28d: 13.44, 5.6, 2.8, 0.93)."""
    return make_windows(period_s, GOOGLE)


class WindowsCatalogue:
    """Alert windows by SLO period: Sloth's defaults plus any `AlertWindows` files given."""

    def __init__(self, custom: dict[int, AlertWindows] | None = None) -> None:
        self.custom = dict(custom or {})

    def get(self, period_s: int) -> AlertWindows:
        return self.custom.get(period_s) or default_windows(period_s)

    @classmethod
    def load(cls, paths: list[str] | tuple[str, ...] | None) -> WindowsCatalogue:
        custom: dict[int, AlertWindows] = {}
        for path in paths or ():
            files = [path]
            if os.path.isdir(path):
                files = sorted(os.path.join(path, f) for f in os.listdir(path) if f.endswith((".yaml", ".yml")))
            for f in files:
                w = load_windows_file(f)
                if w.period_s in custom:
                    raise SpecError(f, None, "spec.sloPeriod", "one AlertWindows file per period",
                                    f"{w.period_s // DAY}d twice")
                custom[w.period_s] = w
        return cls(custom)


def load_windows_file(path: str) -> AlertWindows:
    """A Sloth `sloth.slok.dev/v1` AlertWindows file (the legacy `alertWindows/v1` form too)."""
    try:
        with open(path, encoding="utf-8") as fh:
            doc = yaml.safe_load(fh)
    except (OSError, yaml.YAMLError, UnicodeDecodeError) as exc:
        raise SpecError(path, None, None, "a readable YAML AlertWindows file", str(exc).splitlines()[0]) from None
    return parse_windows(doc, path)


def parse_windows(doc: object, path: str = "<windows>") -> AlertWindows:
    if not isinstance(doc, dict):
        raise SpecError(path, None, None, "a YAML mapping (kind: AlertWindows)", type(doc).__name__)
    if doc.get("kind") == "AlertWindows":
        if doc.get("apiVersion") != "sloth.slok.dev/v1":
            raise SpecError(path, None, "apiVersion", "sloth.slok.dev/v1", doc.get("apiVersion"))
        spec, prefix = doc.get("spec"), "spec."
    elif doc.get("version") == "alertWindows/v1":
        spec, prefix = doc, ""
    else:
        raise SpecError(path, None, "kind", "AlertWindows (apiVersion sloth.slok.dev/v1)", doc.get("kind"))
    if not isinstance(spec, dict):
        raise SpecError(path, None, prefix.rstrip(".") or None, "a mapping", spec)
    period = _dur(spec.get("sloPeriod"), path, prefix + "sloPeriod")
    out = {}
    for sev in ("page", "ticket"):
        for speed in ("quick", "slow"):
            field = f"{prefix}{sev}.{speed}"
            w = (spec.get(sev) or {}).get(speed) if isinstance(spec.get(sev), dict) else None
            if not isinstance(w, dict):
                raise SpecError(path, None, field, "errorBudgetPercent, shortWindow and longWindow", w)
            pct = w.get("errorBudgetPercent")
            if isinstance(pct, bool) or not isinstance(pct, (int, float)) or not 0 < pct <= 100:
                raise SpecError(path, None, field + ".errorBudgetPercent", "a percentage in (0, 100]", pct)
            short = _dur(w.get("shortWindow"), path, field + ".shortWindow")
            long_ = _dur(w.get("longWindow"), path, field + ".longWindow")
            if short >= long_:
                raise SpecError(path, None, field, "shortWindow shorter than longWindow", f"{short}s >= {long_}s")
            out[f"{sev}_{speed}"] = (pct, short, long_)
    return make_windows(period, out, path)


def _dur(value: object, path: str, field: str) -> int:
    try:
        s = parse_duration(value) if isinstance(value, str) else None
    except ValueError:
        s = None
    if not s:
        raise SpecError(path, None, field, "a duration such as 5m, 1h or 30d", value)
    return s
