"""SLO rule generation: golden files per input kind, exact Sloth compatibility, factors, guard, warnings."""

from __future__ import annotations

import os
import re

import pytest
import yaml
from hpcwatch.slo import alert_conditions, check_slos, generate_rules, load_specs
from hpcwatch.slo.generate import Options
from hpcwatch.slo.output import Target, render_outputs
from hpcwatch.slo.windows import WindowsCatalogue, default_windows
from hpcwatch.slo.writer import prometheus_text

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo")
INPUTS = sorted(f for f in os.listdir(os.path.join(FIX, "inputs")) if f.endswith(".yaml"))
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"


def _golden(name: str, text: str) -> None:
    path = os.path.join(FIX, "golden", name)
    if UPDATE:
        with open(path, "w") as fh:
            fh.write(text)
    with open(path) as fh:
        assert text == fh.read(), f"{name} differs from its golden file (UPDATE_GOLDEN=1 to accept)"


@pytest.mark.parametrize("name", INPUTS)
def test_golden_prometheus(name):
    slos = load_specs([os.path.join(FIX, "inputs", name)])
    text = prometheus_text(generate_rules(slos, "test"))
    _golden(name.replace(".yaml", ".rules.yml"), text)


def test_golden_prometheus_operator():
    path = os.path.join(FIX, "inputs", "hpc-catalogue.yaml")
    files = render_outputs(load_specs([path]), Target("-", "prometheus-operator", (path,), namespace="mon"),
                           Options("test"))
    _golden("hpc-catalogue.prometheusrule.yml", files["-"])


def test_sloth_upstream_output_rule_by_rule():
    """Sloth's own output for its k8s example is ours byte for byte in --sloth-compatible mode, apart
    from the header line; by default the only difference is hpcwatch's `((total) > 0)` guard."""
    src = os.path.join(FIX, "sloth-upstream", "k8s-getting-started.yml")
    with open(os.path.join(FIX, "sloth-upstream", "k8s-getting-started.sloth-output.yml")) as fh:
        sloth = fh.read()
    slos = load_specs([src], extra_labels={"cmd": "examplesgen.sh"})
    exact = render_outputs(slos, Target("-", inputs=(src,)), Options("dev", guard=False))["-"]
    assert exact.split("\n", 5)[5] == sloth.split("\n", 5)[5]
    ours = render_outputs(slos, Target("-", inputs=(src,)), Options("dev"))["-"]
    guarded = re.sub(r"\n        /\n        \((.*)\)\n", r"\n        /\n        ((\1) > 0)\n", sloth)
    assert ours.split("\n", 5)[5] == guarded.split("\n", 5)[5] != sloth.split("\n", 5)[5]


def test_factors_30d_28d_and_custom():
    w30, w28 = default_windows(30 * 86400), default_windows(28 * 86400)
    assert [w.factor for w in (w30.page_quick, w30.page_slow, w30.ticket_quick, w30.ticket_slow)] == [14.4, 6, 3, 1]
    assert [w.factor for w in (w28.page_quick, w28.page_slow, w28.ticket_quick, w28.ticket_slow)] == [
        13.44, 5.6000000000000005, 2.8000000000000003, 0.9333333333333333]
    cat = WindowsCatalogue.load([os.path.join(FIX, "windows-7d.yaml")])
    assert cat.get(7 * 86400).page_slow.factor == 12.5 * 168 / 100 / 6


def test_28d_period_names_windows_like_sloth():
    slos = load_specs([os.path.join(FIX, "inputs", "sloth-prometheus.yaml")], period="28d")
    text = prometheus_text(generate_rules(slos))
    assert "slo:sli_error:ratio_rate4w" in text and "vector(28)" in text
    assert "(13.44 * 0.0009999999999999432)" in text and "(5.6000000000000005 * 0.0009999999999999432)" in text


def test_catalogue_queries_and_guard():
    slos = load_specs([os.path.join(FIX, "inputs", "hpc-catalogue.yaml")])
    by = {s.name: s for s in slos}
    js = by["job-success-alpha-batch"]
    assert dict(js.labels)["queue"] == "batch" and js.min_events == 10
    assert 'cause=~"system"' in js.sli.error_query and 'outcome!~"preempted"' in js.sli.error_query
    assert 'outcome=~"cancelled",cause=~"none"' in js.sli.total_query
    qw = by["queue-wait-alpha-batch"]
    assert 'le="3600.0"' in qw.sli.error_query and "hpc_scheduler_pending_wait_seconds_count" in qw.sli.total_query
    rules = generate_rules([js])
    alerts = [r for g in rules["groups"] for r in g["rules"] if "alert" in r]
    assert all("slo:sli_events:count" in a["expr"] and ">= 10" in a["expr"] for a in alerts)
    conds = alert_conditions(js)
    assert [(c.severity, c.long_s, c.factor) for c in conds] == [
        ("page", 3600, 14.4), ("page", 21600, 6), ("ticket", 86400, 3), ("ticket", 259200, 1)]
    assert conds[0].threshold == 14.4 * js.error_budget and conds[0].min_events == 10


def test_warnings_page_impossible_and_no_guard(tmp_path):
    spec = tmp_path / "s.yaml"
    spec.write_text("""version: prometheus/v1
service: hpc
slos:
  - name: jobs
    objective: 90
    sli:
      events:
        error_query: sum(increase(hpc_scheduler_jobs_finished_total{cause="system"}[{{.window}}]))
        total_query: sum(increase(hpc_scheduler_jobs_finished_total[{{.window}}]))
    alerting:
      name: Jobs
""")
    warnings = check_slos(load_specs([str(spec)]))
    assert any("page quick alert can never fire" in w for w in warnings)
    assert not any("page slow alert can never fire" in w for w in warnings)
    assert any("without min_events" in w for w in warnings)


def test_api_model_is_immutable():
    slo = load_specs([os.path.join(FIX, "inputs", "sloth-k8s.yaml")])[0]
    with pytest.raises(AttributeError):
        slo.objective = 50
    with pytest.raises(TypeError):
        slo.labels["x"] = "y"
    assert slo.windows.windows()[0] == 300 and slo.period_s == 30 * 86400


def test_rule_files_are_yaml_with_unique_group_names():
    for name in INPUTS:
        doc = yaml.safe_load(prometheus_text(generate_rules(load_specs([os.path.join(FIX, "inputs", name)]))))
        names = [g["name"] for g in doc["groups"]]
        assert len(names) == len(set(names))
