"""The waste alerts' evaluation cost in a real Prometheus, against bare thresholds on the same series.

Backfills an hour of a GPU cluster's node-agent series (30 s scrapes; 8 GPUs and 2 jobs per node, a
fifth of the GPUs idle, one in twenty with no process; per-job memory) with `promtool tsdb
create-blocks-from openmetrics`, then times each generated waste rule's expression as an instant
query (what a rule evaluation is; Prometheus' own `stats=all` evalTotalTime, median of repeats), and
the peer: the same threshold on the same family with no join (`avg_over_time(hpc_gpu_utilization_ratio
[15m]) < 0.05`, `hpc_gpu_processes == 0`, `max_usage / limit < 0.2`). The ratio is what the per-job
joins cost.

    .venv/bin/python benchmarks/waste_rules.py [--nodes 250] [--repeat 15]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request

from hpcwatch.alerts.waste import EXAMPLE_CONFIG, load_config, waste_alerts

from hpcwatch.harness.prometheus import Prometheus
from hpcwatch.harness.util import which

STEP, MINUTES = 30, 60
PEERS = {"HpcJobGpuIdle": "avg_over_time(hpc_gpu_utilization_ratio[15m]) < 0.05",
         "HpcJobGpuUnused": "hpc_gpu_processes == 0",
         "HpcJobMemoryUnused": "hpc_job_memory_max_usage_bytes / hpc_job_memory_limit_bytes < 0.2"}


def openmetrics(nodes: int, end: int) -> tuple[str, int]:
    """The node agents' series for the last hour; (text, series count)."""
    times = range(end - MINUTES * 60, end + 1, STEP)
    out, count = [], 0

    def family(name: str, kind: str, rows: list[tuple[str, float]]) -> None:
        nonlocal count
        out.append(f"# TYPE {name} {kind}")
        for labels, value in rows:
            count += 1
            out.extend(f"{name}{{{labels}}} {value:g} {t}" for t in times)

    base = [f'cluster="c1",job="hpcwatch-node",instance="n{n}:19466"' for n in range(nodes)]
    gpus = [(n, g, f'{base[n]},gpu="{g}",uuid="GPU-{n}-{g}"') for n in range(nodes) for g in range(8)]
    job = {(n, g): f"{n * 2 + g // 4 + 1000}" for n, g, _ in gpus}       # two 4-GPU jobs per node
    family("hpc_gpu_utilization_ratio", "gauge", [(lab, 0.01 if (n + g) % 5 == 0 else 0.7) for n, g, lab in gpus])
    family("hpc_gpu_processes", "gauge", [(lab, 0 if (n * 8 + g) % 20 == 0 else 1) for n, g, lab in gpus])
    family("hpc_gpu_job_info", "gauge", [(f'{lab},jobid="{job[(n, g)]}"', 1) for n, g, lab in gpus])
    jobs = [(n, f"{n * 2 + k + 1000}") for n in range(nodes) for k in (0, 1)]
    family("hpc_job_info", "gauge", [(f'{base[n]},jobid="{j}",user="u{int(j) % 97}",uid="{int(j) % 97}",'
                                      f'account="a{int(j) % 13}"', 1) for n, j in jobs])
    family("hpc_job_memory_limit_bytes", "gauge", [(f'{base[n]},jobid="{j}"', 64 << 30) for n, j in jobs])
    family("hpc_job_memory_max_usage_bytes", "gauge",
           [(f'{base[n]},jobid="{j}"', (4 << 30) if int(j) % 3 == 0 else (48 << 30)) for n, j in jobs])
    out.append("# EOF")
    return "\n".join(out) + "\n", count


def eval_seconds(url: str, expr: str, at: int, repeat: int) -> tuple[float, int]:
    """(median evalTotalTime in seconds, result series) of `expr` as an instant query at `at`."""
    times, n = [], 0
    for _ in range(repeat):
        q = urllib.parse.urlencode({"query": expr, "time": str(at), "stats": "all"})
        with urllib.request.urlopen(f"{url}/api/v1/query?{q}", timeout=120) as resp:
            doc = json.loads(resp.read())
        times.append(doc["data"]["stats"]["timings"]["evalTotalTime"])
        n = len(doc["data"]["result"])
    return statistics.median(times), n


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=250)
    ap.add_argument("--repeat", type=int, default=15)
    args = ap.parse_args()
    end = int(time.time()) // STEP * STEP - 3 * 3600      # inside retention, clear of the head block
    with tempfile.TemporaryDirectory() as tmp:
        text, series = openmetrics(args.nodes, end)
        om = os.path.join(tmp, "gpu.om")
        with open(om, "w") as fh:
            fh.write(text)
        prom = Prometheus(tmp, {"global": {"evaluation_interval": "1m"}})
        os.makedirs(os.path.join(prom.dir, "data"), exist_ok=True)
        t = time.perf_counter()
        subprocess.run([which("promtool"), "tsdb", "create-blocks-from", "openmetrics", om,
                        os.path.join(prom.dir, "data")], check=True, capture_output=True, timeout=1800)
        backfill = time.perf_counter() - t
        prom.start()
        try:
            print(f"{args.nodes} nodes, {args.nodes * 8:,} GPUs, {args.nodes * 2:,} jobs: {series:,} series x "
                  f"{MINUTES * 60 // STEP + 1} samples (backfilled in {backfill:.0f} s)")
            print(f"{'rule':<20} {'waste rule':>12} {'bare threshold':>15} {'ratio':>7} {'alerts':>7}")
            for rule in waste_alerts(load_config(EXAMPLE_CONFIG).waste):
                ours, n = eval_seconds(prom.url, rule.expr, end, args.repeat)
                peer, _ = eval_seconds(prom.url, PEERS[rule.name], end, args.repeat)
                print(f"{rule.name:<20} {ours * 1e3:>9.2f} ms {peer * 1e3:>12.2f} ms {ours / peer:>6.1f}x {n:>7,}")
        finally:
            prom.stop()


if __name__ == "__main__":
    sys.exit(main())
