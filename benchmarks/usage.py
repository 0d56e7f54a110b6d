"""`hpcwatch usage report` on a year of a 10-million-job centre: one month and the whole year.

    .venv/bin/python benchmarks/usage.py --jobs 10000000            # builds the dataset in a temp dir
    .venv/bin/python benchmarks/usage.py --dataset /srv/bench --keep # reuse (or keep) the dataset

The dataset: `--jobs` summaries over 12 months (compacted, one file a month, as the cluster agent's
compaction leaves them), built by benchmarks/accounting.py's generator. Each report runs as the installed
CLI in a new process (wall and CPU time, as a user sees them), by account and by account and user, as text
and as HTML (which adds the cost and waste over time query). The peer: the same month or year with pandas
(pyarrow reads the columns, pandas groups by account for core-hours, cost and the queue-wait quantiles),
a fraction of the figures the report computes.
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow.parquet as pq
from hpcwatch.accounting.layout import month_of_file
from hpcwatch.accounting.store import SummaryStore

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from accounting import T0, month_table, write_month  # noqa: E402 - the sibling benchmark's generator


def month_start(m: int) -> float:
    """Unix time of the first second of month m (0: January) of the benchmark's year (2026, UTC)."""
    first = datetime.datetime.fromtimestamp(T0, datetime.UTC)
    return first.replace(year=first.year + m // 12, month=m % 12 + 1).timestamp()


def build(store: SummaryStore, jobs: int) -> None:
    rng = np.random.default_rng(5)
    per_month = jobs // 12
    t0 = time.perf_counter()
    for m in range(12):
        write_month(store, month_table(per_month, int(month_start(m)), 1_000_000 + m * per_month, rng))
    size = sum(os.path.getsize(f) for f in store.files())
    print(f"built 12 months x {per_month:,} jobs in {time.perf_counter() - t0:.0f} s, {size / 1e9:.2f} GB")


def cli_run(args: list[str]) -> tuple[float, float, str]:
    """Wall and CPU seconds (user + system of the child) of one `hpcwatch usage report`."""
    exe = shutil.which("hpcwatch") or os.path.join(os.path.dirname(sys.executable), "hpcwatch")
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    proc = subprocess.run([exe, "usage", "report", *args], capture_output=True, text=True)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    return wall, r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime, proc.stdout


def pandas_peer(files: list[str], start: float, end: float) -> float:
    """Seconds for core-hours, cost and wait p50/p90 by account of the jobs that ended in [start, end)."""
    t0 = time.perf_counter()
    cols = ["account", "end", "cpus_alloc", "elapsed_s", "cost", "queue_wait_s"]
    df = pq.read_table(files, columns=cols, partitioning=None).to_pandas()
    e = df["end"].astype("int64") / 1e9 if df["end"].dtype.kind == "M" else df["end"]
    df = df[(e >= start) & (e < end)]
    df = df.assign(core_h=df["cpus_alloc"] * df["elapsed_s"] / 3600)
    g = df.groupby("account")
    g.agg(core_h=("core_h", "sum"), cost=("cost", "sum"))
    g["queue_wait_s"].quantile([0.5, 0.9])
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--jobs", type=int, default=10_000_000)
    ap.add_argument("--dataset", help="reuse (or keep) the dataset here")
    ap.add_argument("--keep", action="store_true")
    ap.add_argument("--repeat", type=int, default=3)
    args = ap.parse_args()
    work = args.dataset or tempfile.mkdtemp(prefix="hpcwatch-bench-usage-")
    store = SummaryStore(work)
    try:
        if not store.files():
            build(store, args.jobs)
        files = store.files()
        total = store.sql("SELECT count(*) FROM summaries")[0][0]
        print(f"dataset: {total:,} jobs in {len(files)} files, {sum(map(os.path.getsize, files)) / 1e9:.2f} GB; "
              f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
        day = lambda t: time.strftime("%Y-%m-%d", time.gmtime(t))  # noqa: E731
        periods = {"1 month": (month_start(5), month_start(6)), "1 year": (month_start(0), month_start(12))}
        for label, (start, end) in periods.items():
            period = ["--from", day(start), "--to", day(end)]
            for by, fmt in (("account", "text"), ("account,user", "csv"), ("account", "html")):
                runs = [cli_run(["--dataset", work, *period, "--by", by, "--format", fmt])
                        for _ in range(args.repeat)]
                wall = sorted(r[0] for r in runs)[len(runs) // 2]
                cpu = sorted(r[1] for r in runs)[len(runs) // 2]
                lines = len(runs[0][2].splitlines())
                print(f"{label:8} --by {by:13} --format {fmt:5}: wall {wall:5.2f} s, CPU {cpu:5.2f} s "
                      f"(median of {len(runs)}; {lines} lines)")
            # The peer reads only the months its figures need (jobs that ended in the period).
            need = [f for f in files if day(start)[:7] <= month_of_file(f) < day(end)[:7]]
            peer = sorted(pandas_peer(need, start, end) for _ in range(args.repeat))[args.repeat // 2]
            print(f"{label:8} peer: pandas, core-hours, cost and wait p50/p90 by account: {peer:5.2f} s")
    finally:
        if not args.keep and not args.dataset:
            shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
