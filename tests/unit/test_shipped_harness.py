"""What the tests and the demo change in the shipped Alertmanager config (receiver endpoints, nothing
else), and how a notification is read back from PagerDuty's event format and from a webhook."""

from __future__ import annotations

import os

import yaml

from hpcwatch.harness.shipped import endpoints_masked, parse_notification, redirect_receivers, target_file
from hpcwatch.promconfig import TARGET_FILES

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_only_receiver_endpoints_change(tmp_path):
    with open(os.path.join(ROOT, "deploy", "alertmanager", "alertmanager.yml"), encoding="utf-8") as fh:
        shipped = yaml.safe_load(fh)
    redirected = redirect_receivers(shipped, "http://127.0.0.1:9/x", str(tmp_path))
    assert endpoints_masked(redirected) == endpoints_masked(shipped)
    assert redirected["route"] == shipped["route"] and redirected["inhibit_rules"] == shipped["inhibit_rules"]
    for receiver in redirected["receivers"]:
        for pd in receiver.get("pagerduty_configs", []):
            assert pd["url"] == f"http://127.0.0.1:9/x/{receiver['name']}/pagerduty"
            assert open(pd["routing_key_file"]).read().strip() == "harness-key"
        for hook in receiver.get("webhook_configs", []):
            assert hook["url"] == f"http://127.0.0.1:9/x/{receiver['name']}/webhook"
        for mail in receiver.get("email_configs", []):
            assert mail["smarthost"].startswith("127.0.0.1:")


def test_target_files_match_the_shipped_globs():
    import fnmatch

    for job, pattern in TARGET_FILES.items():
        assert fnmatch.fnmatch(target_file(job), pattern)


def test_pagerduty_events_read_as_alerts():
    details = ("Labels:\n - alertname = JobSuccessSLO\n - cluster = demo\nAnnotations:\n"
               " - summary = burning\nSource: http://prom/graph\n")
    trigger = parse_notification(1.0, "/oncall/pagerduty", {
        "event_action": "trigger", "dedup_key": "k",
        "payload": {"summary": "[FIRING:1] JobSuccessSLO", "custom_details": {"firing": details, "resolved": ""}}})
    assert trigger.kind == "pagerduty" and trigger.status == "firing" and trigger.receiver == "oncall"
    assert trigger.alerts == ({"status": "firing", "labels": {"alertname": "JobSuccessSLO", "cluster": "demo"},
                               "annotations": {"summary": "burning"}},)
    resolve = parse_notification(2.0, "/oncall/pagerduty", {
        "event_action": "resolve", "dedup_key": "k",
        "payload": {"custom_details": {"firing": "", "resolved": details}}})
    assert resolve.status == "resolved" and resolve.alerts[0]["status"] == "resolved"


def test_webhook_bodies_read_as_alerts():
    note = parse_notification(1.0, "/prom/ticket/webhook", {
        "status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "X"}, "annotations": {}}]})
    assert note.kind == "webhook" and note.receiver == "ticket" and note.alerts[0]["labels"] == {"alertname": "X"}
