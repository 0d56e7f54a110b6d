"""Every dashboard query against a real Prometheus scraping our collectors on fixture trees.

(a) every panel and variable query is valid PromQL: Prometheus answers `success`;
(b) every panel whose families the scraped collectors produce returns data.
The exporter serves whichever collectors exist on fixture trees (a collector not built yet is simply
not covered); Prometheus scrapes it every second with our alert rules loaded.
"""

from __future__ import annotations

import json
import os
import re
import time

import helpers
import pytest
from hpcwatch.dashboards import SLORef, render_all
from hpcwatch.dashboards.helpers import iter_panels

FIX = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fixtures")
# Grafana expands these before the query reaches Prometheus; All of a variable is `.*`.
VARIABLES = {"$__rate_interval": "15s", "$__range": "1m", "$__interval": "5s", "$cluster": ".*",
             "$instance": ".*", "$jobid": ".*", "$queue": ".*", "$service": ".*"}
NAME = re.compile(r"\b((?:hpc_|hpcwatch_)[a-zA-Z0-9_]+|up)\b(?!\s*[=!]~?\s*\")")

# Panels that may rightly be empty although their families are scraped: they show only trouble
# (a comparison filters out the healthy fixture values) or a state the fixtures do not hold.
EMPTY_WHEN_HEALTHY = {
    "XID errors (range)", "ECC errors (range)", "Remapped rows pending or failed", "Saturated counters",
    "Exporter targets down",
}


def _fixture_collectors(tmp_path) -> dict[str, object]:
    """name -> collector built on a fixture tree, for every collector that exists in this build."""
    from hpcwatch.exporters.registry import load_all

    reg = load_all()
    out: dict[str, object] = {}

    def add(name: str, **ctx) -> None:
        cls = reg.get(name)
        if cls is None:
            return
        c = cls(helpers.make_context(cls=cls, **ctx))
        if c.available() is None:
            out[name] = c

    add("node", procfs=f"{FIX}/node/real/proc", sysfs=f"{FIX}/node/real/sys")
    add("jobs", procfs=f"{FIX}/jobs/v2/proc", sysfs=f"{FIX}/jobs/v2/sys")
    # One sysfs with the InfiniBand HCA and the RoCE port of the fabric fixtures side by side.
    ib = tmp_path / "fabric" / "class" / "infiniband"
    ib.mkdir(parents=True)
    for tree in ("cx6_hdr", "cx6dx_roce"):
        base = f"{FIX}/fabric/sysfs/{tree}/class/infiniband"
        for dev in os.listdir(base):
            os.symlink(f"{base}/{dev}", ib / dev)
    add("fabric", sysfs=str(tmp_path / "fabric"))
    with open(f"{FIX}/nfs/mountstats_5.15.txt") as fh:
        nfs = helpers.write_tree(str(tmp_path / "nfs"), {"proc/self/mountstats": fh.read()})
    add("nfs", procfs=f"{nfs}/proc")
    return out


def _exprs() -> list[tuple[str, str, list[str]]]:
    """(dashboard uid, panel title, [exprs]) with variables expanded, plus variable queries."""
    out = []
    for text in render_all([SLORef("hpc", "job-success")]).values():
        d = json.loads(text)
        for p in iter_panels(d):
            if p.get("targets"):
                out.append((d["uid"], p["title"], [_expand(t["expr"]) for t in p["targets"]]))
        for v in d["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.+), \w+\)", v["query"]) if v["type"] == "query" else None
            if m:
                out.append((d["uid"], f"variable {v['name']}", [_expand(m.group(1))]))
    return out


def _expand(expr: str) -> str:
    for var in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(var, VARIABLES[var])
    return expr


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    helpers.require_binary("prometheus")
    from hpcwatch.alerts.rules import render_rules
    from hpcwatch.exporters.serve import Exporter

    from hpcwatch.harness.prometheus import Prometheus

    tmp = tmp_path_factory.mktemp("dash")
    collectors = _fixture_collectors(tmp)
    exporter = Exporter(list(collectors.values()), ("127.0.0.1", 0))
    exporter.start()
    rules = tmp / "infra.rules.yml"
    rules.write_text(render_rules())
    config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
              "scrape_configs": [{"job_name": "hpcwatch-node",
                                  "static_configs": [{"targets": [f"127.0.0.1:{exporter.port}"]}]}]}
    prom = Prometheus(str(tmp), config, [str(rules)]).start()
    try:
        # Enough samples for rate() over 15s windows.
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if prom.query("count_over_time(up{job='hpcwatch-node'}[1m]) >= 8"):
                break
            time.sleep(0.5)
        scraped = {r["metric"]["__name__"] for r in prom.query('{job="hpcwatch-node"}')}
        yield prom, collectors, scraped
    finally:
        prom.stop()
        exporter.stop()


def test_every_query_is_valid_promql(stack):
    prom, _, _ = stack
    errors = []
    for uid, title, exprs in _exprs():
        for expr in exprs:
            doc = prom.get_json("/api/v1/query", {"query": expr}) if _valid(prom, expr) else None
            if doc is None or doc.get("status") != "success":
                errors.append(f"{uid} / {title}: {expr}")
    assert not errors, "\n".join(errors)


def _valid(prom, expr: str) -> bool:
    from hpcwatch.harness.util import DaemonError
    try:
        prom.query(expr)
        return True
    except DaemonError:
        return False


def test_panels_over_scraped_families_return_data(stack):
    prom, collectors, scraped = stack
    assert {"node", "fabric"} <= set(collectors), "the node and fabric collectors exist and have fixtures"
    covered, empty = [], []
    for uid, title, exprs in _exprs():
        names = {n for e in exprs for n in NAME.findall(e)}
        names = {n.removesuffix("_bucket") for n in names}
        if not names or not names <= scraped or title in EMPTY_WHEN_HEALTHY or "ALERTS" in " ".join(exprs):
            continue
        covered.append(f"{uid} / {title}")
        if not any(prom.query(e) for e in exprs):
            empty.append(f"{uid} / {title}: {exprs}")
    print(f"collectors: {sorted(collectors)}; panels checked for data: {len(covered)}")
    assert covered, "no panel reads the scraped families"
    assert not empty, "panels over scraped families returned no data:\n" + "\n".join(empty)
