"""The infrastructure alert catalogue and Alertmanager generator, without external binaries."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from hpcwatch.alerts import alertmanager as am
from hpcwatch.alerts.catalog import alert_names, all_alerts
from hpcwatch.alerts.model import AlertRule, Case, render_template
from hpcwatch.alerts.rules import render_rules, render_tests

from hpcwatch import metric_names

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
ALERTS = [a for _, group in all_alerts() for a in group]
REQUIRED_ALERTS = {
    "HpcwatchExporterDown", "HpcwatchCollectorFailing", "HpcNodeMemoryPressure", "HpcNodeOOMKills",
    "HpcGpuCriticalXid", "HpcGpuEccUncorrectable", "HpcGpuRowRemapFailure", "HpcGpuRowRemapPending",
    "HpcGpuThermalThrottling", "HpcGpuPowerThrottling", "HpcGpuLost", "HpcFabricPortDown",
    "HpcFabricPhysicalStateChanged", "HpcFabricSymbolErrors", "HpcFabricLinkErrorRecovery", "HpcFabricLinkDowned",
    "HpcFabricCongestion", "HpcLustreTargetNearlyFull", "HpcNfsMajorTimeouts", "HpcSchedulerDown",
    "HpcSchedulerStale", "HpcSchedulerSlowCycles", "HpcSchedulerNodesDown", "HpcSchedulerNodesDrained",
    "HpcSchedulerSystemJobFailures",
}


def test_catalogue_covers_the_issue_and_names_are_unique():
    names = alert_names()
    assert len(names) == len(set(names))
    assert REQUIRED_ALERTS <= set(names), REQUIRED_ALERTS - set(names)


@pytest.mark.parametrize("a", ALERTS, ids=lambda a: a.name)
def test_rule_has_labels_annotations_and_runbook(a):
    rules = yaml.safe_load(render_rules())
    rule = next(r for g in rules["groups"] for r in g["rules"] if r.get("alert") == a.name)
    assert rule["labels"]["severity"] in ("critical", "warning", "info")
    assert set(rule["annotations"]) == {"summary", "description", "runbook_url"}
    assert rule["annotations"]["runbook_url"].endswith(f"/docs/runbooks/{a.name}.md")
    runbook = os.path.join(ROOT, "docs", "runbooks", f"{a.name}.md")
    with open(runbook, encoding="utf-8") as fh:
        text = fh.read()
    for heading in ("## What it means", "## How to confirm", "## What to do"):
        assert heading in text, f"{runbook} lacks {heading!r}"


@pytest.mark.parametrize("a", ALERTS, ids=lambda a: a.name)
def test_rule_reads_only_names_from_the_names_module(a):
    known = set(metric_names.all_metric_names())
    # node_ names are node_exporter's; a label value such as outcome="node_fail" is not a name.
    for name in re.findall(r"\b((?:hpc_|hpcwatch_|node_)[a-zA-Z0-9_]+)(?=[{\[)\s]|$)", a.expr):
        assert name in known, f"{a.name}: {name}"
    for series, _ in a.fire.series + a.quiet.series:
        assert series.split("{")[0] in known, f"{a.name}: test series {series}"


def test_render_template_expands_labels_and_value():
    assert render_template("{{ $labels.instance }} at {{ $value | humanizePercentage }}",
                           {"instance": "n1"}, "95%") == "n1 at 95%"
    with pytest.raises(ValueError):
        render_template("{{ $value }}", {}, "")
    with pytest.raises(ValueError):
        render_template("{{ range $labels }}x{{ end }}", {}, "1")


def test_model_rejects_unknown_severity_and_component():
    case = Case((("up", "1"),), "1m")
    with pytest.raises(ValueError, match="severity"):
        AlertRule("X", "up == 0", "page", "node", "s", "d", case, case)
    with pytest.raises(ValueError, match="component"):
        AlertRule("X", "up == 0", "critical", "disk", "s", "d", case, case)


def test_generated_tests_have_a_firing_and_a_quiet_case_per_alert():
    """And a per-node alert a third: its firing series with the node under maintenance, silent."""
    tests = yaml.safe_load(render_tests("rules.yml"))["tests"]
    for a in ALERTS:
        mine = [t for t in tests if "alert_rule_test" in t and t["alert_rule_test"][0]["alertname"] == a.name]
        assert [bool(t["alert_rule_test"][0]["exp_alerts"]) for t in mine] == [True, False] + [False] * a.per_node


def test_per_node_alerts_leave_nodes_under_maintenance_out():
    """Every operators' alert about a node (node, GPU, fabric, a node's filesystem client, its exporter) drops
    the nodes the scheduler has under maintenance; cluster-wide and job-owner alerts do not."""
    per_node = {a.name for a in ALERTS if a.per_node}
    assert {"HpcwatchExporterDown", "HpcNodeOOMKills", "HpcGpuLost", "HpcFabricPortDown", "HpcLustreUnhealthy",
            "HpcGpfsDaemonDown", "HpcNfsMajorTimeouts"} <= per_node
    assert not per_node & {"HpcSchedulerDown", "HpcSchedulerNodesDown", "HpcLustreTargetNearlyFull"}
    rules = {r["alert"]: r["expr"] for g in yaml.safe_load(render_rules())["groups"] for r in g["rules"]
             if "alert" in r}   # the aggregation group's recording rules are about no node
    for name in per_node:
        assert rules[name].endswith(") unless on (cluster, node) hpc_scheduler_maintenance"), name


def test_every_recording_rule_has_a_value_test_and_a_name_from_the_names_module():
    from hpcwatch.alerts import recording

    from hpcwatch import metric_names
    tests = yaml.safe_load(render_tests("rules.yml"))["tests"]
    recorded = [t["promql_expr_test"][0]["expr"] for t in tests if "promql_expr_test" in t]
    rules = yaml.safe_load(render_rules())["groups"][0]
    assert rules["name"] == recording.GROUP
    assert recorded == [r["record"] for r in rules["rules"]]
    assert set(recorded) <= set(metric_names.all_metric_names())


def test_generated_files_are_stamped():
    assert render_rules().startswith("# Generated by `hpcwatch alerts rules`")
    assert am.render(am.load_config(am.EXAMPLE_CONFIG)).startswith("# Generated by")


# --- Alertmanager config ---------------------------------------------------------------------------

def test_routing_tree_groups_and_routes_by_severity():
    cfg = am.build(am.load_config(am.EXAMPLE_CONFIG))
    assert cfg["route"]["group_by"] == ["cluster", "alertname", "sloth_slo"]
    routes = {tuple(r["matchers"]): r["receiver"] for r in cfg["route"]["routes"]}
    assert routes[('sloth_severity="page"',)] == routes[('severity="critical"',)] == "oncall"
    assert routes[('sloth_severity="ticket"',)] == routes[('severity="warning"',)] == "ticket"


@pytest.mark.parametrize("text, field", [
    ("oncall: {type: slack, url: x}\nticket: {type: webhook, url: y}", "oncall.type"),
    ("oncall: {type: pagerduty}\nticket: {type: webhook, url: y}", "routing_key"),
    ("oncall: {type: webhook, url: x}\nticket: {type: opsgenie}", "api_key"),
    ("oncall: {type: webhook, url: x}\nticket: {type: webhook, url: y}\nroute: {}", "unknown fields: route"),
    ("oncall: {type: webhook, url: x}\nticket: {type: webhook, url: y}\njob_failure_slos: job", "job_failure_slos"),
    ("- a list", "mapping"),
    ("oncall: [unclosed", "not YAML"),
])
def test_bad_receiver_config_names_the_field(text, field):
    with pytest.raises(am.ConfigError, match=re.escape(field)):
        am.load_config(text)


def test_job_failure_slo_names_are_escaped_in_the_inhibition():
    cfg = am.load_config("oncall: {type: webhook, url: x}\nticket: {type: webhook, url: y}\n"
                         "job_failure_slos: [job-success, a.b]")
    matchers = [m for r in am.build(cfg)["inhibit_rules"] for m in r["target_matchers"]]
    assert 'sloth_slo=~"(job-success|a\\.b)(-.+)?"' in matchers
