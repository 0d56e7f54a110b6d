"""The waste alerts (off by default, switched on in the alert config), their Alertmanager routing to the
job's owner and to `hpcwatch act`, and act's decisions that need no Slurm."""

from __future__ import annotations

import json
import os
import re

import pytest
import yaml
from hpcwatch.alerts import alertmanager as am
from hpcwatch.alerts.act import DECISIONS, Actor, Ledger, Policy, Slurm
from hpcwatch.alerts.rules import alert_groups, render_rules, render_tests
from hpcwatch.alerts.waste import EXAMPLE_CONFIG, ConfigError, WasteConfig, load_config, waste_alerts

from hpcwatch import metric_names
from hpcwatch.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ON = load_config(EXAMPLE_CONFIG)
WASTE = waste_alerts(ON.waste)


def test_off_by_default_and_switched_on_in_the_alert_config():
    assert "HpcJob" not in render_rules() and "HpcJob" not in render_tests("r.yml")
    assert load_config("").waste.enabled is False and load_config("waste: {}").waste.enabled is False
    groups = dict(alert_groups(ON))
    assert [a.name for a in groups["hpcwatch-waste"]] == ["HpcJobGpuIdle", "HpcJobGpuUnused", "HpcJobMemoryUnused"]
    rules = yaml.safe_load(render_rules(config=ON))
    group = next(g for g in rules["groups"] if g["name"] == "hpcwatch-waste")
    assert group["interval"] == "1m"      # they wait 30 minutes or more: once a minute is plenty
    waste = group["rules"]
    for r in waste:
        assert r["labels"] == {"severity": "warning", "component": "jobs", "audience": "user"}
        assert "jobid" in r["annotations"]["summary"] and "hpcwatch job report" in r["annotations"]["description"]
    # Every other alert keeps its labels: no audience label outside the waste group.
    assert all("audience" not in r.get("labels", {}) for g in rules["groups"] if g["name"] != "hpcwatch-waste"
               for r in g["rules"])


@pytest.mark.parametrize("a", WASTE, ids=lambda a: a.name)
def test_waste_rule_reads_known_names_labels_jobs_and_has_a_runbook(a):
    known = set(metric_names.all_metric_names())
    for name in re.findall(r"\b(hpc_[a-zA-Z0-9_]+)(?=[{\[)\s]|$)", a.expr):
        assert name in known, f"{a.name}: {name}"
    assert "by (cluster, jobid)" in a.expr and "group_left (user, account)" in a.expr
    with open(os.path.join(ROOT, "docs", "runbooks", f"{a.name}.md"), encoding="utf-8") as fh:
        text = fh.read()
    for heading in ("## What it means", "## How to confirm", "## What to do"):
        assert heading in text, f"{a.name} runbook lacks {heading!r}"


def test_thresholds_reach_the_rules_and_their_cases():
    cfg = load_config("waste:\n  enabled: true\n  gpu_idle: {utilisation_below: 0.15, for: 20m}\n"
                      "  memory_unused: {used_below: 0.3, min_requested: 2GiB, for: 3h}\n")
    idle, unused, mem = waste_alerts(cfg.waste)
    assert "< 0.15" in idle.expr and idle.for_ == "20m" and unused.for_ == "30m"
    assert "< 0.3" in mem.expr and f">= {2 << 30}" in mem.expr and mem.for_ == "3h"
    assert "0.075x50" in dict(idle.fire.series)['hpc_gpu_utilization_ratio{cluster="c1",instance="n1:19466",' \
                                                 'job="hpcwatch-node",gpu="0",uuid="GPU-0"}']
    assert mem.fire.value == "15%"


