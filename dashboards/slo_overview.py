"""SLO overview: every SLO's budget remaining, burn rates and firing alerts, from Sloth's recording rules."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import Dashboard, Q, query_variable, row, table, timeseries

from hpcwatch import metric_names as n

UID = "hpcwatch-slo-overview"
SVC = 'sloth_service=~"$service"'
BUDGET = ((None, "red"), (0.25, "orange"), (0.5, "green"))
BURN = ((None, "green"), (1, "orange"), (6, "red"))


def build() -> Dashboard:
    attained = (f"1 - {n.SLO_PERIOD_BURN}{{{SVC}}} * on (sloth_id, sloth_service, sloth_slo) group_left "
                f"{n.SLO_ERROR_BUDGET}{{{SVC}}}")
    panels = [
        table("SLOs", "Each SLO: objective, SLI attained over its period, error budget left, burn rate now "
              "(1 = spending the budget exactly over the period) and over the period so far.",
              [Q(f"{n.SLO_OBJECTIVE}{{{SVC}}}", "objective"), Q(attained, "attained"),
               Q(f"{n.SLO_BUDGET_REMAINING}{{{SVC}}}", "budget remaining"),
               Q(f"{n.SLO_CURRENT_BURN}{{{SVC}}}", "burn now"), Q(f"{n.SLO_PERIOD_BURN}{{{SVC}}}", "period burn")],
              "percentunit", BUDGET, hide=("Time", "__name__", "job", "instance", "sloth_window"), h=10,
              sort_by="budget remaining"),
        row("Budget and burn"),
        timeseries("Error budget remaining", "Share of each SLO's error budget left in the current period; "
                   "below 0 the objective is missed.",
                   [Q(f"{n.SLO_BUDGET_REMAINING}{{{SVC}}}", "{{sloth_id}}")], "percentunit", BUDGET),
        timeseries("Burn rate now", "How fast each SLO spends its budget (5m window): 1 spends it exactly over "
                   "the period; 14.4 on a 30-day period empties it in about 2 days.",
                   [Q(f"{n.SLO_CURRENT_BURN}{{{SVC}}}", "{{sloth_id}}")], "short", BURN, 0),
        row("Alerts"),
        table("SLO alerts firing", "Page and ticket burn-rate alerts firing now.",
              [Q(f'{n.ALERTS}{{alertstate="firing",sloth_id!="",{SVC}}}', "")], "none",
              ((None, "red"),), hide=("Time", "__name__", "Value", "alertstate"), h=6),
    ]
    service = query_variable("service", "Service", f"label_values({n.SLO_INFO}, sloth_service)")
    return Dashboard(UID, "hpcwatch / SLO overview", "Every SLO at a glance: objective, attainment, error "
                     "budget, burn rate and firing alerts (Sloth-compatible recording rules).", "slo_overview",
                     panels, [service], ("slo",), "now-7d")
