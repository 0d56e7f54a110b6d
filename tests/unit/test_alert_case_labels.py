"""Alert test series carry only labels the exporters really export.

A promtool case fed with a label no collector emits proves an alert on data no operator has: an
annotation reading `{{ $labels.fs }}` passes its test and renders empty in production. Every input
series of every generated alert case, for a family docs/metrics.md documents (generated from the
collectors and kept fresh by CI), may carry only that family's labels and the target labels the
shipped scrape configs set.
"""

from __future__ import annotations

import os
import re

import pytest
from hpcwatch.alerts.catalog import all_alerts

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
METRICS_MD = os.path.join(ROOT, "docs", "metrics.md")
# Target labels (Prometheus's own and the shipped scrape configs'), and numa_node, which the shipped
# metric relabelling gives node_exporter's NUMA node (tests/unit/test_target_labels.py).
TARGET = {"cluster", "instance", "job", "node"}
RENAMED = {"node_memory_numa_": {"numa_node"}}
_ROW = re.compile(r"^\| `([a-zA-Z_:][a-zA-Z0-9_:]*)` \| (\w+) \| ([^|]*) \|", re.M)
_SERIES = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?$")
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)\s*=\s*"(?:[^"\\]|\\.)*"')
_SUFFIXES = {"histogram": ("_bucket", "_sum", "_count"), "summary": ("_sum", "_count")}


def documented() -> dict[str, set[str]]:
    """{series name: its labels} from docs/metrics.md, histogram and summary series included."""
    with open(METRICS_MD, encoding="utf-8") as fh:
        rows = _ROW.findall(fh.read())
    assert len(rows) > 100, f"{METRICS_MD}: the family tables were not found"
    out: dict[str, set[str]] = {}
    for name, typ, labels in rows:
        names = set(re.findall(r"`([^`]+)`", labels))
        out[name] = names
        for suffix in _SUFFIXES.get(typ, ()):
            out[name + suffix] = names | ({"le"} if suffix == "_bucket" else set())
    return out


def case_series() -> list[tuple[str, str, set[str]]]:
    """(alert, series name, label names) of every input series of every alert's firing and quiet case."""
    out = []
    for _, group in all_alerts():
        for alert in group:
            for case in (alert.fire, alert.quiet):
                for series, _values in case.series:
                    m = _SERIES.match(series.strip())
                    assert m, f"{alert.name}: unreadable test series {series!r}"
                    out.append((alert.name, m.group(1), set(_LABEL.findall(m.group(2) or ""))))
    return out


def test_the_cases_are_read():
    series = case_series()
    assert len(series) > 50 and any(labels for _, _, labels in series)


@pytest.mark.parametrize("alert", sorted({a for a, _, _ in case_series()}))
def test_alert_cases_use_only_exported_labels(alert):
    docs = documented()
    wrong = []
    for name, series, labels in case_series():
        if name != alert or series not in docs:
            continue  # recorded series, up, scrape_* and ALERTS are not exporter families
        allowed = docs[series] | TARGET | {x for p, extra in RENAMED.items() if series.startswith(p) for x in extra}
        if labels - allowed:
            wrong.append(f"{series}: {sorted(labels - allowed)} (exported: {sorted(docs[series])})")
    assert not wrong, f"{alert}: test series carry labels no collector exports: " + "; ".join(wrong)