@pytest.mark.parametrize("text, field", [
    ("waste: {enabled: yes please}", "waste.enabled"),
    ("waste: {enabled: true, gpu_idle: {utilisation_below: 5}}", "waste.gpu_idle.utilisation_below"),
    ("waste: {enabled: true, gpu_idle: {for: soon}}", "waste.gpu_idle.for"),
    ("waste: {enabled: true, gpu_unused: {for: 10s}}", "waste.gpu_unused.for"),
    ("waste: {enabled: true, memory_unused: {min_requested: lots}}", "waste.memory_unused.min_requested"),
    ("waste: {enabled: true, memory_unused: {used_below: 0}}", "waste.memory_unused.used_below"),
    ("waste: {enabled: true, gpu_idle: {threshold: 0.1}}", "waste.gpu_idle: unknown fields threshold"),
    ("waste: {enable: true}", "waste: unknown fields enable"),
    ("wastes: {}", "unknown fields: wastes"),
    ("waste: [1]", "waste: expected a mapping"),
    ("waste: {enabled: true", "not YAML"),
])
def test_bad_alert_config_names_the_field(text, field):
    with pytest.raises(ConfigError, match=re.escape(field)):
        load_config(text)


def test_sizes_in_the_config():
    assert load_config("waste: {memory_unused: {min_requested: 16GB}}").waste.memory_min_requested == 16 * 10**9
    assert load_config("waste: {memory_unused: {min_requested: 1.5GiB}}").waste.memory_min_requested == 3 << 29
    assert load_config("waste: {memory_unused: {min_requested: 1000}}").waste.memory_min_requested == 1000


def test_cli_rules_with_a_bad_config_is_one_error_line(tmp_path, capsys):
    bad = tmp_path / "alerts.yml"
    bad.write_text("waste: {enabled: true, gpu_idle: {for: soon}}")
    with pytest.raises(SystemExit) as exc:
        main(["alerts", "rules", "--config", str(bad)])
    assert str(exc.value).startswith(f"error: {bad}: waste.gpu_idle.for: expected a duration")
    assert main(["alerts", "rules", "--example-config"]) == 0
    assert capsys.readouterr().out == EXAMPLE_CONFIG


# --- Alertmanager: the users receiver and act ----------------------------------------------------------

BASE = "oncall: {type: webhook, url: x}\nticket: {type: webhook, url: y}\n"
USERS = "users: {type: email, to: '{{ .CommonLabels.user }}@x.edu', from: a@x.edu, smarthost: 'smtp:25'}\n"
ACT = "act: {url: 'http://127.0.0.1:19469/alertmanager'}\n"


def test_user_alerts_route_to_act_then_users_before_any_ticket():
    cfg = am.build(am.load_config(BASE + USERS + ACT))
    first, second = cfg["route"]["routes"][:2]
    assert first == {"receiver": "act", "matchers": ['audience="user"', 'alertname=~"HpcJobGpuIdle|HpcJobGpuUnused"'],
                     "group_by": ["cluster", "jobid", "alertname"], "repeat_interval": "1h", "continue": True}
    assert second["receiver"] == "users" and second["group_by"] == ["cluster", "user", "jobid"]
    receivers = {r["name"]: r for r in cfg["receivers"]}
    mail = receivers["users"]["email_configs"][0]
    assert mail["to"] == "{{ .CommonLabels.user }}@x.edu" and mail["send_resolved"] is True
    assert "hpcwatch job report {{ .CommonLabels.jobid }} --cluster {{ .CommonLabels.cluster }}" in mail["text"]
    assert am.ACT_NOTICE in mail["text"] and mail["headers"]["Subject"] == am.USER_EMAIL_SUBJECT
    assert receivers["act"] == {"name": "act", "webhook_configs": [{"send_resolved": True,
                                                                     "url": "http://127.0.0.1:19469/alertmanager"}]}


def test_without_users_or_act_user_alerts_are_recorded_only():
    cfg = am.build(am.load_config(BASE))
    assert cfg["route"]["routes"][0] == {"receiver": "record-only", "matchers": ['audience="user"'],
                                         "group_by": ["cluster", "user", "jobid"], "repeat_interval": "24h"}
    assert {r["name"] for r in cfg["receivers"]} == {"oncall", "ticket", "record-only"}
    mail = am.build(am.load_config(BASE + USERS))["receivers"][-1]["email_configs"][0]
    assert am.ACT_NOTICE not in mail["text"]


