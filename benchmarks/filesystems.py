"""Cost of the Lustre server collector on a busy OSS: job_stats parse, cap and render.

Writes obdfilter.*.job_stats files in the 2.15 layout (quoted ids, secs.nsecs header, usecs counters
with sumsq, bytes with hist) for 4 OSTs, then runs one `lustre_server` refresh plus one collect in a
fresh subprocess per run, which reports its wall time and peak RSS (ru_maxrss). Two loads:

1. 30,000 jobs across 4 OSTs (7,500 job records per OST): the goal is under 1 s and under 200 MB RSS.
2. 30,000 jobs on every one of the 4 OSTs (120,000 records, 270 MB of text): the worst case.

    .venv/bin/python benchmarks/filesystems.py [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

OST_OPS = ("read", "write", "getattr", "setattr", "punch", "sync", "destroy", "create", "statfs", "get_info",
           "set_info", "quotactl", "prealloc")


def counter(name: str, n: int, unit: str, mn: int, mx: int, total: int, sumsq: int, hist: str = "") -> str:
    pad = " " * max(1, 15 - len(name))
    line = (f"  {name}:{pad} {{ samples: {n:11d}, unit: {unit:>5}, min: {mn:8d}, max: {mx:8d}, "
            f"sum: {total:16d}, sumsq: {sumsq:18d}")
    return line + (f", hist: {{ {hist} }}" if hist else "") + " }\n"


def record(job: int, rnd: random.Random) -> str:
    out = [f"- {'job_id:':<16} \"{4000000 + job}:{1000 + job % 700}:cn{job % 2000:04d}\"\n",
           "  snapshot_time:   1700000000.123456789 secs.nsecs\n",
           "  start_time:      1699990000.000000000 secs.nsecs\n",
           "  elapsed_time:    10000.123456789 secs.nsecs\n"]
    for name in ("read_bytes", "write_bytes"):
        n = rnd.choice((0, rnd.randint(1, 5000)))
        out.append(counter(name, n, "bytes", 4096 if n else 0, 1048576 if n else 0, n * 262144,
                           n * 262144 * 262144, f"256K: {n}" if n else ""))
    for op in OST_OPS:
        n = rnd.choice((0, 0, 0, rnd.randint(1, 500)))
        out.append(counter(op, n, "usecs", 3 if n else 0, 9000 if n else 0, n * 40, n * 1600))
    return "".join(out)


def write_oss(root: str, jobs_per_ost: int, osts: int = 4) -> int:
    rnd = random.Random(42)
    size = 0
    for t in range(osts):
        d = os.path.join(root, "proc", "fs", "lustre", "obdfilter", f"scratch-OST{t:04d}")
        os.makedirs(d)
        with open(os.path.join(d, "job_stats"), "w") as fh:
            fh.write("job_stats:\n")
            first = 0 if jobs_per_ost * osts > 30000 else t * jobs_per_ost  # spread: disjoint jobs per OST
            fh.writelines(record(j, rnd) for j in range(first, first + jobs_per_ost))
            size += fh.tell()
    return size


def child(root: str) -> None:
    """One refresh + collect, as the cluster agent's background loop and a scrape would run them."""
    from hpcwatch.exporters.lustre_server.collector import LustreServerCollector
    from hpcwatch.exporters.registry import CollectorContext, Paths

    base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    ctx = CollectorContext(paths=Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys")),
                           options={"jobid-format": "%j:%u:%H", "lctl": "/nonexistent/lctl"}, agent="cluster")
    c = LustreServerCollector(ctx)
    c0 = time.process_time()
    t0 = time.perf_counter()
    snap = c.refresh()
    t1 = time.perf_counter()
    cpu = time.process_time() - c0
    c.source._value = snap  # what SnapshotSource.refresh_now stores; timed apart from the refresh
    series = sum(len(m.samples) for m in c.collect())
    t2 = time.perf_counter()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"refresh_s": t1 - t0, "refresh_cpu_s": cpu, "collect_s": t2 - t1, "series": series,
                      "records": sum(t.total_jobs for t in snap.jobs),
                      "rss_mb": peak / 1024, "import_rss_mb": base / 1024}))


def run(root: str, runs: int) -> dict:
    results = []
    for _ in range(runs):
        out = subprocess.run([sys.executable, os.path.abspath(__file__), "--child", root], check=True,
                             capture_output=True, text=True).stdout
        results.append(json.loads(out))
    med = {k: statistics.median(r[k] for r in results) for k in results[0]}
    med["max_rss_mb"] = max(r["rss_mb"] for r in results)
    return med


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--child", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        child(args.child)
        return
    rows = []
    for label, per_ost in (("30,000 jobs across 4 OSTs", 7500), ("30,000 jobs on each of 4 OSTs", 30000)):
        root = tempfile.mkdtemp(prefix="hpcwatch-fs-bench-")
        try:
            size = write_oss(root, per_ost)
            r = run(root, args.runs)
            rows.append((label, per_ost * 4, size / 1e6, r))
        finally:
            shutil.rmtree(root, ignore_errors=True)
    print(f"{'load':32} {'records':>8} {'text MB':>8} {'refresh s':>10} {'(CPU s)':>8} {'collect s':>10} "
          f"{'series':>7} {'peak RSS MB':>12} {'(import only)':>14}")
    for label, n, mb, r in rows:
        print(f"{label:32} {n:>8} {mb:>8.0f} {r['refresh_s']:>10.2f} {r['refresh_cpu_s']:>8.2f} "
              f"{r['collect_s']:>10.3f} {int(r['series']):>7} {r['max_rss_mb']:>12.0f} {r['import_rss_mb']:>14.0f}")
    print(f"(median of {args.runs} runs, each in a fresh subprocess; peak RSS is the worst run)")


if __name__ == "__main__":
    main()
