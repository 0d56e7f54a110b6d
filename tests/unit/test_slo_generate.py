"""SLO rule generation: golden files per input kind, exact Sloth compatibility, factors, guard, warnings."""

from __future__ import annotations

import os
import re
import stat

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


CASES_DIR = os.path.join(FIX, "sloth-cases")
# Sloth v0.16.0's golden cases (test/integration/prometheus) and contrib examples, on inputs modelled on
# theirs: with --sloth-compatible, each expected file is Sloth's text apart from the header line, the
# sloth_version label and the renames (checked against Sloth's files when these were written).
SLOTH_CASES = {
    "base": (["base.yaml"], ["--sloth-compatible"]),
    "base-guarded": (["base.yaml"], []),
    "base-k8s": (["base-k8s.yaml"], ["--sloth-compatible"]),
    "base-no-alerts": (["base.yaml"], ["--sloth-compatible", "--disable-alerts"]),
    "base-no-recordings": (["base.yaml"], ["--sloth-compatible", "--disable-recordings"]),
    "base-extra-labels": (["base.yaml"], ["--sloth-compatible", "-l", "app=hpcwatch", "-l", "area=emea"]),
    "base-28d": (["base.yaml"], ["--sloth-compatible", "--default-slo-period", "28d"]),
    "base-custom-windows-7d": (["base.yaml"], ["--sloth-compatible", "--period", "7d", "--windows",
                                               os.path.join(FIX, "windows-7d.yaml")]),
    "multifile": (["multifile.yaml"], ["--sloth-compatible"]),
    "multifile-k8s": (["multifile-k8s.yaml"], ["--sloth-compatible"]),
    "openslo-v1alpha": (["openslo.yaml"], ["--sloth-compatible"]),
    "denominator-corrected": (["denominator-corrected.yaml"], ["--sloth-compatible", "-l", "cmd=examplesgen.sh"]),
    "contrib-plugins": (["contrib-plugins.yaml"], ["--sloth-compatible", "-l", "cmd=examplesgen.sh"]),
    "more-plugins": (["more-plugins.yaml"], []),
    "period-1d": (["periods.yaml"], ["--period", "1d"]),
    "period-3d": (["periods.yaml"], ["--period", "3d"]),
}


@pytest.mark.parametrize("case", sorted(SLOTH_CASES))
def test_sloth_cases(case, tmp_path):
    """`hpcwatch slo generate` (the installed CLI's entry point) for each case, byte for byte."""
    from hpcwatch.cli import main

    inputs, args = SLOTH_CASES[case]
    out = tmp_path / "out.yml"
    argv = ["slo", "generate", "--sloth-version", "test", "-o", str(out), *args]
    for name in inputs:
        argv += ["-i", os.path.join(CASES_DIR, name)]
    assert main(argv) == 0
    _golden_at(os.path.join(CASES_DIR, "expected", f"{case}.yml"), out.read_text())


def _golden_at(path: str, text: str) -> None:
    if UPDATE:
        with open(path, "w") as fh:
            fh.write(text)
    with open(path) as fh:
        assert text == fh.read(), f"{path} differs (UPDATE_GOLDEN=1 to accept)"


def _cli(*argv: str) -> tuple[int, str, str]:
    import contextlib
    import io

    from hpcwatch.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = main(["slo", "generate", "--sloth-version", "test", *argv])
    return rc, out.getvalue(), err.getvalue()


def test_no_yaml_anchors_or_aliases():
    """Generators share label dicts between rules; the text must never say &id001 / *id001."""
    paths = [os.path.join(d, f) for d in (os.path.join(FIX, "golden"), os.path.join(CASES_DIR, "expected"))
             for f in os.listdir(d)]
    for path in paths:
        with open(path) as fh:
            text = fh.read()
        assert not re.search(r"[&*]id\d{3}", text), path


