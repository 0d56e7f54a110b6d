"""Maintenance that does not page, on the real alert path: a real Slurm MAINT reservation.

Real Slurm (4 slurmd), the cluster agent (`hpcwatch serve`), Prometheus evaluating the node-availability
SLO of a 1-day period with windows of seconds to minutes (tests/fixtures/e2e/alert-windows-1d.yaml) and
the infrastructure rules, and Alertmanager configured by `hpcwatch alerts alertmanager`, whose on-call and
ticket webhooks land in this process. Objective 90%: two of four nodes unavailable is an error ratio of
0.5, above the page's 0.288.

1. Two nodes go into a MAINT reservation and are drained (for a reason that does not say maintenance:
   drained, not down, since the harness's ReturnToService=2 would return a down node as soon as its
   slurmd registers). Once every window of the page has been full
   of that state, the SLI has been 0 all along (no budget burnt), no NodeAvailabilitySLO alert was ever
   pending, and neither webhook heard of one.
2. The reservation is deleted while the nodes stay drained: the page reaches on-call.
"""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from alertpath import WINDOWS, require_e2e, value, wait_for

from hpcwatch import demo

CLUSTER = "mnt"
ALERT = "NodeAvailabilitySLO"
CATALOGUE = f"""apiVersion: hpcwatch/v1
kind: SLOCatalogue
metadata: {{name: maintenance}}
spec:
  service: hpc
  clusters: [{CLUSTER}]
  period: 1d
  alerting:
    page_alert: {{labels: {{severity: critical, component: scheduler}}}}
    ticket_alert: {{labels: {{severity: warning, component: scheduler}}}}
  slos:
    - sli: node-availability
      objective: 90
      unavailable_states: [down, drain]
"""
SLI = f'slo:sli_error:ratio_rate1m{{sloth_slo="node-availability-{CLUSTER}"}}'
PAGE_WITHIN = 180.0
SEEN_WITHIN = 90.0


def _pages(hook: demo.WebhookReceiver, since: float) -> list[dict]:
    """Every NodeAvailabilitySLO alert any webhook (on-call or ticket) received since `since`."""
    return [a for at, _path, doc in hook.received() if at >= since for a in doc.get("alerts", [])
            if a.get("labels", {}).get("alertname") == ALERT]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    require_e2e()
    from hpcwatch.harness.prometheus import Alertmanager, Prometheus
    from hpcwatch.harness.slurm import SlurmCluster

    work = str(tmp_path_factory.mktemp("maintenance"))
    os.chmod(work, 0o755)
    record: dict = {}
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(demo.WebhookReceiver())
        slurm = stack.enter_context(SlurmCluster(os.path.join(work, "slurm"), cluster_name=CLUSTER, nodes=4))
        cluster = stack.enter_context(demo.Agent(work, "cluster", [
            f"--collector.slurm.conf={slurm.conf_path}", "--collector.slurm.refresh-interval=2",
            f"--collector.slurm.state-file={os.path.join(work, 'slurm-state.json')}"]))
        rules = [demo.slo_rules(work, CATALOGUE, WINDOWS, "maintenance-slo"), os.path.join(work, "infra.rules.yml")]
        demo.cli("alerts", "rules", "-o", rules[1])
        am = stack.enter_context(Alertmanager(work, demo.alertmanager_config(
            work, f"{hook.url}/oncall", f"{hook.url}/ticket")))
        prom = stack.enter_context(Prometheus(work, demo.prometheus_config(
            {"hpcwatch-cluster": cluster.url}, am.url, interval="1s"), rules))
        c = f'cluster="{CLUSTER}"'
        assert wait_for(lambda: value(prom, f'sum(hpc_scheduler_nodes{{{c}}})') == 8, SEEN_WITHIN), \
            "4 nodes in 2 partitions never seen"
        victims = ",".join(slurm.node_names[:2])

        # 1. Inside a maintenance window.
        began = time.time()
        slurm.run(["scontrol", "create", "reservation", "ReservationName=rack1_bios", f"Nodes={victims}",
                   "StartTime=now", "Duration=60", "Users=root", "Flags=MAINT,IGNORE_JOBS"])
        slurm.run(["scontrol", "update", f"nodename={victims}", "state=drain", "reason=BIOS flash"])
        record["maintenance_seen"] = wait_for(
            lambda: value(prom, f'count(hpc_scheduler_maintenance{{{c},source="reservation",'
                                f'reservation="rack1_bios"}})') == 2
            and value(prom, f'sum(hpc_scheduler_nodes{{{c},state="maint"}})') == 4, SEEN_WITHIN)
        inside = time.time()
        # Every page window (2 minutes at most) full of the maintenance state, then a few evaluations more.
        record["windows_full"] = wait_for(lambda: time.time() - inside > 125 and value(
            prom, f'min_over_time(sum(hpc_scheduler_nodes{{{c},state="maint"}})[125s:1s])') == 4, 200)
        span = int(time.time() - inside)
        record["sli_max_inside"] = value(prom, f"max_over_time({SLI}[{span}s])")
        record["sli_samples_inside"] = value(prom, f"count_over_time({SLI}[{span}s])")
        record["alerts_inside"] = value(prom, f'count_over_time(ALERTS{{alertname="{ALERT}"}}[{span}s])')
        record["budget_inside"] = value(prom, 'min_over_time(slo:period_error_budget_remaining:ratio'
                                              f'{{sloth_slo="node-availability-{CLUSTER}"}}[{span}s])')
        time.sleep(2)   # anything Alertmanager would send it has sent by now (group_wait 1s)
        record["pages_inside"] = _pages(hook, began)

        # 2. The window closes early; the nodes are still down.
        outside = time.time()
        slurm.run(["scontrol", "delete", "ReservationName=rack1_bios"])
        record["page"] = wait_for(lambda: [a for a in _pages(hook, outside)
                                           if a.get("status") == "firing"
                                           and a["labels"].get("sloth_severity") == "page"], PAGE_WITHIN)
        record["page_after"] = round(time.time() - outside, 1)
        record["paths"] = sorted({path for at, path, _ in hook.received() if at >= outside})
        record["sli_outside"] = value(prom, SLI)
        slurm.run(["scontrol", "update", f"nodename={victims}", "state=resume"], check=False)
    return record


def test_nodes_out_inside_a_maintenance_window_page_nobody_and_burn_no_budget(run):
    assert run["maintenance_seen"], "hpc_scheduler_maintenance never showed the reservation's nodes"
    assert run["windows_full"], "the maintenance state never filled the page's windows"
    assert run["sli_samples_inside"] and run["sli_samples_inside"] > 60
    assert run["sli_max_inside"] == 0
    assert run["budget_inside"] == 1
    assert run["alerts_inside"] is None and run["pages_inside"] == []


def test_the_same_nodes_out_of_service_outside_it_page_oncall(run):
    assert run["page"], f"no page within {PAGE_WITHIN:g}s of the reservation's end (SLI {run['sli_outside']})"
    assert "/oncall" in run["paths"]
    labels = run["page"][0]["labels"]
    assert labels["cluster"] == CLUSTER and labels["severity"] == "critical"
    print(f"\npage on-call {run['page_after']}s after the maintenance window closed over two drained nodes")