@pytest.mark.parametrize("text, field", [
    ("users: {type: pagerduty, routing_key: k}", "users.type: expected one of email, webhook"),
    ("users: {type: email, to: a@b}", "users: an email receiver needs from"),
    ("act: {alerts: [HpcJobGpuIdle]}", "act: expected a mapping with the `url`"),
    ("act: {url: 'http://x', repeat_every: 1h}", "act: unknown fields repeat_every"),
    ("act: {url: 'http://x', alerts: []}", "act.alerts"),
])
def test_bad_users_or_act_config_names_the_field(text, field):
    with pytest.raises(am.ConfigError, match=re.escape(field)):
        am.load_config(BASE + text)


# --- act's decisions before Slurm is asked ------------------------------------------------------------

def _alert(status: str = "firing", starts: str = "2026-01-01T00:00:00Z", **labels: str) -> dict:
    return {"status": status, "fingerprint": "f1", "startsAt": starts,
            "labels": {"alertname": "HpcJobGpuIdle", "cluster": "alpha", "jobid": "42", "user": "alice", **labels}}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def _actor(tmp_path, clock, **policy) -> Actor:
    # A bin dir with no squeue: any question to Slurm fails, so these paths must not ask it.
    return Actor(Policy(partitions=frozenset({"gpu"}), confirm_after_s=3600, **policy),
                 Slurm(bin_dir=str(tmp_path / "no-slurm")), Ledger(str(tmp_path / "state.json")), clock=clock)


def test_act_warns_waits_resets_on_recovery_and_remembers(tmp_path):
    clock = Clock()
    act = _actor(tmp_path, clock, cluster="alpha")

    def one(alert: dict) -> str:
        return act.handle({"alerts": [alert]})[0].decision

    assert one(_alert(alertname="HpcNodeOOMKills")) == "ignored"
    assert one(_alert(cluster="beta")) == "ignored"
    assert one(_alert(jobid="42; rm -rf /")) == "ignored"
    assert one(_alert()) == "first_warning"
    clock.now += 1800
    assert one(_alert()) == "waiting"
    assert one(_alert(status="resolved")) == "recovered"
    clock.now += 3600                                   # past confirm_after since the first warning
    assert one(_alert()) == "first_warning"             # recovered in between: starts over
    clock.now += 60
    assert one(_alert(starts="2026-01-01T05:00:00Z")) == "first_warning"   # a new episode, resolve lost
    # A restart keeps the first warning; confirmed now, Slurm is asked and cannot answer: not cancelled.
    again = _actor(tmp_path, clock, cluster="alpha")
    clock.now += 3600
    d = again.handle({"alerts": [_alert(starts="2026-01-01T05:00:00Z")]})[0]
    assert d.decision == "not_cancelled" and "cannot ask Slurm" in d.reason and d.episode.warnings == 2
    record = d.record()
    assert record["dry_run"] is True and record["jobid"] == "42" and record["fingerprint"] == "f1"
    assert json.loads(json.dumps(record)) == record
    assert set(DECISIONS) >= {"first_warning", "waiting", "recovered", "not_cancelled", "would_cancel", "cancelled"}


def test_act_rejects_what_is_not_a_webhook_body(tmp_path):
    with pytest.raises(ValueError, match="alerts"):
        _actor(tmp_path, Clock()).handle({"status": "firing"})


def test_act_cli_refuses_a_bad_duration(capsys):
    assert main(["act", "--confirm-after", "soon"]) == 2
    assert capsys.readouterr().err.startswith("error: --confirm-after 'soon'")


def test_waste_config_defaults_match_the_example():
    assert ON.waste == WasteConfig(enabled=True)
