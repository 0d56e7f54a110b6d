"""GPU collector cost: NVML calls and wall time per scrape.

    .venv/bin/python benchmarks/gpu.py                 # fake 8 x H100 node (calls counted, no driver)
    .venv/bin/python benchmarks/gpu.py --real          # the real NVML of this host
    .venv/bin/python benchmarks/gpu.py --real --exposition out.prom --json out.json

GPM (SM active, occupancy, tensor active, DRAM bandwidth) is sampled on every scrape here, and its
values are printed: on a Hopper GPU with --real they are the first real readings of it.

Prints a short table: NVML calls per scrape by function, field values fetched per batched call, and
the median / p90 wall time of a scrape (the collector alone, the collector's own share without the
time spent inside the NVML binding, and the full rendered exposition).

The time inside the binding is the fake's own work with the fake (it builds pynvml's ctypes arrays,
as pynvml's wrappers do), and NVML plus pynvml with --real. With the real pynvml, the batched field
values skip pynvml's wrapper (nvml.field_values), but through this counting wrapper they take the
public function, so --real times include its per-call request build (~0.2 ms a GPU).
"""

from __future__ import annotations

import argparse
import collections
import inspect
import json
import os
import statistics
import sys
import time
from typing import Any

import pynvml
from prometheus_client import CollectorRegistry

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures", "gpu"))

from hpcwatch.exporters.exposition import render_text
from hpcwatch.exporters.gpu import fields, nvml
from hpcwatch.exporters.gpu.collector import GpuCollector
from hpcwatch.exporters.gpu.gpm import GPM_METRICS
from hpcwatch.exporters.registry import CollectorContext
from hpcwatch.exporters.scrape import ScrapeCollector


class CountingNvml:
    """Wraps a pynvml-like module and counts every function call by name (the XID thread's waits apart)."""

    def __init__(self, lib: Any) -> None:
        self._lib = lib
        self.counts: collections.Counter[str] = collections.Counter()
        self.fields_requested = 0
        self.inside_s = 0.0  # wall time spent inside the binding's functions (the fake's own work)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._lib, name)
        if not (callable(attr) and not inspect.isclass(attr)) or name == "nvmlEventSetWait_v2":
            return attr

        def counted(*args: Any, **kwargs: Any) -> Any:
            self.counts[name] += 1
            if name == "nvmlDeviceGetFieldValues":
                self.fields_requested += len(args[1])
            t0 = time.perf_counter()
            try:
                return attr(*args, **kwargs)
            finally:
                self.inside_s += time.perf_counter() - t0

        return counted


