"""The generated Alertmanager config through the real tools: amtool check-config for every receiver
type, amtool routes test for every kind of alert, and the inhibitions in a running Alertmanager."""

from __future__ import annotations

import datetime
import json
import subprocess

import helpers
import pytest
from hpcwatch.alerts import alertmanager as am

RECEIVERS = {
    "pagerduty": "oncall: {type: pagerduty, routing_key_file: /etc/am/pd-key}",
    "opsgenie": "oncall: {type: opsgenie, api_key_file: /etc/am/og-key, api_url: 'https://api.eu.opsgenie.com/'}",
    "webhook": "oncall: {type: webhook, url: 'http://127.0.0.1:9/page'}",
}
TICKET = "\nticket: {type: webhook, url: 'http://127.0.0.1:9/ticket'}\n"


def _config(tmp_path, oncall: str = RECEIVERS["pagerduty"]) -> str:
    path = tmp_path / "alertmanager.yml"
    path.write_text(am.render(am.load_config(oncall + TICKET)))
    return str(path)


def _amtool(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([helpers.require_binary("amtool"), *args], capture_output=True, text=True, timeout=60,
                          check=False)


@pytest.mark.parametrize("kind", sorted(RECEIVERS))
def test_check_config_passes_for_each_oncall_receiver(tmp_path, kind):
    proc = _amtool("check-config", _config(tmp_path, RECEIVERS[kind]))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "4 inhibit rules" in proc.stdout and "3 receivers" in proc.stdout


@pytest.mark.parametrize("what, labels, receiver", am.ROUTING_CASES, ids=[c[0] for c in am.ROUTING_CASES])
def test_each_alert_kind_routes_to_its_receiver(tmp_path, what, labels, receiver):
    cfg = _config(tmp_path)
    args = [f"{k}={v}" for k, v in labels.items()]
    proc = _amtool("config", "routes", "test", f"--config.file={cfg}", f"--verify.receivers={receiver}", *args)
    assert proc.returncode == 0, f"{what}: {proc.stdout}{proc.stderr}"
    wrong = {am.ONCALL, am.TICKET, am.RECORD} - {receiver}
    for other in wrong:  # the same check can fail: another receiver is rejected
        proc = _amtool("config", "routes", "test", f"--config.file={cfg}", f"--verify.receivers={other}", *args)
        assert proc.returncode != 0, f"{what} also routes to {other}"


def _alert(labels: dict[str, str]) -> dict:
    now = datetime.datetime.now(datetime.UTC)
    return {"labels": labels, "annotations": {"summary": "test"},
            "startsAt": now.isoformat(), "endsAt": (now + datetime.timedelta(hours=1)).isoformat()}


@pytest.mark.daemons
def test_inhibitions_in_a_running_alertmanager(tmp_path):
    helpers.require_binary("prometheus-alertmanager")
    from hpcwatch.harness.prometheus import Alertmanager

    with open(_config(tmp_path, RECEIVERS["webhook"])) as fh:
        text = fh.read()
    daemon = Alertmanager(str(tmp_path), text).start()
    try:
        alerts = {
            "sched_down": {"alertname": "HpcSchedulerDown", "severity": "critical", "component": "scheduler",
                           "cluster": "c1"},
            "job_spike": {"alertname": "HpcSchedulerSystemJobFailures", "severity": "warning", "component": "jobs",
                          "cluster": "c1"},
            "job_spike_other_cluster": {"alertname": "HpcSchedulerSystemJobFailures", "severity": "warning",
                                        "component": "jobs", "cluster": "c2"},
            "slo_page": {"alertname": "JobSuccess", "sloth_severity": "page", "sloth_slo": "job-success-c1-batch",
                         "sloth_id": "hpc-job-success-c1-batch", "cluster": "c1"},
            "slo_ticket": {"alertname": "JobSuccess", "sloth_severity": "ticket", "sloth_slo": "job-success",
                           "sloth_id": "hpc-job-success", "cluster": "c1"},
            "queue_page": {"alertname": "QueueWait", "sloth_severity": "page", "sloth_slo": "queue-wait",
                           "sloth_id": "hpc-queue-wait", "cluster": "c1"},
            "node_ticket": {"alertname": "NodeAvailability", "sloth_severity": "ticket",
                            "sloth_slo": "node-availability", "sloth_id": "hpc-node-availability", "cluster": "c1"},
            "queue_ticket": {"alertname": "QueueWait", "sloth_severity": "ticket", "sloth_slo": "queue-wait",
                             "sloth_id": "hpc-queue-wait", "cluster": "c1"},
            "exporter_down": {"alertname": "HpcwatchExporterDown", "severity": "warning", "component": "exporter",
                              "cluster": "c1", "instance": "n1:19466"},
            "gpu_same_instance": {"alertname": "HpcGpuLost", "severity": "critical", "component": "gpu",
                                  "cluster": "c1", "instance": "n1:19466"},
            "gpu_other_instance": {"alertname": "HpcGpuLost", "severity": "critical", "component": "gpu",
                                   "cluster": "c1", "instance": "n2:19466"},
        }
        daemon.post("/api/v2/alerts", json.dumps([_alert(a) for a in alerts.values()]).encode(), "application/json")
        state = {}
        for a in daemon.alerts():
            key = next(k for k, v in alerts.items() if v == {k2: a["labels"].get(k2) for k2 in v}
                       and set(a["labels"]) == set(v))
            state[key] = bool(a["status"]["inhibitedBy"])
        assert state == {
            "sched_down": False,
            "job_spike": True,                 # scheduler down silences job-failure alerts ...
            "job_spike_other_cluster": False,  # ... of its own cluster only
            "slo_page": True,                  # the job-success SLO is a job-failure alert too
            "slo_ticket": True,                # (and a page silences the ticket of the same SLO)
            "queue_page": False,
            "queue_ticket": True,              # a page silences the ticket of the same SLO ...
            "node_ticket": False,              # ... and no other
            "exporter_down": False,
            "gpu_same_instance": True,         # an exporter down silences its collectors' alerts
            "gpu_other_instance": False,
        }
    finally:
        daemon.stop()


def test_page_silences_ticket_of_the_same_slo_only():
    rules = am.build(am.load_config(RECEIVERS["webhook"] + TICKET))["inhibit_rules"]
    rule = next(r for r in rules if r["source_matchers"] == ['sloth_severity="page"'])
    assert rule["target_matchers"] == ['sloth_severity="ticket"'] and rule["equal"] == ["sloth_id"]
