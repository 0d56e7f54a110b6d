"""Generated SLO rules and tests run through the real promtool (Prometheus 2.42) and vmalert."""

from __future__ import annotations

import os
import subprocess

import pytest
import yaml
from helpers import require_binary
from hpcwatch.slo import generate_rules, load_specs
from hpcwatch.slo.promtests import promtool_test_files
from hpcwatch.slo.writer import prometheus_text, write_all

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo")
GOLDEN = sorted(os.path.join(FIX, "golden", f) for f in os.listdir(os.path.join(FIX, "golden")))


def _run(argv: list[str], cwd: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=cwd, check=False)


def _plain_rules(path: str, tmp_path) -> str:
    """A PrometheusRule's groups as a plain rule file (promtool and vmalert read only those)."""
    with open(path) as fh:
        doc = yaml.safe_load(fh)
    if doc.get("kind") != "PrometheusRule":
        return path
    out = tmp_path / (os.path.basename(path) + ".plain.yml")
    out.write_text(yaml.safe_dump({"groups": doc["spec"]["groups"]}))
    return str(out)


@pytest.mark.parametrize("path", GOLDEN, ids=os.path.basename)
def test_promtool_lint_clean(path, tmp_path):
    promtool = require_binary("promtool")
    proc = _run([promtool, "check", "rules", "--lint=all", _plain_rules(path, tmp_path)])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout and "FAILED" not in proc.stdout + proc.stderr


@pytest.mark.parametrize("path", GOLDEN, ids=os.path.basename)
def test_vmalert_loads_rules(path, tmp_path):
    vmalert = require_binary("vmalert")
    proc = _run([vmalert, f"-rule={_plain_rules(path, tmp_path)}", "-dryRun", "-rule.validateExpressions"])
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vmalert_rejects_a_broken_rule(tmp_path):
    """The vmalert check can fail: a broken expression is refused."""
    vmalert = require_binary("vmalert")
    bad = tmp_path / "bad.yml"
    bad.write_text("groups:\n- name: g\n  rules:\n  - record: a:b:c\n    expr: sum(rate(x[5m])\n")
    assert _run([vmalert, f"-rule={bad}", "-dryRun"]).returncode != 0


def _generated_tests(tmp_path, spec: str, names: set[str]) -> list[str]:
    slos = [s for s in load_specs([os.path.join(FIX, "inputs", spec)]) if s.name in names]
    assert {s.name for s in slos} == names
    files = promtool_test_files(slos, str(tmp_path))
    files[str(tmp_path / "all.rules.yml")] = prometheus_text(generate_rules(slos))
    write_all(files)
    return sorted(p for p in files if p.endswith(".test.yml"))


@pytest.mark.slow
def test_generated_promtool_tests_pass(tmp_path):
    promtool = require_binary("promtool")
    tests = _generated_tests(tmp_path, "hpc-catalogue.yaml", {"job-success-alpha-batch"})
    tests += _generated_tests(tmp_path, "sloth-prometheus.yaml", {"requests-availability"})
    proc = _run([promtool, "check", "rules", "--lint=all", *[str(p) for p in tmp_path.glob("*.yml")
                                                            if not p.name.endswith(".test.yml")]])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run([promtool, "test", "rules", *[os.path.basename(t) for t in tests]], cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    with open(tests[0]) as fh:
        text = fh.read()
    assert "min_events guard" in text and "burn 0.5x budget" in text and "exp_alerts: []" in text


@pytest.mark.slow
def test_generated_tests_catch_a_wrong_factor(tmp_path):
    """The generated tests can fail: a page threshold off by 10x is caught."""
    promtool = require_binary("promtool")
    tests = _generated_tests(tmp_path, "sloth-prometheus.yaml", {"requests-availability"})
    alerts = tmp_path / "webportal-requests-availability.alerts.yml"
    alerts.write_text(alerts.read_text().replace("(14.4 *", "(1.44 *"))
    proc = _run([promtool, "test", "rules", os.path.basename(tests[0])], cwd=str(tmp_path))
    assert proc.returncode != 0 and "FAILED" in proc.stdout + proc.stderr
