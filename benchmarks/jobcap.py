"""The per-job series cap: what it costs a jobs collector scrape, capped vs uncapped, in the same run.

Builds a node tree with N running cgroup v2 jobs (tests/jobtrees.py), then times collect() plus
rendering of the jobs collector with --collector.jobs.max-jobs 0 (the peer: no scan) and with the cap
(default 128; below N, so jobs are dropped), alternating, and prints medians and the ratio.

    .venv/bin/python benchmarks/jobcap.py [--jobs 128 500] [--rounds 30]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))
import jobtrees  # noqa: E402
from hpcwatch.exporters.exposition import render_text  # noqa: E402
from hpcwatch.exporters.jobcap import DEFAULT_MAX_JOBS  # noqa: E402
from hpcwatch.exporters.jobs.collector import JobsCollector  # noqa: E402
from hpcwatch.exporters.registry import CollectorContext, Paths  # noqa: E402


def collector(root: str, limit: int) -> JobsCollector:
    paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"), rootfs=root)
    return JobsCollector(CollectorContext.of(JobsCollector, paths, **{"max-jobs": limit, "info-dir": ""}))


def scrape_seconds(c: JobsCollector) -> float:
    t0 = time.perf_counter()
    render_text(list(c.collect()))
    return time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--jobs", type=int, nargs="+", default=[128, 500])
    p.add_argument("--rounds", type=int, default=30)
    args = p.parse_args()
    print(f"{'jobs':>6} {'cap':>5} {'uncapped ms':>12} {'capped ms':>10} {'capped/uncapped':>16} {'series':>7}")
    for n in args.jobs:
        with tempfile.TemporaryDirectory(prefix="hpcwatch-bench-") as tmp:
            root = jobtrees.node_with_jobs(tmp, [str(1000 + i) for i in range(n)])
            off, on = collector(root, 0), collector(root, DEFAULT_MAX_JOBS)
            times: dict[str, list[float]] = {"off": [], "on": []}
            for i in range(args.rounds):
                pair = (("off", off), ("on", on)) if i % 2 == 0 else (("on", on), ("off", off))
                for name, c in pair:
                    times[name].append(scrape_seconds(c))
            series = render_text(list(on.collect())).count(b"\nhpc_job_")
            a, b = statistics.median(times["off"]) * 1e3, statistics.median(times["on"]) * 1e3
            print(f"{n:>6} {DEFAULT_MAX_JOBS:>5} {a:>12.2f} {b:>10.2f} {b / a:>16.2f} {series:>7}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
