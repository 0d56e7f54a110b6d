"""Warnings about valid SLOs: pages that can never fire, low-traffic SLIs without a guard, weak windows.

Each warning says what the user passed (the objective, the period, the AlertWindows file or Google's
defaults) and what would change it, so the advice fits the command that was actually run.
"""

from __future__ import annotations

from hpcwatch.slo.errors import SLOWarning
from hpcwatch.slo.goformat import go_float, prom_duration
from hpcwatch.slo.model import SLO, EventsSLI
from hpcwatch.slo.windows import BurnWindow


def days(seconds: int) -> str:
    """A duration as people write periods (`28d`, not Prometheus' `4w`)."""
    return f"{seconds // 86400}d" if seconds % 86400 == 0 else prom_duration(seconds)


def _windows_origin(slo: SLO, w: BurnWindow) -> str:
    period = days(slo.period_s)
    if slo.windows.source:
        return (f"{slo.windows.source} sets {w.budget_percent:g}% of the {period} budget in "
                f"{days(w.long_s)}; edit that AlertWindows file")
    return (f"Google's windows ({w.budget_percent:g}% of the budget in {days(w.long_s)}) were made for "
            f"30d; give --windows with an AlertWindows file for {period}")


def slo_warnings(slo: SLO) -> list[SLOWarning]:
    """What an operator should know before trusting this SLO's alerts."""
    out = []
    where = f"{slo.source}: slo {slo.name!r}"
    budget = slo.error_budget
    period = days(slo.period_s)
    for severity, quick, slow in slo.burn_windows():
        for speed, w in (("quick", quick), ("slow", slow)):
            # The error ratio cannot exceed 1, so a threshold at or above 1 is never crossed.
            if w.factor * budget >= 1:
                out.append(SLOWarning(
                    f"{where}: {severity} {speed} alert can never fire: {go_float(w.factor)} x budget "
                    f"{go_float(budget)} >= 1 (objective {slo.objective:g}% over {period} is below "
                    f"{100 * (1 - 1 / w.factor):.2f}%, the lowest this window's burn factor can alert on)"))
            if w.factor < 1:
                out.append(SLOWarning(
                    f"{where}: {severity} {speed} burn-rate factor {go_float(w.factor)} is below 1 for the "
                    f"{period} period: it fires while the budget still lasts the period; "
                    + _windows_origin(slo, w)))
            if w.long_s > slo.period_s:
                out.append(SLOWarning(
                    f"{where}: {severity} {speed} window {days(w.long_s)} is longer than the {period} "
                    "period; " + _windows_origin(slo, w)))
    if slo.objective >= 100:
        out.append(SLOWarning(f"{where}: objective 100% has no error budget; every error burns infinitely"))
    if slo.low_traffic and not slo.min_events and isinstance(slo.sli, EventsSLI):
        out.append(SLOWarning(
            f"{where}: low-traffic SLI (job counts) without min_events: one failed job among a few "
            "is a huge burn rate and pages; set min_events"))
    return out


def duplicate_alerts(slos: list[SLO]) -> list[SLOWarning]:
    """Alert rules one output document would repeat (same name and labels): Prometheus keeps both,
    their series differ by the SLO labels, but promtool check rules --lint=all reports them."""
    from hpcwatch.slo.generate import alert_rules
    from hpcwatch.slo.output import objects

    out = []
    for obj, group in objects(slos):
        seen: dict[tuple, str] = {}
        for slo in group:
            for r in alert_rules(slo):
                key = (r["alert"], tuple(sorted(r.get("labels", {}).items())))
                if key in seen and seen[key] != slo.name:
                    out.append(SLOWarning(
                        f"{obj.file}: slos {seen[key]!r} and {slo.name!r} both alert as {r['alert']!r} with the "
                        "same labels: promtool check rules --lint=all reports duplicate rules; give one its "
                        "own alerting name or labels"))
                seen.setdefault(key, slo.name)
    return out


def check_slos(slos: list[SLO]) -> list[SLOWarning]:
    return [w for slo in slos for w in slo_warnings(slo)] + duplicate_alerts(slos)