def test_one_prometheusrule_per_crd_with_its_metadata():
    _, text, _ = _cli("-i", os.path.join(CASES_DIR, "multifile-k8s.yaml"))
    docs = [d for d in yaml.safe_load_all(text) if d]
    assert [(d["metadata"]["name"], d["metadata"]["namespace"]) for d in docs] == [
        ("portal-slos", "monitoring"), ("scheduler-slos", "hpc")]
    assert {g["name"].rsplit("-", 2)[-2] for g in docs[1]["spec"]["groups"]} == {"scheduler"}
    _, text, _ = _cli("-i", os.path.join(CASES_DIR, "base-k8s.yaml"))
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    assert doc["metadata"]["labels"] == {"app.kubernetes.io/component": "SLO", "app.kubernetes.io/managed-by": "sloth",
                                         "prometheus": "k8s", "role": "alert-rules"}
    assert doc["metadata"]["annotations"] == {"hpcwatch.io/owner": "hpc-ops"}


def test_dir_output_is_one_yml_file_per_object(tmp_path):
    for only in (r"multifile\.yaml", "multifile-k8s"):
        rc, _, err = _cli("-i", CASES_DIR, "-e", "expected", "-n", only, "-o", str(tmp_path) + "/")
        assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == ["multifile-k8s-portal-slos.yml", "multifile-k8s-scheduler-slos.yml",
                                            "multifile-portal.yml", "multifile-scheduler.yml"]
    for name in os.listdir(tmp_path):
        with open(tmp_path / name) as fh:
            assert len([d for d in yaml.safe_load_all(fh) if d]) == 1  # Prometheus reads one document
        assert stat.S_IMODE(os.stat(tmp_path / name).st_mode) == 0o644


def test_several_documents_in_one_rule_file_warn(tmp_path):
    rc, _, err = _cli("-i", os.path.join(CASES_DIR, "multifile.yaml"), "-o", str(tmp_path / "r.yml"))
    assert rc == 0 and "holds 2 YAML documents" in err and "reads only the first document" in err


def test_format_forced(tmp_path):
    _, text, _ = _cli("-i", os.path.join(CASES_DIR, "base-k8s.yaml"), "--format", "prometheus")
    assert text.count("\ngroups:\n") == 1 and "PrometheusRule" not in text
    _, text, _ = _cli("-i", os.path.join(CASES_DIR, "base.yaml"), "--format", "prometheus-operator",
                      "--name", "portal", "--namespace", "mon")
    (doc,) = [d for d in yaml.safe_load_all(text) if d]
    assert doc["kind"] == "PrometheusRule"
    assert (doc["metadata"]["name"], doc["metadata"]["namespace"]) == ("portal", "mon")


def test_both_disables_leave_nothing_and_say_so():
    rc, _, err = _cli("-i", os.path.join(CASES_DIR, "base.yaml"), "--disable-alerts", "--disable-recordings")
    assert rc == 2 and "--disable-alerts and --disable-recordings together leave none" in err


@pytest.mark.parametrize("argv,words", [
    (["--slo-plugins", '{"id": "sloth.dev/contrib/info_labels/v1", "config": {"labels": {"site": "hq"}}}'], None),
    (["--slo-plugins", '{"id": "acme/my-plugin"}'], "not supported: Sloth SLO plugin `acme/my-plugin`"),
    (["--slo-plugins", "{id: x}"], "JSON like"),
    (["--plugins-path", "./plugins"], "not supported: Sloth plugins from disk are Go code"),
    (["--k8s-transform-plugin-id", "acme/transform"], "not supported: Sloth k8s transform plugin `acme/transform`"),
])
def test_plugin_options(argv, words):
    rc, out, err = _cli("-i", os.path.join(CASES_DIR, "base.yaml"), *argv)
    if words is None:
        info = [r for g in yaml.safe_load(out)["groups"] for r in g["rules"] if r.get("record") == "sloth_slo_info"]
        assert rc == 0 and all(r["labels"]["site"] == "hq" for r in info) and len(info) == 2
    else:
        assert rc == 2 and words in err, err


