"""The spend rules and their promtool tests as files, from a price table on disk."""

from __future__ import annotations

import yaml
from hpcwatch.accounting.prices import load_price_table
from hpcwatch.accounting.rules import GPU_IDLE
from hpcwatch.accounting.spend_rules import spend_rules
from hpcwatch.accounting.spend_tests import promtool_cases


def _dump(data: dict) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=False, width=100, allow_unicode=True)


def render_rules(prices_path: str, header: str = "", gpu_idle_below: float = GPU_IDLE) -> str:
    """A Prometheus rule file with the spend group of the price table at `prices_path`."""
    return header + _dump({"groups": [spend_rules(load_price_table(prices_path), gpu_idle_below)]})


def render_tests(prices_path: str, rule_file: str, header: str = "", gpu_idle_below: float = GPU_IDLE) -> str:
    """promtool tests of those rules (`rule_file` as promtool finds it from the test file)."""
    return header + _dump(promtool_cases(rule_file, load_price_table(prices_path), gpu_idle_below))