def scrape_once(collector: GpuCollector, counting: CountingNvml) -> tuple[float, float, float, float, str]:
    inside = counting.inside_s
    c0, t0 = time.thread_time(), time.perf_counter()
    list(collector.collect())
    collect_s = time.perf_counter() - t0
    cpu_s = time.thread_time() - c0
    own_s = collect_s - (counting.inside_s - inside)
    scrape = ScrapeCollector([collector])
    reg = CollectorRegistry(auto_describe=False)
    reg.register(scrape)
    t1 = time.perf_counter()
    text = render_text(reg.collect()).decode()  # what the server writes
    render_s = time.perf_counter() - t1
    scrape.close()
    return collect_s, cpu_s, own_s, render_s, text


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--real", action="store_true", help="use the host's NVML instead of the fake 8 x H100")
    ap.add_argument("--scrapes", type=int, default=50)
    ap.add_argument("--exposition", help="write the last exposition to this file")
    ap.add_argument("--json", help="write the figures to this file")
    args = ap.parse_args()

    if args.real:
        base: Any = pynvml
        label = "real NVML"
    else:
        import fake_pynvml

        base = fake_pynvml.h100_node({i: [(1001, 20 << 30)] for i in range(8)})
        label = "fake 8 x H100 (NVML calls counted; time is Python overhead only)"
    counting = CountingNvml(base)
    previous = nvml.use(counting)
    try:
        c = GpuCollector(
            # GPM sampled on every scrape (gpm-interval 0): the worst case of its cost.
            CollectorContext.of(GpuCollector, **{"job-map-dir": "", "gpm-interval": 0.0})
        )
        reason = c.available()
        if reason is not None:
            print(f"gpu collector skipped: {reason}")
            return 2
        startup = dict(counting.counts)
        scrape_once(c, counting)  # warm-up
        counting.counts.clear()
        counting.fields_requested = 0
        collect_times, cpu_times, own_times, render_times, text = [], [], [], [], ""
        for _ in range(args.scrapes):
            a, cpu, own, b, text = scrape_once(c, counting)
            collect_times.append(a)
            cpu_times.append(cpu)
            own_times.append(own)
            render_times.append(b)
        per_scrape = {
            k: v / (2 * args.scrapes) for k, v in sorted(counting.counts.items())
        }  # collect + render
        fields_per_scrape = counting.fields_requested / (2 * args.scrapes)
        ngpu = len(c.gpus)
        c.close()
    finally:
        nvml.use(previous)

    def q(xs: list[float], p: float) -> float:
        return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]

    total_calls = sum(per_scrape.values())
    print(f"# {label}: {ngpu} GPUs, {args.scrapes} scrapes, driver {c.driver_version} CUDA {c.cuda_version}")
    print(f"{'NVML function':48} {'calls/scrape':>12}")
    for name, n in per_scrape.items():
        print(f"{name:48} {n:12.1f}")
    print(f"{'total':48} {total_calls:12.1f}   ({total_calls / max(ngpu, 1):.1f} per GPU)")
    print(
        f"field values per scrape: {fields_per_scrape:.0f} in {per_scrape.get('nvmlDeviceGetFieldValues', 0):.0f} "
        f"batched calls (one call per value would be {fields_per_scrape:.0f} calls)"
    )
    print(
        f"collect wall time: median {statistics.median(collect_times) * 1e3:.2f} ms, "
        f"p90 {q(collect_times, 0.9) * 1e3:.2f} ms"
    )
    print(
        f"collect CPU time (the collecting thread; steadier than wall time on a shared host): median "
        f"{statistics.median(cpu_times) * 1e3:.2f} ms, p90 {q(cpu_times, 0.9) * 1e3:.2f} ms"
    )
    print(
        f"  of which the collector's own (collect minus time inside the NVML binding): median "
        f"{statistics.median(own_times) * 1e3:.2f} ms, p90 {q(own_times, 0.9) * 1e3:.2f} ms"
    )
    print(
        f"full scrape (collect + health + exposition text): median {statistics.median(render_times) * 1e3:.2f} ms, "
        f"p90 {q(render_times, 0.9) * 1e3:.2f} ms, {len(text.splitlines())} lines"
    )
    print(
        f"start-up calls: {sum(startup.values())} ({', '.join(f'{k} {v}' for k, v in sorted(startup.items()))})"
    )
    gpm = {fam: [line.split()[-1] for line in text.splitlines() if line.startswith(fam + "{")]
           for fam, _ in GPM_METRICS}
    if any(gpm.values()):
        for fam, vals in gpm.items():
            print(f"GPM {fam}: {', '.join(vals) or 'not reported'} ({len(vals)} devices)")
    else:
        print("GPM: not supported on these GPUs (needs Hopper or newer and a driver with nvmlGpm*)")
    if args.exposition:
        with open(args.exposition, "w") as fh:
            fh.write(text)
    if args.json:
        with open(args.json, "w") as fh:
            json.dump(
                {
                    "label": label,
                    "gpus": ngpu,
                    "driver": c.driver_version,
                    "cuda": c.cuda_version,
                    "calls_per_scrape": per_scrape,
                    "fields_per_scrape": fields_per_scrape,
                    "collect_ms_median": statistics.median(collect_times) * 1e3,
                    "collect_ms_p90": q(collect_times, 0.9) * 1e3,
                    "collect_cpu_ms_median": statistics.median(cpu_times) * 1e3,
                    "collect_own_ms_median": statistics.median(own_times) * 1e3,
                    "scrape_ms_median": statistics.median(render_times) * 1e3,
                    "startup_calls": startup,
                    "field_count_per_gpu": len(fields.request(0)),
                    "gpm": gpm,
                },
                fh,
                indent=1,
            )
    return 0


if __name__ == "__main__":
    sys.exit(main())
