"""The price table as Prometheus recording rules: what running jobs cost and waste now, per job, account,
user and partition, from the node agents' live allocation series.

Per job and node, the allocation is read where the job runs (hpc_job_cpus, hpc_job_memory_limit_bytes,
the GPUs of hpc_gpu_job_info with their model from hpc_gpu_info, the attributed power of
hpc_job_energy_joules_total) and joined on (cluster, instance, jobid) with hpc_job_info for the job's
user, account and partition; then priced with the partition's rates, a GPU by its model (longest listed
name first, as Rates.gpu_rate), summed over the job's nodes. Waste is priced the same way: allocated CPUs
not busy (CPU seconds per second), memory under the limit the job never reached, GPUs whose utilisation
stayed under the threshold over the last 10 minutes.

Every rate is a cost per hour in the table's currency (label `currency`), by `resource` (cpu, memory,
gpu, energy). The group is evaluated every INTERVAL, so a range's spend is `sum_over_time(rate[range]) *
INTERVAL_S / 3600` whatever Prometheus' global evaluation interval is. Only PromQL that Prometheus 2.42
and vmalert both evaluate.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from hpcwatch.accounting.cost import GB
from hpcwatch.accounting.prices import PriceTable, Rates
from hpcwatch.accounting.rules import GPU_IDLE
from hpcwatch.slo.goformat import go_float, go_quote

from hpcwatch import metric_names as n

GROUP = "hpcwatch-spend"
INTERVAL_S = n.SPEND_INTERVAL_S
INTERVAL = f"{INTERVAL_S // 60}m"
GPU_WINDOW = "10m"       # a GPU is idle when its mean utilisation over this window is under the threshold
RATE_WINDOW = "5m"
RESOURCES = ("cpu", "memory", "gpu", "energy")

JOB = ("cluster", "jobid", "user", "account", "partition")
ON_JOB = "on (cluster, instance, jobid) group_left (user, account, partition)"


def _by(labels: tuple[str, ...]) -> str:
    return ", ".join(labels)


def _regex(text: str) -> str:
    """An RE2 pattern matching `text` literally (Prometheus anchors it)."""
    return re.sub(r"([\\.+*?()|\[\]{}^$])", r"\\\1", text)


def _partitions(prices: PriceTable, key: Callable[[Rates], object]) -> list[tuple[str, Rates]]:
    """(partition matcher, rates) per distinct `key(rates)`: listed partitions priced like the default fold
    into the default's matcher (every partition not priced otherwise), so the rules stay short."""
    default = key(prices.default)
    groups: dict[object, list[tuple[str, Rates]]] = {}
    for name, rates in prices.listed():
        if key(rates) != default:
            groups.setdefault(key(rates), []).append((name, rates))
    out = [(f'partition=~{go_quote("|".join(_regex(p) for p, _ in members))}', members[0][1])
           for members in groups.values()]
    others = [p for members in groups.values() for p, _ in members]
    out.append((f'partition!~{go_quote("|".join(_regex(p) for p in others))}' if others else "", prices.default))
    return out


def _sel(*matchers: str) -> str:
    inner = ",".join(m for m in matchers if m)
    return f"{{{inner}}}" if inner else ""


def priced(expr: str, prices: PriceTable, rate: Callable[[Rates], float | None]) -> str:
    """`expr` (a recorded series carrying `partition`) times its partition's rate; a partition without the
    price costs 0 (its series stays, at 0)."""
    return " or ".join(f"({expr}{_sel(m)} * {go_float(rate(r) or 0.0)})" for m, r in _partitions(prices, rate))


def priced_gpus(expr: str, prices: PriceTable) -> str:
    """GPU counts by `model` and `partition` times the price of a GPU-hour of that model in that partition.

    `or` keeps the first term holding a label set, so each GPU is priced by its partition's longest
    matching model name, then by the partition's gpu_hour."""
    terms = []
    for m, rates in _partitions(prices, lambda r: (tuple(r.gpu_models()), r.gpu_hour)):
        for model, price in rates.gpu_models():
            terms.append(f"({expr}{_sel(m, 'model=~' + go_quote('(?i).*' + _regex(model) + '.*'))} * "
                         f"{go_float(price)})")
        terms.append(f"({expr}{_sel(m)} * {go_float(rates.gpu_hour or 0.0)})")
    return " or ".join(terms)


def _record(name: str, expr: str, **labels: str) -> dict[str, Any]:
    out: dict[str, Any] = {"record": name, "expr": expr}
    if labels:
        out["labels"] = labels
    return out


# Recording rule names, by level (Prometheus' level:metric:operations); the dashboards read them from here.
JOB_CPUS = n.JOB_ALLOC_CPUS
JOB_MEMORY = n.JOB_ALLOC_MEMORY
JOB_POWER = n.JOB_POWER
JOB_GPUS = n.JOB_ALLOC_GPUS
GPU_ALLOCATED = n.GPU_ALLOCATED
JOB_IDLE_CPUS = n.JOB_IDLE_CPUS
JOB_UNUSED_MEMORY = n.JOB_UNUSED_MEMORY
JOB_IDLE_GPUS = n.JOB_IDLE_GPUS
JOB_SPEND = n.JOB_SPEND
JOB_WASTE = n.JOB_WASTE
ACCOUNT_SPEND = n.ACCOUNT_SPEND
ACCOUNT_WASTE = n.ACCOUNT_WASTE
USER_SPEND = n.USER_SPEND
USER_WASTE = n.USER_WASTE


