"""Generated SLO rules and tests run through the real promtool (Prometheus 2.42) and vmalert: every
expected output lints clean, the generated alert tests pass, and they fail when any single alert
condition's factor or window is wrong (mutation test). The job-success queries are evaluated by
Prometheus for every (outcome, cause) pair the exporter writes."""

from __future__ import annotations

import dataclasses
import glob
import os
import subprocess
import sys

import pytest
import yaml
from helpers import require_binary
from hpcwatch.exporters.scheduler.outcomes import NEUTRAL_PAIRS
from hpcwatch.slo import generate_rules, load_specs, yamlout
from hpcwatch.slo.catalogue import FINISHED
from hpcwatch.slo.generate import alert_rules
from hpcwatch.slo.promtests import promtool_test_files
from hpcwatch.slo.validate import render_window
from hpcwatch.slo.writer import prometheus_text, write_all

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo")
EXPECTED = sorted(glob.glob(os.path.join(FIX, "golden", "*.yml"))
                  + glob.glob(os.path.join(FIX, "*", "expected", "*.yml")))
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "unit"))


def _run(argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, check=False)


def _plain_rules(path: str, tmp_path) -> list[str]:
    """Each document of a generated file as a plain rule file (promtool and vmalert read one document,
    and only a PrometheusRule's groups)."""
    with open(path) as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d]
    out = []
    for i, doc in enumerate(docs):
        groups = doc["spec"]["groups"] if doc.get("kind") == "PrometheusRule" else doc["groups"]
        p = tmp_path / f"{os.path.basename(path)}.{i}.yml"
        p.write_text(yaml.safe_dump({"groups": groups}))
        out.append(str(p))
    return out


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: os.path.relpath(p, FIX))
def test_promtool_lint_clean(path, tmp_path):
    promtool = require_binary("promtool")
    proc = _run([promtool, "check", "rules", "--lint=all", *_plain_rules(path, tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", EXPECTED, ids=lambda p: os.path.relpath(p, FIX))
def test_vmalert_loads_rules(path, tmp_path):
    vmalert = require_binary("vmalert")
    for plain in _plain_rules(path, tmp_path):
        proc = _run([vmalert, f"-rule={plain}", "-dryRun", "-rule.validateExpressions"])
        assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vmalert_rejects_a_broken_rule(tmp_path):
    """The vmalert check can fail: a broken expression is refused."""
    vmalert = require_binary("vmalert")
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - record: a:b:c\n    expr: sum(rate(x[5m])\n")
    assert _run([vmalert, f"-rule={bad}", "-dryRun"]).returncode != 0


def _generated_tests(tmp_path, spec: str, names: set[str]) -> tuple[list, list[str]]:
    slos = [s for s in load_specs([os.path.join(FIX, "inputs", spec)]) if s.name in names]
    assert {s.name for s in slos} == names
    files = promtool_test_files(slos, str(tmp_path))
    files[str(tmp_path / "all.rules.yml")] = prometheus_text(generate_rules(slos))
    write_all(files)
    return slos, sorted(p for p in files if p.endswith(".test.yml"))


def test_generated_promtool_tests_pass(tmp_path):
    promtool = require_binary("promtool")
    _, tests = _generated_tests(tmp_path, "hpc-catalogue.yaml", {"job-success-alpha-batch"})
    tests += _generated_tests(tmp_path, "sloth-prometheus.yaml", {"requests-availability"})[1]
    proc = _run([promtool, "check", "rules", "--lint=all", *[str(p) for p in tmp_path.glob("*.yml")
                                                            if not p.name.endswith(".test.yml")]])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([promtool, "test", "rules", *[os.path.basename(t) for t in tests]], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tests[0]) as fh:
        names = [t["name"] for t in yaml.safe_load(fh)["tests"]]
    assert any(n.endswith("(min_events guard)") for n in names)
    assert "hpc-job-success-alpha-batch: ticket quick (2h, 1d): 1% past its threshold fires it alone" in names


def _mutants(slo):
    """(what, SLO) with exactly one alert condition wrong: its factor x10 or /10, or a window swapped."""
    windows = slo.windows.windows()
    for key in ("page_quick", "page_slow", "ticket_quick", "ticket_slow"):
        bw = getattr(slo.windows, key)
        other = next(w for w in windows if w not in (bw.short_s, bw.long_s))
        for what, change in ((f"{key} factor x10", {"factor": bw.factor * 10}),
                             (f"{key} factor /10", {"factor": bw.factor / 10}),
                             (f"{key} long window {other}s", {"long_s": other}),
                             (f"{key} short window {other}s", {"short_s": other})):
            wins = dataclasses.replace(slo.windows, **{key: dataclasses.replace(bw, **change)})
            yield what, dataclasses.replace(slo, windows=wins)


@pytest.mark.parametrize("spec,name", [("hpc-catalogue.yaml", "job-success-alpha-batch"),
                                       ("sloth-prometheus.yaml", "requests-availability")])
def test_generated_tests_catch_any_single_wrong_condition(tmp_path, spec, name):
    """Mutation test: the alert rules generated from a model with one condition wrong fail the tests
    generated from the right model, for every condition and every kind of mistake (the issue's case:
    the ticket quick factor 3 -> 30 used to pass because the slow ticket condition fired too)."""
    promtool = require_binary("promtool")
    (slo,), (test,) = _generated_tests(tmp_path, spec, {name})
    alerts = tmp_path / f"{slo.id}.alerts.yml"
    good = alerts.read_text()
    assert _run([promtool, "test", "rules", os.path.basename(test)], cwd=str(tmp_path)).returncode == 0
    survivors = []
    for what, mutant in _mutants(slo):
        alerts.write_text(yamlout.dump({"groups": [{"name": "m", "rules": alert_rules(mutant)}]}))
        proc = _run([promtool, "test", "rules", os.path.basename(test)], cwd=str(tmp_path))
        if proc.returncode == 0:
            survivors.append(what)
    alerts.write_text(good)
    assert survivors == [], f"generated tests passed with a wrong condition: {survivors}"


def test_job_success_pairs_in_prometheus(tmp_path):
    """Prometheus evaluates the catalogue's job-success queries: each pair the exporter writes lands
    in error, good or out of the total exactly as docs/slo.md's table says."""
    from test_slo_catalogue import _catalogue, documented

    promtool = require_binary("promtool")
    slo = _catalogue()  # the catalogue's defaults, which the docs' table describes
    error, total = (render_window(q, "5m") for q in (slo.sli.error_query, slo.sli.total_query))
    table = documented()
    tests = []
    for outcome, cause in NEUTRAL_PAIRS:
        series = [{"series": f'{FINISHED}{{cluster="alpha",queue="batch",outcome="{o}",cause="{c}"}}',
                   "values": "0+1x10" if (o, c) == (outcome, cause) else "0x10"} for o, c in NEUTRAL_PAIRS]
        where = table[(outcome, cause)]
        exp = {"error": (1, 1), "good": (0, 1), "out of the total": (0, 0)}[where]
        tests.append({"name": f"{outcome}/{cause} lands in {where}", "interval": "1m", "input_series": series,
                      "promql_expr_test": [
                          {"expr": f"({error}) > bool 0.5", "eval_time": "10m", "exp_samples": [{"value": exp[0]}]},
                          {"expr": f"({total}) > bool 0.5", "eval_time": "10m", "exp_samples": [{"value": exp[1]}]}]})
    (tmp_path / "empty.yml").write_text("groups: []\n")
    (tmp_path / "pairs.test.yml").write_text(yaml.safe_dump({"rule_files": ["empty.yml"], "tests": tests}))
    proc = _run([promtool, "test", "rules", "pairs.test.yml"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _openslo(calendar: dict, duration: str = "1d") -> dict:
    def src(query: str) -> dict:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}

    window = {"duration": duration, "isRolling": False, "calendar": calendar}
    ratio = {"counter": True, "bad": src("sum(bad_total)"), "total": src("sum(all_total)")}
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "jobs"},
            "spec": {"service": "hpc", "budgetingMethod": "Occurrences", "timeWindow": [window],
                     "indicator": {"metadata": {"name": "i"}, "spec": {"ratioMetric": ratio}},
                     "objectives": [{"target": 0.9}]}}


def test_calendar_budget_resets_at_the_boundary(tmp_path):
    """A calendar day's error ratio averages only the samples since local midnight: an error-heavy
    first day does not burn the second day's budget (a rolling day would still be at 0.2)."""
    from hpcwatch.slo.loader import load_documents

    promtool = require_binary("promtool")
    (slo,) = load_documents([("cal.yaml", _openslo({"startTime": "1970-01-01 00:00:00", "timeZone": "UTC"}))])
    (tmp_path / "cal.rules.yml").write_text(prometheus_text(generate_rules([slo])))
    ids = 'sloth_id="hpc-jobs", sloth_service="hpc", sloth_slo="jobs"'
    # 0.2 until 23:59 of day one, 0 from midnight (a 1m series; rules evaluate every minute).
    series = [{"series": f'slo:sli_error:ratio_rate5m{{{ids}, sloth_window="5m"}}', "values": "0.2x1439 0x180"}]

    def at(t: str, expr: str, value: float) -> dict:
        labels = f"{expr.split('{')[0]}{{{ids}}}"
        return {"expr": expr, "eval_time": t, "exp_samples": [{"labels": labels, "value": value}]}

    checks = [at("23h", f"slo:sli_error:ratio_calendar1d{{{ids}}}", 0.2),
              at("25h", f"slo:sli_error:ratio_calendar1d{{{ids}}}", 0),
              # 23h into the day at 2x the budget's rate: 23/24 of the day's budget x 2 is spent.
              at("23h", f"slo:period_error_budget_remaining:ratio{{{ids}}}", 1 - (0.2 / (1 - 0.9)) * (82800 / 86400)),
              at("25h", f"slo:period_error_budget_remaining:ratio{{{ids}}}", 1),
              at("23h", f"slo:calendar_period:index{{{ids}}}", 0), at("25h", f"slo:calendar_period:index{{{ids}}}", 1)]
    for c in checks:  # recorded series carry the SLO's labels, and the window on the SLI ones
        if "ratio_calendar" in c["expr"] or "remaining" in c["expr"]:
            c["exp_samples"][0]["labels"] = c["exp_samples"][0]["labels"][:-1] + ', sloth_window="1d"}'
    doc = {"rule_files": ["cal.rules.yml"], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": series, "promql_expr_test": checks}]}
    (tmp_path / "cal.test.yml").write_text(yaml.safe_dump(doc))
    proc = _run([promtool, "test", "rules", "cal.test.yml"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_calendar_boundaries_follow_the_time_zone(tmp_path):
    """America/New_York: a day starts at 05:00 UTC in winter and 04:00 UTC in summer (1970's DST),
    a month at noon local on the 1st; Prometheus evaluates the generated index expressions."""
    from hpcwatch.slo.loader import load_documents

    promtool = require_binary("promtool")
    ny = {"startTime": "1970-01-01 00:00:00", "timeZone": "America/New_York"}
    (day,) = load_documents([("d.yaml", _openslo(ny))])
    (month,) = load_documents([("m.yaml", _openslo({**ny, "startTime": "1970-01-01 12:00:00"}, "1M"))])
    cases = [(day, "28h59m", 0), (day, "29h1m", 1),            # Jan 2 05:00 UTC = midnight EST
             (day, "4347h59m", 180), (day, "4348h1m", 181),    # Jul 1 04:00 UTC = midnight EDT
             (month, "760h59m", 0), (month, "761h1m", 1)]      # Feb 1 17:00 UTC = noon EST
    checks = [{"expr": slo.calendar.index_expr, "eval_time": t, "exp_samples": [{"labels": "{}", "value": v}]}
              for slo, t, v in cases]
    checks.append({"expr": day.calendar.elapsed_expr, "eval_time": "4360h", "exp_samples": [{"labels": "{}",
                                                                                            "value": 0.5}]})
    (tmp_path / "empty.yml").write_text("groups: []\n")
    (tmp_path / "tz.test.yml").write_text(yaml.safe_dump({"rule_files": ["empty.yml"],
                                                          "tests": [{"input_series": [], "promql_expr_test": checks}]}))
    proc = _run([promtool, "test", "rules", "tz.test.yml"], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_openslo_generated_tests_catch_wrong_burn_alerts(tmp_path):
    """OpenSLO burn-rate and no-data alerts get their own cases; a threshold x10 or another lookback
    window in one of them fails the generated tests."""
    promtool = require_binary("promtool")
    openslo = os.path.join(FIX, "openslo")
    slos = [s for s in load_specs([os.path.join(openslo, f) for f in ("slis.yaml", "slos.yaml", "alerting.yaml")])
            if s.burn_alerts]
    assert [s.name for s in slos] == ["slurmctld-rpc"]
    write_all(promtool_test_files(slos, str(tmp_path)))
    (slo,) = slos
    alerts, test = tmp_path / f"{slo.id}.alerts.yml", f"{slo.id}.test.yml"
    assert _run([promtool, "test", "rules", test], cwd=str(tmp_path)).returncode == 0
    survivors = []
    for i, a in enumerate(slo.burn_alerts):
        other = 6 * 3600 if a.window_s != 6 * 3600 else 3600
        for what, change in (("threshold x10", {"threshold": a.threshold * 10}), ("window", {"window_s": other})):
            if a.no_data and what.startswith("threshold"):
                continue
            wrong = list(slo.burn_alerts)
            wrong[i] = dataclasses.replace(a, **change)
            mutant = dataclasses.replace(slo, burn_alerts=tuple(wrong))
            alerts.write_text(yamlout.dump({"groups": [{"name": "m", "rules": alert_rules(mutant)}]}))
            if _run([promtool, "test", "rules", test], cwd=str(tmp_path)).returncode == 0:
                survivors.append(f"{a.name} {what}")
    assert survivors == []


def test_examples_lint_and_their_tests_pass(tmp_path):
    """examples/slo/ as shipped: every generated rule file lints clean and every generated test passes."""
    from hpcwatch.cli import main

    promtool = require_binary("promtool")
    examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "slo")
    assert main(["slo", "generate", "-i", examples, "-o", str(tmp_path) + "/", "--tests", str(tmp_path / "t")]) == 0
    rules = sorted(str(p) for p in tmp_path.glob("*.yml"))
    plain = [q for p in rules for q in _plain_rules(p, tmp_path / "t")]
    proc = _run([promtool, "check", "rules", "--lint=all", *plain])
    assert proc.returncode == 0 and "FAILED" not in proc.stdout + proc.stderr, proc.stdout + proc.stderr
    tests = sorted(p.name for p in (tmp_path / "t").glob("*.test.yml"))
    assert len(tests) >= 5
    proc = _run([promtool, "test", "rules", *tests], cwd=str(tmp_path / "t"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
