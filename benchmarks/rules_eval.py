"""What the spend rules and the new SLIs cost a real Prometheus to evaluate, group by group.

A synthetic GPU cluster is served as one scrape target (honor_labels: each node's series carry their own
`instance`): per node 8 GPUs (info, job mapping, utilisation) and 2 jobs (identity with account and
partition, CPUs, memory limit and peak, CPU and energy counters that grow with the clock); the cluster
agent's neutral families (finished jobs, queue wait, turnaround). Prometheus scrapes it every 15 s with
the shipped spend rules (deploy/prometheus/rules/hpcwatch-spend.rules.yml), the rules of a catalogue
with preemption-rate, time-to-result and gpu-utilisation, and, as the peer in the same run, the shipped
infrastructure alerts and a job-success SLO. After `--minutes` of evaluations, Prometheus' own
/api/v1/rules evaluationTime of each group is read several times (median).

    .venv/bin/python benchmarks/rules_eval.py --nodes 250
    .venv/bin/python benchmarks/rules_eval.py --nodes 1000 --minutes 4
"""

from __future__ import annotations

import argparse
import http.server
import os
import statistics
import sys
import tempfile
import threading
import time

import yaml
from hpcwatch.slo import generate_rules
from hpcwatch.slo.loader import load_documents

from hpcwatch.harness.prometheus import Prometheus
from hpcwatch.harness.util import wait_until

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RULES = os.path.join(ROOT, "deploy", "prometheus", "rules")
CATALOGUE = {"apiVersion": "hpcwatch/v1", "kind": "SLOCatalogue", "spec": {
    "service": "hpc", "clusters": ["c1"], "slos": [
        {"sli": "job-success", "objective": 99, "queues": ["gpu"]},
        {"sli": "preemption-rate", "objective": 99, "queues": ["gpu"]},
        {"sli": "time-to-result", "objective": 95, "threshold": "6h", "queues": ["gpu"]},
        {"sli": "gpu-utilisation", "objective": 70, "threshold": 0.5, "page_alert": {"disable": True}},
        {"sli": "gpu-utilisation", "name": "gpu-queue", "objective": 70, "threshold": 0.5, "queues": ["gpu"],
         "page_alert": {"disable": True}}]}}


def exposition(nodes: int, now: float) -> bytes:
    """The cluster's series now: gauges fixed, counters growing at fixed rates."""
    out = []
    for n in range(nodes):
        base = f'cluster="c1",instance="n{n}:19466"'
        for k in (0, 1):
            job = f"{n * 2 + k + 1000}"
            at = f'{base},jobid="{job}"'
            out += [f'hpc_job_info{{{at},user="u{int(job) % 97}",uid="1",account="a{int(job) % 13}",'
                    f'partition="{"gpu" if k == 0 else "batch"}"}} 1',
                    f"hpc_job_cpus{{{at}}} 32", f"hpc_job_memory_limit_bytes{{{at}}} {64 << 30}",
                    f"hpc_job_memory_max_usage_bytes{{{at}}} {(4 << 30) if int(job) % 3 == 0 else (48 << 30)}",
                    f'hpc_job_cpu_seconds_total{{{at},mode="user"}} {now * (8 if int(job) % 4 == 0 else 30):.0f}',
                    f'hpc_job_energy_joules_total{{{at},component="gpu"}} {now * 1200:.0f}']
        for g in range(8):
            at = f'{base},gpu="{g}",uuid="GPU-{n}-{g}"'
            out += [f'hpc_gpu_info{{{at},name="NVIDIA H100 80GB HBM3"}} 1',
                    f'hpc_gpu_job_info{{{at},jobid="{n * 2 + g // 4 + 1000}"}} 1',
                    f"hpc_gpu_utilization_ratio{{{at}}} {0.01 if (n + g) % 5 == 0 else 0.7}"]
    c = 'cluster="c1",queue="gpu"'
    out += [f'hpc_scheduler_jobs_finished_total{{{c},outcome="success",cause="none"}} {now / 6:.0f}',
            f'hpc_scheduler_jobs_finished_total{{{c},outcome="preempted",cause="system"}} {now / 600:.0f}',
            f"hpc_scheduler_queue_wait_seconds_count{{{c}}} {now / 5:.0f}",
            f"hpc_scheduler_turnaround_seconds_count{{{c}}} {now / 6:.0f}",
            f'hpc_scheduler_turnaround_seconds_bucket{{{c},le="21600.0"}} {now / 6.5:.0f}',
            'hpc_scheduler_up{cluster="c1"} 1']
    return ("\n".join(out) + "\n").encode()