def test_spec_plugins_refused_by_id(tmp_path):
    spec = tmp_path / "p.yaml"
    base = "version: prometheus/v1\nservice: s\nslos:\n  - name: a\n    objective: 99\n"
    raw = "    sli: {raw: {error_ratio_query: 'sum(rate(e[{{.window}}]))'}}\n    alerting: {name: A}\n"
    spec.write_text(base + "    plugins: {chain: [{id: sloth.dev/contrib/unknown/v1}]}\n" + raw)
    rc, _, err = _cli("-i", str(spec))
    assert rc == 2 and "field 'slos[0].plugins.chain[0].id'" in err and "not supported: Sloth SLO plugin" in err
    spec.write_text(base + "    plugins: {chain: [{id: sloth.dev/contrib/denominator_corrected_rules/v1}]}\n"
                    "    sli: {raw: {error_ratio_query: 'sum(rate(e[{{.window}}]))'}}\n    alerting: {name: A}\n")
    rc, _, err = _cli("-i", str(spec))
    assert rc == 2 and "an events SLI for plugin" in err
    spec.write_text(base + "    sli: {plugin: {id: sloth-common/kubernetes/apiserver/availability}}\n")
    rc, _, err = _cli("-i", str(spec))
    assert rc == 2 and "not supported: Sloth SLI plugin `sloth-common/kubernetes/apiserver/availability`" in err


def test_more_plugins_semantics():
    slos = load_specs([os.path.join(CASES_DIR, "more-plugins.yaml")])
    rpc, rec = (generate_rules([s]) for s in slos)
    alerts = {r["alert"]: r for g in rpc["groups"] for r in g["rules"] if "alert" in r}
    exhausted = alerts["SchedulerBudgetNearlyExhausted"]
    sel = 'slo:period_error_budget_remaining:ratio{sloth_id="scheduler-rpc-availability"'
    assert exhausted["expr"].startswith(sel)
    assert exhausted["expr"].endswith("} <= 0.1") and exhausted["for"] == "10m"
    sli = [r for r in rpc["groups"][0]["rules"]]
    assert all(set(r["labels"]) == {"sloth_id", "sloth_service", "sloth_slo", "sloth_window", "team"} for r in sli)
    # overridePrevious: only the SLO's own chain runs; no alerts, a non-optimized period rule.
    assert [g["name"].split("-")[2] for g in rec["groups"]] == ["sli", "meta"]
    assert "sum_over_time" not in rec["groups"][0]["rules"][-1]["expr"]


def test_input_filters(tmp_path):
    rc, out, err = _cli("-i", CASES_DIR, "-e", "expected|k8s|openslo", "-n", "base|periods", "-o", str(tmp_path) + "/")
    assert rc == 0 and sorted(os.listdir(tmp_path)) == ["base.yml", "periods.yml"]
    rc, _, err = _cli("-i", CASES_DIR, "-e", "(")
    assert rc == 2 and "--fs-exclude" in err


def test_periods_that_are_alert_windows_have_one_rule_each():
    for period in ("1d", "3d"):
        rules = generate_rules(load_specs([os.path.join(CASES_DIR, "periods.yaml")], period=period))
        keys = [(r["record"], r["labels"].get("sloth_window")) for g in rules["groups"] for r in g["rules"]
                if "record" in r]
        assert len(keys) == len(set(keys)), period
        assert ("slo:sli_error:ratio_rate" + period, period) in keys


def test_duplicate_alert_rules_warn(tmp_path):
    spec = tmp_path / "d.yaml"
    one = ("  - name: {n}\n    objective: 99\n    sli: {{events: {{error_query: 'sum(rate(e[{{{{.window}}}}]))', "
           "total_query: 'sum(rate(t[{{{{.window}}}}]))'}}}}\n    alerting: {{name: Same}}\n")
    spec.write_text("version: prometheus/v1\nservice: s\nslos:\n" + one.format(n="a") + one.format(n="b"))
    rc, _, err = _cli("-i", str(spec))
    assert rc == 0 and "slos 'a' and 'b' both alert as 'Same' with the same labels" in err


def test_examples_generate(tmp_path):
    """Every shipped example loads and generates, one rule file per object."""
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "slo")
    rc, _, err = _cli("-i", examples, "-o", str(tmp_path) + "/", "--tests", str(tmp_path / "tests"))
    assert rc == 0, err
    assert sorted(os.listdir(tmp_path)) == sorted([f.replace(".yaml", ".yml") for f in os.listdir(examples)]
                                                  + ["tests"])


def test_disabled_alerts_take_the_min_events_guard_along():
    path = os.path.join(FIX, "inputs", "hpc-catalogue.yaml")
    names = [g["name"] for g in generate_rules(load_specs([path]), Options("t", alerts=False))["groups"]]
    assert names and not any(n.startswith(("hpcwatch-slo-guard", "sloth-slo-alerts")) for n in names)