def allocation_rules(gpu_idle_below: float = GPU_IDLE) -> list[dict[str, Any]]:
    """Per job: CPUs, memory limit, GPUs by model, power; and what of it sits idle. No prices."""
    node_job = "cluster, instance, jobid"
    gpus = (f'label_replace({n.GPU_JOB_INFO} * on (cluster, instance, uuid) group_left (name) {n.GPU_INFO}, '
            '"model", "$1", "name", "(.*)")')
    busy = f"sum without (mode) (rate({n.JOB_CPU_SECONDS}[{RATE_WINDOW}]))"
    return [
        _record(JOB_CPUS, f"sum by ({_by(JOB)}) ({n.JOB_CPUS} * {ON_JOB} {n.JOB_INFO})"),
        _record(JOB_MEMORY, f"sum by ({_by(JOB)}) ({n.JOB_MEMORY_LIMIT} * {ON_JOB} {n.JOB_INFO})"),
        _record(JOB_POWER, f"sum by ({_by(JOB)}) (sum by ({node_job}) (rate({n.JOB_ENERGY}[{RATE_WINDOW}]))"
                           f" * {ON_JOB} {n.JOB_INFO})"),
        # One series per GPU a job holds, with the GPU's model: the price key and the GPU SLI's denominator.
        _record(GPU_ALLOCATED, f"max by (cluster, instance, jobid, gpu, uuid, model) ({gpus})"),
        _record(JOB_GPUS, f"count by ({_by(JOB)}, model) ({GPU_ALLOCATED} * {ON_JOB} {n.JOB_INFO})"),
        _record(JOB_IDLE_CPUS, f"sum by ({_by(JOB)}) (clamp_min({n.JOB_CPUS} - on ({node_job}) {busy}, 0)"
                               f" * {ON_JOB} {n.JOB_INFO})"),
        _record(JOB_UNUSED_MEMORY, f"sum by ({_by(JOB)}) (clamp_min({n.JOB_MEMORY_LIMIT} - on ({node_job}) "
                                   f"{n.JOB_MEMORY_MAX_USAGE}, 0) * {ON_JOB} {n.JOB_INFO})"),
        _record(JOB_IDLE_GPUS, f"count by ({_by(JOB)}, model) (({GPU_ALLOCATED} and on (cluster, instance, uuid) "
                               f"(avg_over_time({n.GPU_UTILIZATION}[{GPU_WINDOW}]) < {go_float(gpu_idle_below)}))"
                               f" * {ON_JOB} {n.JOB_INFO})"),
    ]


# Price of one unit of each resource for an hour: a CPU, a byte of memory (the table prices GB-hours), a watt
# of power (the table prices kWh). The rules multiply each quantity by it once; the promtool tests too.
UNIT_PRICE: dict[str, Callable[[Rates], float]] = {
    "cpu": lambda r: r.cpu_hour or 0.0,
    "memory": lambda r: (r.mem_gb_hour or 0.0) / GB,
    "energy": lambda r: (r.kwh or 0.0) / 1000,
}


def _spend(record: str, cpus: str, memory: str, gpus: str, prices: PriceTable, energy: bool) -> list[dict]:
    """Cost per hour by resource of per-job CPUs, memory bytes and GPUs (and power when `energy`)."""
    cur = prices.currency
    out = [
        _record(record, priced(cpus, prices, UNIT_PRICE["cpu"]), resource="cpu", currency=cur),
        _record(record, priced(memory, prices, UNIT_PRICE["memory"]), resource="memory", currency=cur),
        _record(record, f"sum by ({_by(JOB)}) ({priced_gpus(gpus, prices)})", resource="gpu", currency=cur),
    ]
    if energy:
        out.append(_record(record, priced(JOB_POWER, prices, UNIT_PRICE["energy"]), resource="energy",
                           currency=cur))
    return out


def spend_rules(prices: PriceTable, gpu_idle_below: float = GPU_IDLE) -> dict[str, Any]:
    """The rule group: allocation, spend and waste per job, then per account (and partition) and user."""
    rules = allocation_rules(gpu_idle_below)
    rules += _spend(JOB_SPEND, JOB_CPUS, JOB_MEMORY, JOB_GPUS, prices, energy=True)
    rules += _spend(JOB_WASTE, JOB_IDLE_CPUS, JOB_UNUSED_MEMORY, JOB_IDLE_GPUS, prices, energy=False)
    for record, source, labels in ((ACCOUNT_SPEND, JOB_SPEND, ("cluster", "account", "partition")),
                                   (ACCOUNT_WASTE, JOB_WASTE, ("cluster", "account", "partition")),
                                   (USER_SPEND, JOB_SPEND, ("cluster", "account", "user")),
                                   (USER_WASTE, JOB_WASTE, ("cluster", "account", "user"))):
        rules.append(_record(record, f"sum by ({_by(labels)}, resource, currency) ({source})"))
    return {"name": GROUP, "interval": INTERVAL, "rules": rules}
