"""Warnings about valid SLOs: pages that can never fire, low-traffic SLIs without a guard, weak windows.

Each warning says what the user passed (the objective, the period, the AlertWindows file or Google's
defaults) and what would change it, so the advice fits the command that was actually run.
"""

from __future__ import annotations

from hpcwatch.slo.errors import SLOWarning
from hpcwatch.slo.goformat import go_float, prom_duration
from hpcwatch.slo.model import SLO, EventsSLI
from hpcwatch.slo.windows import BurnWindow


def _windows_origin(slo: SLO, w: BurnWindow) -> str:
    period = prom_duration(slo.period_s)
    if slo.windows.source:
        return (f"{slo.windows.source} sets {w.budget_percent:g}% of the {period} budget in "
                f"{prom_duration(w.long_s)}; edit that AlertWindows file")
    return (f"Google's windows ({w.budget_percent:g}% of the budget in {prom_duration(w.long_s)}) were made for "
            f"30d; give --windows with an AlertWindows file for {period}")


def slo_warnings(slo: SLO) -> list[SLOWarning]:
    """What an operator should know before trusting this SLO's alerts."""
    out = []
    where = f"{slo.source}: slo {slo.name!r}"
    budget = slo.error_budget
    period = prom_duration(slo.period_s)
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
                    f"{where}: {severity} {speed} window {prom_duration(w.long_s)} is longer than the {period} "
                    "period; " + _windows_origin(slo, w)))
    if slo.objective >= 100:
        out.append(SLOWarning(f"{where}: objective 100% has no error budget; every error burns infinitely"))
    if slo.low_traffic and not slo.min_events and isinstance(slo.sli, EventsSLI):
        out.append(SLOWarning(
            f"{where}: low-traffic SLI (job counts) without min_events: one failed job among a few "
            "is a huge burn rate and pages; set min_events"))
    return out


def check_slos(slos: list[SLO]) -> list[SLOWarning]:
    return [w for slo in slos for w in slo_warnings(slo)]
