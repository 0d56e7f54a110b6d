"""SLO detail, one dashboard per SLO: SLI against objective, budget burn-down, burn rate with the thresholds."""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from hpcwatch.dashboards.helpers import Dashboard, Q, row, stat, table, timeseries

from hpcwatch import metric_names as n

BUDGET = ((None, "red"), (0.25, "orange"), (0.5, "green"))
BURN = ((None, "green"), (1, "orange"), (6, "red"))
# Sloth's windows, as recorded by the SLO engine: (recording rule, legend).
SLI_WINDOWS = ((n.SLO_SLI_ERROR_5M, "5m"), (n.SLO_SLI_ERROR_1H, "1h"), (n.SLO_SLI_ERROR_6H, "6h"),
               (n.SLO_SLI_ERROR_1D, "1d"), (n.SLO_SLI_ERROR_3D, "3d"))


@dataclass(frozen=True)
class SLORef:
    """What a detail dashboard needs of an SLO: its Sloth service and name (sloth_id = service-name)."""

    service: str
    name: str
    description: str = ""

    @property
    def sloth_id(self) -> str:
        return f"{self.service}-{self.name}"


def uid_for(ref: SLORef) -> str:
    """A stable uid within Grafana's 40 characters; long ids keep a readable prefix and a hash."""
    slug = re.sub(r"[^a-zA-Z0-9_-]", "-", ref.sloth_id)
    uid = f"hpcwatch-slo-{slug}"
    if len(uid) <= 40:
        return uid
    digest = hashlib.sha256(ref.sloth_id.encode()).hexdigest()[:8]
    return f"{uid[:31]}-{digest}"


def _quote(value: str) -> str:
    # SLO ids come from spec files, not users at runtime, but still must not break the PromQL string.
    return value.replace("\\", "\\\\").replace('"', '\\"')


def build(ref: SLORef) -> Dashboard:
    sel = f'sloth_id="{_quote(ref.sloth_id)}"'
    by = "on (sloth_id, sloth_service, sloth_slo) group_left"
    burn_q = [Q(f"{rule}{{{sel}}} / {by} {n.SLO_ERROR_BUDGET}{{{sel}}}", w) for rule, w in SLI_WINDOWS[1:]]
    # Threshold factor = share of the budget an alert spends in its long window * period / window.
    thresholds = [Q(f"{n.SLO_TIME_PERIOD_DAYS}{{{sel}}} * {24 * share / hours:.6g}", f"threshold {label}")
                  for label, share, hours in n.BURN_THRESHOLDS]
    panels = [
        stat("Objective", "The SLO's target ratio of good events.", f"{n.SLO_OBJECTIVE}{{{sel}}}",
             "percentunit", ((None, "blue"),)),
        stat("Attained (period)", "SLI over the SLO period so far.",
             f"1 - {n.SLO_PERIOD_BURN}{{{sel}}} * {by} {n.SLO_ERROR_BUDGET}{{{sel}}}", "percentunit",
             ((None, "red"), (0.9, "orange"), (0.99, "green"))),
        stat("Error budget remaining", "Share of the period's error budget left.",
             f"{n.SLO_BUDGET_REMAINING}{{{sel}}}", "percentunit", BUDGET),
        stat("Burn rate now", "Budget spend rate over the last 5 minutes (1 = exactly the budget per period).",
             f"{n.SLO_CURRENT_BURN}{{{sel}}}", "short", BURN),
        row("SLI"),
        timeseries("SLI against objective", "Good-event ratio over 5m and 1h windows, with the objective.",
                   [Q(f"1 - {n.SLO_SLI_ERROR_5M}{{{sel}}}", "SLI 5m"),
                    Q(f"1 - {n.SLO_SLI_ERROR_1H}{{{sel}}}", "SLI 1h"),
                    Q(f"{n.SLO_OBJECTIVE}{{{sel}}}", "objective")], "percentunit", ((None, "green"),), max_=1, w=24),
        timeseries("Error budget burn-down", "Share of the period's error budget left over time.",
                   [Q(f"{n.SLO_BUDGET_REMAINING}{{{sel}}}", "budget remaining")], "percentunit", BUDGET),
        timeseries("Burn rate by window", "Error ratio over each alert window divided by the error budget, "
                   "with the page (2% / 5% of budget) and ticket (10%) thresholds; a page needs both its "
                   "short and long window above the threshold.", burn_q + thresholds, "short", BURN, 0),
        row("Alerts"),
        table("Alerts", "This SLO's page and ticket alerts, pending or firing.",
              [Q(f"{n.ALERTS}{{{sel}}}", "")], "none", ((None, "red"),),
              hide=("Time", "__name__", "Value"), h=6),
    ]
    desc = ref.description or f"SLO {ref.name} of service {ref.service}."
    return Dashboard(uid_for(ref), f"hpcwatch / SLO / {ref.sloth_id}", desc, "slo_detail", panels, [],
                     ("slo", f"slo-{ref.service}"), "now-7d")
