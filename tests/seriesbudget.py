"""The node agent's series budget: series per family of `hpcwatch serve --agent node` with its defaults
on the node fixture tree with 4 running jobs, and per extra running job; kept in tests/series_budget.json,
enforced by tests/unit/test_series_budget.py.

    .venv/bin/python tests/seriesbudget.py            # print the measurement beside the budget
    .venv/bin/python tests/seriesbudget.py --write    # make the measurement the budget (say why in the commit)
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections import Counter
from collections.abc import Callable

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import jobtrees  # noqa: E402
from hpcwatch.exporters.exposition import render_text  # noqa: E402
from hpcwatch.exporters.registry import load_all  # noqa: E402
from hpcwatch.exporters.scrape import ScrapeCollector  # noqa: E402
from hpcwatch.exporters.selfmetrics import documented_families  # noqa: E402
from hpcwatch.exporters.serve import build_collectors, serve_parser  # noqa: E402
from prometheus_client import CollectorRegistry  # noqa: E402
from prometheus_client.parser import text_string_to_metric_families  # noqa: E402

BUDGET = os.path.join(HERE, "series_budget.json")
JOBS = 4  # the reference node: agent defaults, 4 running jobs
ALLOWANCE_RATIO = 0.05  # a change may grow the node's series by 5% before the budget must be raised
UPDATE = ("if the growth is deliberate, run `.venv/bin/python tests/seriesbudget.py --write`, commit "
          "tests/series_budget.json saying why, and update docs/scaling.md (Series budget) and the scrape "
          "limits derived from it (hpcwatch/promconfig.py)")


def series_by_family(text: str) -> Counter[str]:
    """Samples per exposed family name in exposition text (each histogram bucket is a series)."""
    return Counter({fam.name + ("_total" if fam.type == "counter" else ""): len(fam.samples)
                    for fam in text_string_to_metric_families(text)})


def scrape_node_agent(root: str, between: Callable[[], None] = lambda: None) -> str:
    """One scrape of the node agent as `hpcwatch serve --agent node --path.*fs ROOT/...` builds it: every
    collector on by default for the node agent, default options, sources skipped where absent; plus
    the exporter's own families as an idle agent reports them."""
    registry = load_all()
    args = serve_parser(registry).parse_args([
        "--agent", "node", "--path.procfs", os.path.join(root, "proc"), "--path.sysfs", os.path.join(root, "sys"),
        "--path.rootfs", root])
    collectors = build_collectors(args, registry)
    for c in collectors:
        for source in c.sources():  # snapshot collectors: a baseline refresh
            source.refresh_now()
    between()
    for c in collectors:
        for source in c.sources():  # ... and one after the node worked (deltas, attribution)
            source.refresh_now()
    scrape = ScrapeCollector(collectors)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(scrape)
    try:
        text = render_text(reg.collect()).decode()
    finally:
        scrape.close()
        for c in collectors:
            c.close()
    return text + render_text(documented_families()).decode()


def measure(jobs: int = JOBS) -> dict:
    """{"node": series per family with `jobs` jobs, "per_job": series per family each further job adds,
    "collectors": the collectors that ran}."""
    with tempfile.TemporaryDirectory(prefix="hpcwatch-budget-") as tmp:
        ids = [str(1000 + i) for i in range(jobs + 1)]
        base_text = scrape_node_agent(jobtrees.node_with_jobs(tmp, ids[:jobs]), lambda: jobtrees.advance(tmp))
        more_text = scrape_node_agent(jobtrees.node_with_jobs(tmp, ids), lambda: jobtrees.advance(tmp))
    base, more = series_by_family(base_text), series_by_family(more_text)
    per_job = {name: more[name] - base.get(name, 0) for name in more if more[name] != base.get(name, 0)}
    collectors = sorted(labels["collector"] for fam in text_string_to_metric_families(base_text)
                        if fam.name == "hpcwatch_collector_success" for labels in (s.labels for s in fam.samples))
    return {"jobs": jobs, "collectors": collectors, "node": dict(sorted(base.items())),
            "per_job": dict(sorted(per_job.items()))}


def load_budget(path: str = BUDGET) -> dict:
    with open(path, encoding="utf-8") as fh:
        return json.load(fh)


def node_total(record: dict) -> int:
    return sum(record["node"].values())


def per_job_total(record: dict) -> int:
    return sum(record["per_job"].values())


def allowed_node_series(budget: dict) -> int:
    return budget["allowance"]["node_series"]


def overruns(measured: dict, budget: dict) -> list[str]:
    """What exceeds the budget, one line per breach naming the families that grew (empty: within)."""
    problems = []
    total, allowed = node_total(measured), allowed_node_series(budget)
    if total > allowed:
        grew = [f"{name} {budget['node'].get(name, 0)} -> {n}" for name, n in measured["node"].items()
                if n > budget["node"].get(name, 0)]
        problems.append(f"node agent defaults with {measured['jobs']} jobs: {total} series, budget {allowed} "
                        f"(recorded {node_total(budget)} + allowance); families that grew: {', '.join(grew)}")
    job, job_allowed = per_job_total(measured), budget["allowance"]["per_job_series"]
    if job > job_allowed:
        grew = [f"{name} {budget['per_job'].get(name, 0)} -> {n}" for name, n in measured["per_job"].items()
                if n > budget["per_job"].get(name, 0)]
        problems.append(f"each running job: {job} series, budget {job_allowed} (multiplied by up to "
                        f"--collector.jobs.max-jobs jobs per node); families that grew: {', '.join(grew)}")
    return problems


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--write", action="store_true", help=f"write the measurement as the budget ({BUDGET})")
    args = p.parse_args()
    measured = measure()
    if args.write:
        record = dict(measured)
        record["allowance"] = {"ratio": ALLOWANCE_RATIO,
                               "node_series": round(node_total(measured) * (1 + ALLOWANCE_RATIO)),
                               "per_job_series": per_job_total(measured)}
        with open(BUDGET, "w", encoding="utf-8") as fh:
            json.dump(record, fh, indent=1)
            fh.write("\n")
        print(f"wrote {BUDGET}")
    print(f"collectors: {', '.join(measured['collectors'])}")
    print(f"series per node (defaults, {measured['jobs']} jobs): {node_total(measured)}")
    print(f"series per running job: {per_job_total(measured)}")
    for name, n in measured["per_job"].items():
        print(f"  {name}: {n}")
    if os.path.exists(BUDGET):
        budget = load_budget()
        print(f"budget: {allowed_node_series(budget)} per node, {budget['allowance']['per_job_series']} per job")
        for line in overruns(measured, budget):
            print(f"OVER BUDGET: {line}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
