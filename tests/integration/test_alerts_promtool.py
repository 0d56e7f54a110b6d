"""The infrastructure rules through the real tools: promtool lint, promtool unit tests (a firing and a
quiet case per alert), the cases proven discriminating, and vmalert loading the same file."""

from __future__ import annotations

import os
import re
import subprocess

import helpers
import yaml
from hpcwatch.alerts.rules import RULES_FILE, TESTS_FILE, render_rules, render_tests, unit_tests_dict


def _write(tmp_path, tests: dict | str | None = None) -> tuple[str, str]:
    rules = tmp_path / RULES_FILE
    rules.write_text(render_rules())
    test = tmp_path / TESTS_FILE
    test.write_text(tests if isinstance(tests, str) else yaml.safe_dump(tests) if tests else render_tests(RULES_FILE))
    return str(rules), str(test)


def _promtool(*args: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([helpers.require_binary("promtool"), *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=120)


def test_rules_pass_promtool_lint(tmp_path):
    rules, _ = _write(tmp_path)
    proc = _promtool("check", "rules", "--lint=all", "--lint-fatal", rules, cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout


def test_every_alert_fires_and_stays_quiet_in_promtool(tmp_path):
    _, test = _write(tmp_path)
    proc = _promtool("test", "rules", os.path.basename(test), cwd=str(tmp_path))
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_cases_discriminate(tmp_path):
    """Swap the expectations: every quiet case expected to fire and every firing case expected quiet must
    fail, so no case passes because the rule can never (or always) fire."""
    spec = unit_tests_dict([RULES_FILE])
    spec["tests"] = [t for t in spec["tests"] if "alert_rule_test" in t]  # recording rules: values, not alerts
    for t in spec["tests"]:
        art = t["alert_rule_test"][0]
        if art["exp_alerts"]:
            art["exp_alerts"] = []
        else:
            art["exp_alerts"] = [{"exp_labels": {}}]
    _, test = _write(tmp_path, spec)
    proc = _promtool("test", "rules", os.path.basename(test), cwd=str(tmp_path))
    assert proc.returncode != 0
    failed = len(re.findall(r"^\s+name: ", proc.stdout + proc.stderr, re.MULTILINE))
    assert failed == len(spec["tests"]), proc.stdout[-3000:] + proc.stderr[-3000:]


def test_recording_rule_cases_discriminate(tmp_path):
    """Every recording rule's expected value, off by one, must fail: each case pins what is recorded."""
    spec = unit_tests_dict([RULES_FILE])
    spec["tests"] = [t for t in spec["tests"] if "promql_expr_test" in t]
    assert spec["tests"]
    for t in spec["tests"]:
        for sample in t["promql_expr_test"][0]["exp_samples"]:
            sample["value"] += 1
    _, test = _write(tmp_path, spec)
    proc = _promtool("test", "rules", os.path.basename(test), cwd=str(tmp_path))
    assert proc.returncode != 0
    failed = len(re.findall(r"^\s+expr: ", proc.stdout + proc.stderr, re.MULTILINE))
    assert failed == len(spec["tests"]), proc.stdout[-3000:] + proc.stderr[-3000:]


def test_deploy_rules_and_tests_pass_promtool():
    root = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "deploy",
                        "prometheus", "rules")
    proc = _promtool("test", "rules", os.path.join("tests", TESTS_FILE), cwd=root)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_vmalert_loads_the_rules(tmp_path):
    rules, _ = _write(tmp_path)
    vmalert = helpers.require_binary("vmalert")
    proc = subprocess.run([vmalert, f"-rule={rules}", "-dryRun"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    bad = proc.stdout.replace(rules, "x")  # a broken rule file makes vmalert log `error` and exit non-zero
    assert "cannot parse" not in bad
