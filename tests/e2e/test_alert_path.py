"""A system-caused job failure on real Slurm becomes a page on-call, through our exporter, the shipped
Prometheus config and rules, our generated SLO rules and the shipped Alertmanager routing (its
PagerDuty receiver); user failures do not page; the page resolves once the system recovers. The
scenario itself is in conftest.py and alertpath.py (run once, recorded).
"""

from __future__ import annotations

import pytest
from alertpath import ALERT, CLUSTER, MIN_EVENTS, PAGE_WITHIN, QUEUE, RESOLVE_WITHIN, SLO

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

PAGE_LABELS = {"alertname": ALERT, "sloth_severity": "page", "severity": "critical", "component": "jobs",
               "cluster": CLUSTER, "queue": QUEUE, "sloth_slo": SLO, "sloth_service": "hpc",
               "sloth_id": f"hpc-{SLO}", "team": "hpc-ops"}


def test_the_shipped_rules_and_ours_are_loaded(alert_run):
    # Only what the shipped `rules/*.yml` glob matches is loaded: `hpcwatch slo generate` output included.
    assert {"hpcwatch-infrastructure.rules.yml", "hpcwatch-slo.rules.yml", "e2e-slo.rules.yml"} <= \
        set(alert_run.rule_files), alert_run.rule_files


def test_the_state_file_stays_private(alert_run):
    # Rules, dashboards and configs are written 0644 for the daemons that read them; the finished-job
    # ledger is the agent's own.
    assert alert_run.state_mode == 0o600, oct(alert_run.state_mode)


def test_both_agents_scraped_and_every_collector_healthy(alert_run):
    # Over the whole run: both agents answered, and no collector ever reported success 0.
    assert alert_run.agents == {"hpcwatch-cluster": {"up": 1, "collector_success": 1},
                                "hpcwatch-node": {"up": 1, "collector_success": 1}}, alert_run.agents


def test_user_failures_alone_do_not_page(alert_run):
    seen = alert_run.user_phase["prom"]
    assert seen["seen"], f"Prometheus never recorded the user failures: {seen}"
    # Were they errors, 6 of 11 jobs would be a ratio far above the page threshold (0.144).
    assert seen["user_failures_1m"] >= 5 and seen["events_5m"] >= MIN_EVENTS, seen
    assert seen["error_ratio_1m"] == 0 and seen["error_ratio_5m"] in (0, None), seen
    assert seen["alerts_during"] == [], f"{ALERT} was pending or firing during user failures: {seen}"
    assert seen["pages_before_burn"] == 0
    # (The host's own alerts, an OOM kill by another process say, may open tickets; not this SLO.)
    early = [n for n in alert_run.about_the_slo() if n.at < alert_run.burn_began]
    assert not early, f"Alertmanager notified about {SLO} before any system failure: {early}"


def test_system_failure_pages_oncall_with_labels_and_annotations(alert_run):
    page = alert_run.page["prom"]
    assert page is not None, (f"no page on-call within {PAGE_WITHIN:g}s of the nodes going down; "
                              f"{alert_run.diagnostics}")
    note = page.note
    # The shipped on-call receiver is PagerDuty: an Events v2 trigger, deduplicated per alert group.
    assert note.kind == "pagerduty" and note.receiver == "oncall" and note.status == "firing"
    assert note.doc["event_action"] == "trigger" and note.doc["routing_key"] == "harness-key"
    assert ALERT in note.doc["payload"]["summary"] and note.doc["dedup_key"]
    alert = page.page_alert()
    assert PAGE_LABELS.items() <= alert["labels"].items(), alert["labels"]
    assert alert["annotations"] == {
        "title": f"(page) hpc {SLO} SLO error budget burn rate is too fast.",
        "summary": f"hpc {SLO} SLO error budget burn rate is over expected.",
        "runbook_url": "https://hpcwatch.example/runbooks/JobSuccessSLO",
    }


def test_page_resolves_after_recovery_while_user_failures_go_on(alert_run):
    assert alert_run.page["prom"] is not None, "no page to resolve"
    done = alert_run.resolved["prom"]
    assert done is not None, (f"page not resolved within {RESOLVE_WITHIN:g}s of the nodes resuming; "
                              f"{alert_run.diagnostics}")
    assert done.note.receiver == "oncall" and done.note.doc["event_action"] == "resolve"
    # PagerDuty closes the incident the trigger opened: the same deduplication key.
    assert done.note.doc["dedup_key"] == alert_run.page["prom"].note.doc["dedup_key"]
    # User failures were in the page's short window when it resolved: they did not keep it firing.
    assert alert_run.at_resolve["user_failures_1m"] and alert_run.at_resolve["user_failures_1m"] > 0, \
        alert_run.at_resolve
    later = [n.at for n in alert_run.pages("prom", status="firing") if n.at > done.at]
    assert later == [], "the page fired again after it resolved"
