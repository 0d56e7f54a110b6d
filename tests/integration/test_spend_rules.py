"""The live spend and waste rules through the real tools: the shipped file and its promtool tests as
generated, the tests proven discriminating (a price off by a cent fails them), the rules of a price
table with per-partition GPU models, promtool's lint, and vmalert loading them."""

from __future__ import annotations

import copy
import os
import subprocess
import sys

import helpers
import yaml
from hpcwatch.accounting.prices import parse_price_table
from hpcwatch.accounting.spend_rules import spend_rules
from hpcwatch.accounting.spend_tests import promtool_cases

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules")
HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")
TABLE = """currency: USD
default: {cpu_hour: 0.03, mem_gb_hour: 0.004, gpu_hour: 1.5, gpu_hour_by_model: {h100: 3.5, "h100 80gb": 3.9}, kwh: 0.2}
partitions:
  gpu: {gpu_hour_by_model: {h100: 2.75}, kwh: 0.1}
  "batch.long": {cpu_hour: 0.0}
"""


def _promtool(*args: str, cwd: str) -> subprocess.CompletedProcess:
    return subprocess.run([helpers.require_binary("promtool"), *args], capture_output=True, text=True, cwd=cwd,
                          check=False, timeout=120)


def _write(tmp_path, tests: dict) -> str:
    prices = parse_price_table(TABLE)
    (tmp_path / "spend.rules.yml").write_text(yaml.safe_dump({"groups": [spend_rules(prices)]}, sort_keys=False))
    (tmp_path / "spend.test.yml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return str(tmp_path)


def test_shipped_spend_rules_pass_their_promtool_tests_and_lint():
    proc = _promtool("test", "rules", os.path.join("tests", "hpcwatch-spend.test.yml"), cwd=RULES)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _promtool("check", "rules", "--lint=all", "--lint-fatal", "hpcwatch-spend.rules.yml", cwd=RULES)
    assert proc.returncode == 0 and "SUCCESS" in proc.stdout, proc.stdout + proc.stderr


def test_partition_and_model_prices_and_the_tests_discriminate(tmp_path):
    """A table whose gpu partition prices an H100 apart, and a partition name with regex metacharacters:
    the generated expectations hold; each one moved by a cent fails."""
    prices = parse_price_table(TABLE)
    good = promtool_cases("spend.rules.yml", prices, 0.05)
    cwd = _write(tmp_path, good)
    proc = _promtool("test", "rules", "spend.test.yml", cwd=cwd)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    exprs = good["tests"][0]["promql_expr_test"]
    for i, case in enumerate(exprs):
        bad = copy.deepcopy(good)
        bad["tests"][0]["promql_expr_test"][i]["exp_samples"][0]["value"] = case["exp_samples"][0]["value"] + 0.01
        _write(tmp_path, bad)
        proc = _promtool("test", "rules", "spend.test.yml", cwd=cwd)
        assert proc.returncode != 0, f"the test of {case['expr']} passes with a wrong value"


def test_usage_rules_cli_writes_rules_and_tests_that_pass(tmp_path):
    (tmp_path / "prices.yaml").write_text(TABLE)
    out = subprocess.run([HPCWATCH, "usage", "rules", "--prices", str(tmp_path / "prices.yaml"), "-o",
                          str(tmp_path / "rules" / "spend.rules.yml"), "--tests", str(tmp_path / "tests" / "t.yml")],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    proc = _promtool("test", "rules", "t.yml", cwd=str(tmp_path / "tests"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    bad = subprocess.run([HPCWATCH, "usage", "rules", "--prices", str(tmp_path / "missing.yaml")],
                         capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.startswith("error: ") and "missing.yaml" in bad.stderr


def test_vmalert_loads_the_spend_rules():
    vmalert = helpers.require_binary("vmalert")
    path = os.path.join(RULES, "hpcwatch-spend.rules.yml")
    proc = subprocess.run([vmalert, f"-rule={path}", "-dryRun"], capture_output=True, text=True, timeout=120,
                          check=False)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
