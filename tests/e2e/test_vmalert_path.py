"""The same shipped files on the path for clusters that outgrow one Prometheus: VictoriaMetrics scrapes
with the shipped prometheus.yml and targets (as vmagent would), vmalert evaluates the same rule files
and notifies its own Alertmanager (the same shipped routing). The same page fires, with the same
labels and annotations.
"""

from __future__ import annotations

import pytest
from alertpath import ALERT, MIN_EVENTS, PAGE_WITHIN, SLO

pytestmark = [pytest.mark.daemons, pytest.mark.slow]


def test_vmalert_quiet_on_user_failures(alert_run):
    seen = alert_run.user_phase["vm"]
    assert seen["seen"], f"vmalert never recorded the user failures into VictoriaMetrics: {seen}"
    assert seen["user_failures_1m"] >= 5 and seen["events_5m"] >= MIN_EVENTS, seen
    assert seen["error_ratio_1m"] == 0, seen
    assert seen["alerts_during"] == [] and seen["pages_before_burn"] == 0, seen


def test_vmalert_fires_the_same_page(alert_run):
    vm, prom = alert_run.page["vm"], alert_run.page["prom"]
    assert vm is not None, (f"vmalert's page did not reach on-call within {PAGE_WITHIN:g}s of the burn; "
                            f"{alert_run.diagnostics}")
    assert vm.note.receiver == "oncall" and vm.note.status == "firing" and vm.note.kind == "pagerduty"
    alert = vm.page_alert()
    assert alert["labels"]["alertname"] == ALERT and alert["labels"]["sloth_slo"] == SLO
    assert prom is not None, "no Prometheus page to compare with"
    reference = prom.page_alert()
    # vmalert adds the rule group's name as `alertgroup`; every label and annotation we generate matches.
    labels = {k: v for k, v in alert["labels"].items() if k != "alertgroup"}
    assert labels == reference["labels"]
    assert alert["annotations"] == reference["annotations"]
    firing = [a for a in alert_run.vmalert_alerts if a["name"] == ALERT and a["state"] == "firing"]
    assert firing and firing[0]["labels"]["sloth_severity"] == "page", alert_run.vmalert_alerts
