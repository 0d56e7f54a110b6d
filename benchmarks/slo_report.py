"""SLO history at scale: `hpcwatch slo report` over 10 million job records spanning 90 days.

Prints the report's wall time and peak RSS (measured in a child process with resource.getrusage), and,
in the same run, the vectorised replay against a plain row-by-row Python replay of the same numbers
on a subset of the records (checked equal), giving the speed ratio.

    .venv/bin/python benchmarks/slo_report.py [--records 10000000] [--days 90] [--subset 200000]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np
from hpcwatch.slo import load_specs
from hpcwatch.slo.history import from_jobs
from hpcwatch.slo.history.records import InputReport, JobRecords
from hpcwatch.slo.history.reference import reference_replay
from hpcwatch.slo.history.synthetic import Incident, synthetic_jobs
from hpcwatch.slo.history.table import load_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SPEC = os.path.join(ROOT, "tests", "fixtures", "slo_history", "catalogue.yaml")
T0 = 1767225600


def child_report(path: str, out: str) -> tuple[float, float, str]:
    """(wall s, peak RSS MiB, stderr tail) of the CLI in a fresh child process."""
    code = ("import sys; from hpcwatch.cli import main; sys.exit(main(sys.argv[1:]))")
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    t = time.perf_counter()
    proc = subprocess.run([sys.executable, "-c", code, "slo", "report", "--spec", SPEC, "--jobs", path,
                           "--format", "json", "--no-series", "-o", out], capture_output=True, text=True, check=False)
    wall = time.perf_counter() - t
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    if proc.returncode:
        sys.exit(proc.stderr)
    return wall, max(rss, before) / 1024, proc.stderr.strip().splitlines()[-1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--records", type=int, default=10_000_000)
    ap.add_argument("--days", type=float, default=90)
    ap.add_argument("--subset", type=int, default=200_000)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "jobs.parquet")
        t = time.perf_counter()
        df = synthetic_jobs(args.records, T0, args.days, seed=1, incidents=(
            Incident(20 * 86400, 6 * 3600, node_fail=0.2), Incident(50 * 86400, 12 * 3600, wait_factor=8)))
        df.to_parquet(path)
        del df
        gen = time.perf_counter() - t
        size = os.path.getsize(path) / 2**20
        wall, rss, tail = child_report(path, os.path.join(tmp, "r.json"))

        # Same numbers, row by row, on a subset (every k-th record over the same 90 days).
        full = load_table(path, "parquet", "alpha")
        k = max(1, len(full.frame) // args.subset)
        sub = full.frame.iloc[::k].reset_index(drop=True)
        del full
        slos = [s for s in load_specs([SPEC]) if s.name.startswith("job-success")]
        t = time.perf_counter()
        rep = from_jobs(slos, JobRecords(sub, InputReport("subset", "parquet")), None, None, 300)
        vec = time.perf_counter() - t
        rows = [{"cluster": r.cluster, "queue": r.queue, "outcome": r.outcome, "cause": r.cause, "end": r.end,
                 "count": r.count} for r in sub.itertuples()]
        t = time.perf_counter()
        for h in rep.histories:
            start = rep.start - (h.slo.period_s + max(h.slo.windows.windows()))
            n = (rep.end - start) // 300 + 1
            ref = reference_replay(h.slo, rows, start, 300, n, h.summary["data_start"])
            got = h.frame["budget_remaining"].to_numpy()
            want = np.array([np.nan if v is None else v for v in ref["budget"][n - len(got):]])
            assert np.allclose(got, want, rtol=1e-9, equal_nan=True), h.slo.id
            assert h.frame["alert_page"].tolist() == ref["page"][n - len(got):], h.slo.id
        plain = time.perf_counter() - t
    print(f"records: {args.records:,} over {args.days:g} days (Parquet {size:.0f} MiB, generated in {gen:.1f} s)")
    print(f"{'what':<52} {'value':>12}")
    print(f"{'hpcwatch slo report, wall (child process)':<52} {wall:>10.1f} s")
    print(f"{'hpcwatch slo report, peak RSS (getrusage, child)':<52} {rss:>9.0f} MiB")
    print(f"{'subset for the row-by-row comparison':<52} {len(sub):>12,}")
    print(f"{'vectorised replay, 2 job-success SLOs, subset':<52} {vec:>10.2f} s")
    print(f"{'row-by-row Python replay, same SLOs, subset':<52} {plain:>10.2f} s")
    print(f"{'ratio (row-by-row / vectorised)':<52} {plain / vec:>11.0f}x")
    print(f"(child: {tail})")


if __name__ == "__main__":
    main()
