"""Warnings about valid SLOs: pages that can never fire, low-traffic SLIs without a guard, weak windows."""

from __future__ import annotations

from hpcwatch.slo.errors import SLOWarning
from hpcwatch.slo.goformat import go_float
from hpcwatch.slo.model import SLO, EventsSLI


def slo_warnings(slo: SLO) -> list[SLOWarning]:
    """What an operator should know before trusting this SLO's alerts."""
    out = []
    where = f"{slo.source}: slo {slo.name!r}"
    budget = slo.error_budget
    for severity, quick, slow in slo.burn_windows():
        for speed, w in (("quick", quick), ("slow", slow)):
            # The error ratio cannot exceed 1, so a threshold at or above 1 is never crossed.
            if w.factor * budget >= 1:
                out.append(SLOWarning(
                    f"{where}: {severity} {speed} alert can never fire: {go_float(w.factor)} x budget "
                    f"{go_float(budget)} >= 1 (objective {slo.objective:g}% is below "
                    f"{100 * (1 - 1 / w.factor):.1f}% for this period)"))
            if w.factor < 1:
                out.append(SLOWarning(
                    f"{where}: {severity} {speed} burn-rate factor {go_float(w.factor)} is below 1: it fires "
                    "while the budget still lasts the period; give --windows for this period"))
    if slo.objective >= 100:
        out.append(SLOWarning(f"{where}: objective 100% has no error budget; every error burns infinitely"))
    if slo.low_traffic and not slo.min_events and isinstance(slo.sli, EventsSLI):
        out.append(SLOWarning(
            f"{where}: low-traffic SLI (job counts) without min_events: one failed job among a few "
            "is a huge burn rate and pages; set min_events"))
    return out


def check_slos(slos: list[SLO]) -> list[SLOWarning]:
    return [w for slo in slos for w in slo_warnings(slo)]
