"""Maintenance that does not page, on the real alert path: a real Slurm MAINT reservation.

Run as a phase of the session's alert path, before its system failures (alertpath.Scenario.maintenance,
on its stack, so it starts no daemon of its own: real
Slurm with 4 slurmd, the cluster agent, the shipped Prometheus and Alertmanager with the e2e catalogue's
node-availability SLO, objective 90%: two of four nodes unavailable is an error ratio of 0.5, above the
page's 0.144).

1. Two nodes go into a MAINT reservation and are drained (for a reason that does not say maintenance:
   drained, not down, since the harness's ReturnToService=2 would return a down node as soon as its
   slurmd registers). For longer than the page took outside the window, and with every page short
   window full of that state, the SLI stays 0, no budget burns, no NodeAvailabilitySLO alert is pending
   and no receiver hears of one.
2. The reservation is deleted while the nodes stay drained: the page reaches on-call.
"""

from __future__ import annotations

import pytest
from alertpath import CLUSTER, MAINT_HOLD, MAINT_PAGE_WITHIN, NODE_ALERT

pytestmark = [pytest.mark.daemons, pytest.mark.slow]


def test_nodes_out_inside_a_maintenance_window_page_nobody_and_burn_no_budget(alert_run):
    m = alert_run.maintenance
    assert m["seen"], "hpc_scheduler_maintenance never showed the reservation's 2 nodes in both partitions"
    assert m["hold_s"] >= MAINT_HOLD and m["nodes_maint_min"] == 4, m
    assert m["sli_samples"] and m["sli_samples"] > 60, m
    assert m["sli_max"] == 0, m
    assert m["budget_min"] == 1, m   # nothing burnt inside the window
    assert m["alerts"] is None and m["pages_inside"] == [], m


def test_the_same_nodes_out_of_service_outside_it_page_oncall(alert_run):
    m = alert_run.maintenance
    assert m["page"], f"no {NODE_ALERT} page within {MAINT_PAGE_WITHIN:g}s of the reservation's end ({m})"
    labels = m["page"]["labels"]
    assert labels["cluster"] == CLUSTER and labels["severity"] == "critical" and labels["sloth_severity"] == "page"
    print(f"\npage on-call {m['page_after']}s after the maintenance window closed over two drained nodes")
