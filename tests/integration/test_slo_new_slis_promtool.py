"""promtool evaluates the generated rules of preemption-rate, time-to-result and gpu-utilisation over input
series of known shape: the recorded 5-minute error ratio is what the series say, and the gpu-utilisation
input recordings count a GPU shared by two jobs once and leave GPUs no job holds out."""

from __future__ import annotations

import subprocess

import yaml
from helpers import require_binary
from hpcwatch.slo import generate_rules
from hpcwatch.slo.loader import load_documents

CATALOGUE = {"apiVersion": "hpcwatch/v1", "kind": "SLOCatalogue", "spec": {
    "service": "hpc", "clusters": ["alpha"], "min_events": 1, "slos": [
        {"sli": "preemption-rate", "objective": 99, "queues": ["gpu"]},
        {"sli": "time-to-result", "objective": 95, "threshold": "6h", "queues": ["forecast"]},
        {"sli": "time-to-result", "name": "ttr-strict", "objective": 90, "threshold": "6h", "queues": ["forecast"],
         "include_failures": True},
        {"sli": "gpu-utilisation", "objective": 70, "threshold": 0.5},
        {"sli": "gpu-utilisation", "name": "gpu-queue", "objective": 70, "threshold": 0.5, "queues": ["gpu"]},
        {"sli": "node-availability", "objective": 97, "queues": ["batch"]}]}}
NODE = 'cluster="alpha",instance="n1:19466",job="hpcwatch-node"'


def _series() -> list[dict]:
    fin = "hpc_scheduler_jobs_finished_total"
    out = [
        # gpu queue: 10 runs start a minute, 1 is preempted.
        {"series": f'{fin}{{cluster="alpha",queue="gpu",outcome="preempted",cause="system"}}', "values": "0+1x20"},
        {"series": 'hpc_scheduler_queue_wait_seconds_count{cluster="alpha",queue="gpu"}', "values": "0+10x20"},
        # forecast queue: 10 successes a minute, 8 within 6 hours; and 2 failures a minute, 1 owner cancel.
        {"series": 'hpc_scheduler_turnaround_seconds_count{cluster="alpha",queue="forecast"}', "values": "0+10x20"},
        {"series": 'hpc_scheduler_turnaround_seconds_bucket{cluster="alpha",queue="forecast",le="21600.0"}',
         "values": "0+8x20"},
        {"series": f'{fin}{{cluster="alpha",queue="forecast",outcome="failed",cause="user"}}', "values": "0+2x20"},
        {"series": f'{fin}{{cluster="alpha",queue="forecast",outcome="cancelled",cause="none"}}', "values": "0+1x20"},
        {"series": f'{fin}{{cluster="alpha",queue="forecast",outcome="success",cause="none"}}', "values": "0+10x20"},
    ]
    # GPUs: A 90% and B 60% busy, C 20%; D idle and shared by jobs 2 and 3; E busy but held by no job.
    gpus = {"A": (0.9, ["1"]), "B": (0.6, ["1"]), "C": (0.2, ["2"]), "D": (0.0, ["2", "3"]), "E": (0.95, [])}
    for i, (uuid, (util, jobs)) in enumerate(gpus.items()):
        at = f'{NODE},gpu="{i}",uuid="GPU-{uuid}"'
        out.append({"series": f"hpc_gpu_utilization_ratio{{{at}}}", "values": f"{util}x20"})
        out += [{"series": f'hpc_gpu_job_info{{{at},jobid="{j}"}}', "values": "1x20"} for j in jobs]
    # batch: 6 nodes idle, 2 down, 2 under maintenance (down or not, they are out of the SLI).
    out += [{"series": f'hpc_scheduler_nodes{{cluster="alpha",queue="batch",state="{st}"}}', "values": f"{n}x20"}
            for st, n in (("idle", 6), ("down", 2), ("maint", 2))]
    # Job 1 runs in partition gpu, jobs 2 and 3 in batch.
    for jobid, part in (("1", "gpu"), ("2", "batch"), ("3", "batch")):
        out.append({"series": f'hpc_job_info{{{NODE},jobid="{jobid}",user="u",uid="1",account="a",'
                              f'partition="{part}"}}', "values": "1x20"})
    return out


def test_recorded_error_ratios(tmp_path):
    promtool = require_binary("promtool")
    slos = load_documents([("c.yaml", CATALOGUE)])
    (tmp_path / "rules.yml").write_text(yaml.safe_dump(generate_rules(slos), sort_keys=False))
    want = {"hpc-preemption-rate-alpha-gpu": 0.1,                 # 1 of 10 starts
            "hpc-time-to-result-alpha-forecast": 0.2,             # 2 of 10 successes late
            "hpc-ttr-strict-alpha-forecast": (2 + 2) / (10 + 2),   # late successes and failures; cancels out
            "hpc-gpu-utilisation-alpha": 0.5,                     # of A, B, C, D: C and D below 50%
            "hpc-gpu-queue-alpha-gpu": 0.0,                       # job 1's A and B, both busy
            "hpc-node-availability-alpha-batch": 2 / 8}           # 2 down of the 8 not under maintenance
    tests = [{"expr": f'slo:sli_error:ratio_rate5m{{sloth_id="{sid}"}}', "eval_time": "10m",
              "exp_samples": [{"labels": _labels(slos, sid), "value": v}]} for sid, v in want.items()]
    tests.append({"expr": 'slo:hpc_gpu_allocated:count{sloth_id="hpc-gpu-utilisation-alpha"}', "eval_time": "10m",
                  "exp_samples": [{"labels": _labels(slos, "hpc-gpu-utilisation-alpha", "slo:hpc_gpu_allocated:count",
                                                     window=False), "value": 4}]})
    doc = {"rule_files": ["rules.yml"], "evaluation_interval": "1m",
           "tests": [{"interval": "1m", "input_series": _series(), "promql_expr_test": tests}]}
    (tmp_path / "t.yml").write_text(yaml.safe_dump(doc, sort_keys=False))
    proc = subprocess.run([promtool, "test", "rules", "t.yml"], capture_output=True, text=True, cwd=str(tmp_path),
                          timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def _labels(slos, sid: str, metric: str = "slo:sli_error:ratio_rate5m", window: bool = True) -> str:
    slo = next(s for s in slos if s.id == sid)
    labels = {"sloth_id": slo.id, "sloth_slo": slo.name, "sloth_service": slo.service, **slo.labels}
    if window:
        labels["sloth_window"] = "5m"
    return metric + "{" + ",".join(f'{k}="{v}"' for k, v in sorted(labels.items())) + "}"