def serve(nodes: int) -> http.server.ThreadingHTTPServer:
    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:   # noqa: N802 - http.server's name
            body = exposition(nodes, time.time())
            self.send_response(200)
            self.send_header("Content-Type", "text/plain; version=0.0.4")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args) -> None:
            pass

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return srv


def group_times(prom: Prometheus) -> dict[str, tuple[float, int]]:
    """{group: (evaluation seconds, rules)} from /api/v1/rules, and each spend rule as `spend: <record>`."""
    out = {}
    for g in prom.rules():
        out[g["name"]] = (g.get("evaluationTime", 0.0), len(g["rules"]))
        if g["name"] == "hpcwatch-spend":
            for i, r in enumerate(g["rules"]):
                out[f"spend: {i:02d} {r['name']} {r.get('labels', {}).get('resource', '')}".rstrip()] = \
                    (r.get("evaluationTime", 0.0), 1)
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--nodes", type=int, default=250)
    ap.add_argument("--minutes", type=float, default=3.0)
    ap.add_argument("--samples", type=int, default=7)
    args = ap.parse_args()
    srv = serve(args.nodes)
    with tempfile.TemporaryDirectory() as tmp:
        slo_rules = os.path.join(tmp, "slo.rules.yml")
        with open(slo_rules, "w") as fh:
            yaml.safe_dump(generate_rules(load_documents([("c.yaml", CATALOGUE)])), fh, sort_keys=False)
        files = [os.path.join(RULES, "hpcwatch-spend.rules.yml"), os.path.join(RULES,
                 "hpcwatch-infrastructure.rules.yml"), slo_rules]
        cfg = {"global": {"scrape_interval": "15s", "evaluation_interval": "30s"},
               "scrape_configs": [{"job_name": "hpcwatch-node", "honor_labels": True,
                                   "static_configs": [{"targets": [f"127.0.0.1:{srv.server_address[1]}"]}]}]}
        prom = Prometheus(tmp, cfg, files).start()
        try:
            wait_until(lambda: prom.query("count(hpc_gpu_job_info)"), 120, "first scrape")
            series = int(float(prom.query('count({__name__=~"hpc_.+"})')[0]["value"][1]))
            time.sleep(args.minutes * 60)
            polls = []
            for _ in range(args.samples):
                polls.append(group_times(prom))
                time.sleep(30)
        finally:
            prom.stop()
            srv.shutdown()
    groups = sorted(polls[0])
    med = {g: statistics.median(p[g][0] for p in polls if g in p) for g in groups}
    print(f"{args.nodes} nodes, {args.nodes * 8:,} GPUs, {args.nodes * 2:,} jobs: {series:,} hpc_ series; "
          f"group evaluation time, median of {len(polls)} reads of /api/v1/rules "
          f"(load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs)")
    from hpcwatch.alerts.catalog import all_alerts

    infra = {name for name, _ in all_alerts()}
    kinds = (("spend and waste", lambda g: g == "hpcwatch-spend" or g.startswith("spend: ")),
             ("preemption-rate", lambda g: "preemption-rate" in g), ("time-to-result", lambda g: "time-to-result" in g),
             ("gpu-utilisation", lambda g: "gpu-utilisation" in g),
             ("peer: job-success SLO", lambda g: "job-success" in g),
             ("peer: infrastructure alerts", infra.__contains__))
    for label, wanted in kinds:
        chosen = [g for g in groups if wanted(g)]
        total = sum(med[g] for g in chosen if not g.startswith("spend: "))
        rules = sum(polls[0][g][1] for g in chosen if not g.startswith("spend: "))
        print(f"  {label:30} {total * 1e3:8.2f} ms  ({rules} rules)")
        for g in chosen:
            print(f"      {g:60} {med[g] * 1e3:8.2f} ms")
    queue = [g for g in groups if "gpu-queue" in g]
    print(f"  {'gpu-utilisation of a queue':30} {sum(med[g] for g in queue) * 1e3:8.2f} ms  ({len(queue)} groups; "
          "the join with hpc_job_info's partition)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
