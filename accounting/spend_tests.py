"""promtool unit tests of the spend rules: two jobs on two nodes of known allocation and use, and what
each recorded series must hold, worked out from the price table with its own methods (PriceTable.rates,
Rates.gpu_rate), not from the PromQL the rules are written in. Quantity times unit price (UNIT_PRICE) is
computed as the rules compute it, one multiplication, since promtool compares samples exactly."""

from __future__ import annotations

from typing import Any

from hpcwatch.accounting import spend_rules as sr
from hpcwatch.accounting.prices import PriceTable

NODE = 'cluster="c1",job="hpcwatch-node"'
GPU_MODEL = "NVIDIA H100 80GB HBM3"
GiB = 1 << 30
# Jobs: id -> identity, and per node (CPUs, memory limit, memory peak, busy CPUs, watts).
JOBS = {
    "10": ({"user": "alice", "account": "chem", "partition": "gpu"},
           {"n1": (4, 8 * GiB, 2 * GiB, 4, 500.0), "n2": (4, 8 * GiB, 6 * GiB, 1, 100.0)}),
    "11": ({"user": "bob", "account": "phys", "partition": "batch"},
           {"n1": (2, 4 * GiB, 4 * GiB, 1, 50.0)}),
}
# GPUs of job 10 on n1: (gpu, uuid, utilisation).
GPUS = (("0", "GPU-a", 0.9), ("1", "GPU-b", 0.01))
EVAL = "15m"


def _series() -> list[dict[str, str]]:
    out = []
    for jobid, (who, nodes) in JOBS.items():
        for node, (cpus, limit, peak, busy, watts) in nodes.items():
            at = f'{NODE},instance="{node}:19466",jobid="{jobid}"'
            ident = ",".join(f'{k}="{v}"' for k, v in who.items())
            out += [
                {"series": f'hpc_job_info{{{at},{ident},uid="1000"}}', "values": "1x20"},
                {"series": f"hpc_job_cpus{{{at}}}", "values": f"{cpus}x20"},
                {"series": f"hpc_job_memory_limit_bytes{{{at}}}", "values": f"{limit}x20"},
                {"series": f"hpc_job_memory_max_usage_bytes{{{at}}}", "values": f"{peak}x20"},
                {"series": f'hpc_job_cpu_seconds_total{{{at},mode="user"}}', "values": f"0+{busy * 60}x20"},
                {"series": f'hpc_job_cpu_seconds_total{{{at},mode="system"}}', "values": "0x20"},
                {"series": f'hpc_job_energy_joules_total{{{at},component="cpu"}}', "values": f"0+{watts * 60:g}x20"},
            ]
    for gpu, uuid, util in GPUS:
        at = f'{NODE},instance="n1:19466",gpu="{gpu}",uuid="{uuid}"'
        out += [{"series": f'hpc_gpu_info{{{at},name="{GPU_MODEL}"}}', "values": "1x20"},
                {"series": f'hpc_gpu_job_info{{{at},jobid="10"}}', "values": "1x20"},
                {"series": f"hpc_gpu_utilization_ratio{{{at}}}", "values": f"{util}x20"}]
    return out


def expected(prices: PriceTable, gpu_idle_below: float) -> dict[str, dict[tuple[str, str], float]]:
    """{record: {(jobid, resource): cost per hour}} for the job-level spend and waste."""
    spend: dict[tuple[str, str], float] = {}
    waste: dict[tuple[str, str], float] = {}
    for jobid, (who, nodes) in JOBS.items():
        r = prices.rates(who["partition"])
        cpus = sum(v[0] for v in nodes.values())
        mem = sum(v[1] for v in nodes.values())
        idle = sum(v[0] - v[3] for v in nodes.values())
        unused = sum(v[1] - v[2] for v in nodes.values())
        gpus = [g for g in GPUS] if jobid == "10" else []
        idle_gpus = [g for g in gpus if g[2] < gpu_idle_below]
        gpu_rate = r.gpu_rate(GPU_MODEL) or 0.0
        price = {res: unit(r) for res, unit in sr.UNIT_PRICE.items()}
        spend.update({(jobid, "cpu"): cpus * price["cpu"], (jobid, "memory"): mem * price["memory"],
                      (jobid, "energy"): sum(v[4] for v in nodes.values()) * price["energy"]})
        waste.update({(jobid, "cpu"): idle * price["cpu"], (jobid, "memory"): unused * price["memory"]})
        if gpus:
            spend[(jobid, "gpu")] = len(gpus) * gpu_rate
            waste[(jobid, "gpu")] = len(idle_gpus) * gpu_rate
    return {sr.JOB_SPEND: spend, sr.JOB_WASTE: waste}


def _sample(record: str, jobid: str, resource: str, currency: str, value: float) -> dict[str, Any]:
    who = JOBS[jobid][0]
    labels = ",".join(f'{k}="{v}"' for k, v in {"cluster": "c1", "jobid": jobid, **who, "resource": resource,
                                                 "currency": currency}.items())
    return {"labels": f"{record}{{{labels}}}", "value": value}


def promtool_cases(rule_file: str, prices: PriceTable, gpu_idle_below: float) -> dict[str, Any]:
    want = expected(prices, gpu_idle_below)
    exprs = []
    for record, values in want.items():
        exprs.append({"expr": f"{record}", "eval_time": EVAL, "exp_samples": [
            _sample(record, j, res, prices.currency, v) for (j, res), v in sorted(values.items())]})
    for record, source, key in ((sr.ACCOUNT_SPEND, sr.JOB_SPEND, "account"), (sr.USER_WASTE, sr.JOB_WASTE, "user")):
        totals: dict[tuple[str, ...], float] = {}
        for (jobid, res), v in want[source].items():
            who = JOBS[jobid][0]
            k = (who["account"], who["partition"] if key == "account" else who["user"], res)
            totals[k] = totals.get(k, 0.0) + v
        second = "partition" if key == "account" else "user"
        exprs.append({"expr": record, "eval_time": EVAL, "exp_samples": [
            {"labels": f'{record}{{cluster="c1",account="{a}",{second}="{b}",resource="{res}",'
                       f'currency="{prices.currency}"}}', "value": v} for (a, b, res), v in sorted(totals.items())]})
    exprs.append({"expr": sr.JOB_IDLE_GPUS, "eval_time": EVAL, "exp_samples": [
        {"labels": f'{sr.JOB_IDLE_GPUS}{{cluster="c1",jobid="10",user="alice",account="chem",partition="gpu",'
                   f'model="{GPU_MODEL}"}}', "value": sum(1 for g in GPUS if g[2] < gpu_idle_below)}]})
    return {"rule_files": [rule_file], "evaluation_interval": sr.INTERVAL,
            "tests": [{"name": "spend and waste of two jobs on two nodes", "interval": "1m",
                       "input_series": _series(), "promql_expr_test": exprs}]}
