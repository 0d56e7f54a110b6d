"""A system-caused job failure on real Slurm becomes a page in Alertmanager, through our exporter, our
generated SLO rules on a real Prometheus and our generated routing; user failures do not page; the
page resolves once the system recovers. The scenario itself is in conftest.py (run once, recorded).
"""

from __future__ import annotations

import pytest
from alertpath import ALERT, CLUSTER, MIN_EVENTS, PAGE_WITHIN, QUEUE, RESOLVE_WITHIN, SLO

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

PAGE_LABELS = {"alertname": ALERT, "sloth_severity": "page", "severity": "critical", "component": "jobs",
               "cluster": CLUSTER, "queue": QUEUE, "sloth_slo": SLO, "sloth_service": "hpc",
               "sloth_id": f"hpc-{SLO}", "team": "hpc-ops"}


def test_both_agents_scraped_and_every_collector_healthy(alert_run):
    # Over the whole run: both agents answered, and no collector ever reported success 0.
    assert alert_run.agents == {"hpcwatch-cluster": {"up": 1, "collector_success": 1},
                                "hpcwatch-node": {"up": 1, "collector_success": 1}}, alert_run.agents


def test_user_failures_alone_do_not_page(alert_run):
    seen = alert_run.user_phase["prom"]
    assert seen["seen"], f"Prometheus never recorded the user failures: {seen}"
    # Were they errors, 6 of 11 jobs would be a ratio far above the page threshold (0.144).
    assert seen["user_failures_1m"] >= 5 and seen["events_1m"] >= MIN_EVENTS, seen
    assert seen["error_ratio_1m"] == 0 and seen["error_ratio_15s"] in (0, None), seen
    assert seen["alerts_during"] == [], f"{ALERT} was pending or firing during user failures: {seen}"
    assert seen["pages_before_burn"] == 0
    assert not [n for n in alert_run.notifications if n[0] < alert_run.burn_began], \
        "Alertmanager notified before any system failure"


def test_system_failure_pages_oncall_with_labels_and_annotations(alert_run):
    page = alert_run.page["prom"]
    assert page is not None, (f"no page on-call within {PAGE_WITHIN:g}s of the nodes going down; "
                              f"{alert_run.diagnostics}")
    doc = page.doc
    assert doc["receiver"] == "oncall" and doc["status"] == "firing"
    assert doc["groupLabels"] == {"alertname": ALERT, "cluster": CLUSTER, "sloth_slo": SLO}
    (alert,) = [a for a in doc["alerts"] if a["labels"].get("sloth_severity") == "page"]
    assert PAGE_LABELS.items() <= alert["labels"].items(), alert["labels"]
    assert alert["annotations"] == {
        "title": f"(page) hpc {SLO} SLO error budget burn rate is too fast.",
        "summary": f"hpc {SLO} SLO error budget burn rate is over expected.",
        "runbook_url": "https://hpcwatch.example/runbooks/JobSuccessSLO",
    }
    assert "/graph?g0.expr=" in alert["generatorURL"]


def test_page_resolves_after_recovery_while_user_failures_go_on(alert_run):
    assert alert_run.page["prom"] is not None, "no page to resolve"
    done = alert_run.resolved["prom"]
    assert done is not None, (f"page not resolved within {RESOLVE_WITHIN:g}s of the nodes resuming; "
                              f"{alert_run.diagnostics}")
    assert done.doc["status"] == "resolved" and done.doc["receiver"] == "oncall"
    # User failures were in the slow page window when it resolved: they did not keep it firing.
    assert alert_run.at_resolve["user_failures_30s"] and alert_run.at_resolve["user_failures_30s"] > 0, \
        alert_run.at_resolve
    later = [at for at, _a in alert_run.pages("prom", status="firing") if at > done.at]
    assert later == [], "the page fired again after it resolved"
