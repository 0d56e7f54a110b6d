"""Executive: what the centre spends and wastes now and over time, beside energy, efficiency, the job-success
error budget and queue wait; top accounts and users by spend and by waste.

Spend and waste are the price table's recording rules (accounting/spend_rules.py, `hpcwatch usage rules`),
a cost per hour by resource; a range's spend is the sum of the rule's samples times its interval. The
finished jobs' own costs are `hpcwatch usage report`'s (the summary dataset).
"""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    CLUSTER,
    HIGH_BAD_RATIO,
    LOW_BAD_RATIO,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    row,
    stat,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-executive"
RANGE_HOURS = f"{n.SPEND_INTERVAL_S} / 3600"   # each sample of a spend rule stands for this many hours
BUDGET = ((None, "red"), (0.25, "orange"), (0.5, "green"))
TOP = 10


def _over_range(metric: str, by: str = "") -> str:
    """The cost of the dashboard's range: the rule's samples summed, each worth one interval."""
    inner = f"sum_over_time({metric}{{{CLUSTER}}}[$__range])"
    return f"sum{f' by ({by})' if by else ''} ({inner}) * {RANGE_HOURS}"


def _now(metric: str, by: str = "") -> str:
    return f"sum{f' by ({by})' if by else ''} ({metric}{{{CLUSTER}}})"


def _top(title: str, what: str, metric: str, by: str, legend: str) -> object:
    return bargauge(title, f"The {TOP} {what} over the dashboard's time range, in the price table's currency.",
                    [Q(f"topk({TOP}, {_over_range(metric, by)})", legend, instant=True)], "none",
                    ((None, "blue"),), None, None)


def build() -> Dashboard:
    spend_now = _now(n.ACCOUNT_SPEND, "currency")
    waste_now = _now(n.ACCOUNT_WASTE, "currency")
    gpu_busy = (f"avg(avg_over_time({n.GPU_UTILIZATION}[5m]) and on (cluster, instance, uuid) "
                f"{n.GPU_ALLOCATED}{{{CLUSTER}}})")
    panels = [
        row("Spend"),
        stat("Spend now", "What the running jobs cost per hour: allocated CPUs, memory and GPUs at the price table's "
             "rates, and their attributed power at its kWh price.", Q(spend_now, "{{currency}} per hour", True),
             "none", w=6),
        stat("Spend over the range", "What the jobs that ran in the dashboard's time range cost while they ran.",
             Q(_over_range(n.ACCOUNT_SPEND, "currency"), "{{currency}}", True), "none", w=6),
        stat("Waste now", "Per hour, what running jobs hold and do not use: idle allocated CPUs, memory under the "
             "limit they never reached, GPUs under the idle threshold for 10 minutes.",
             Q(waste_now, "{{currency}} per hour", True), "none", ((None, "green"), (1e-9, "orange")), w=6),
        stat("Waste share", "Waste as a share of spend, now.", Q(f"{waste_now} / {spend_now}", instant=True),
             "percentunit", HIGH_BAD_RATIO, w=6),
        timeseries("Spend per hour by account", "Cost per hour of each account's running jobs.",
                   [Q(_now(n.ACCOUNT_SPEND, "account, currency"), "{{account}} ({{currency}})")], "none", min_=0,
                   stack=True),
        timeseries("Spend per hour by resource", "Cost per hour by what is charged: CPUs, memory, GPUs, energy.",
                   [Q(_now(n.ACCOUNT_SPEND, "resource, currency"), "{{resource}} ({{currency}})")], "none", min_=0,
                   stack=True),
        _top("Top accounts by spend", "accounts that cost most", n.ACCOUNT_SPEND, "account", "{{account}}"),
        _top("Top users by spend", "users that cost most", n.USER_SPEND, "account, user", "{{user}} ({{account}})"),
        row("Waste"),
        timeseries("Waste per hour by resource", "Cost per hour of what running jobs hold and leave unused.",
                   [Q(_now(n.ACCOUNT_WASTE, "resource, currency"), "{{resource}} ({{currency}})")], "none", min_=0,
                   stack=True),
        timeseries("Idle allocations", "Allocated CPUs not busy, GPUs under the idle threshold, and memory "
                   "under the limit never reached, summed over running jobs.",
                   [Q(_now(n.JOB_IDLE_CPUS), "idle CPUs"),
                    # 0 while jobs hold GPUs and none is idle (the rule records idle ones only); no data without GPUs.
                    Q(f"{_now(n.JOB_IDLE_GPUS)} or 0 * {_now(n.JOB_ALLOC_GPUS)}", "idle GPUs")], "none", min_=0),
        _top("Top accounts by waste", "accounts that wasted most", n.ACCOUNT_WASTE, "account", "{{account}}"),
        _top("Top users by waste", "users that wasted most", n.USER_WASTE, "account, user", "{{user}} ({{account}})"),
        table("Jobs wasting most now", "Running jobs by their waste per hour, with what they hold.",
              [Q(f"topk({TOP}, {_now(n.JOB_WASTE, 'jobid, user, account, partition')})", "waste per hour"),
               Q(f"{_now(n.JOB_ALLOC_CPUS, 'jobid, user, account, partition')} and on (jobid) "
                 f"topk({TOP}, {_now(n.JOB_WASTE, 'jobid')})", "CPUs"),
               Q(f"{_now(n.JOB_IDLE_CPUS, 'jobid, user, account, partition')} and on (jobid) "
                 f"topk({TOP}, {_now(n.JOB_WASTE, 'jobid')})", "idle CPUs")],
              "none", hide=("Time",), h=8, sort_by="waste per hour"),
        row("Energy"),
        stat("Power of running jobs", "Watts attributed to running jobs now (the node agents' energy collector).",
             Q(_now(n.JOB_POWER), instant=True), "watt", w=6),
        stat("Energy over the range", "Energy the nodes drew in the dashboard's time range.",
             Q(f"sum(increase({n.ENERGY_NODE}{{{CLUSTER}}}[$__range])) / 3.6e6", instant=True), "kwatth", w=6),
        stat("Unattributed energy", "Share of the nodes' energy in the range that no job ran on (idle nodes, "
             "daemons, unallocated GPUs).",
             Q(f"sum(increase({n.ENERGY_UNATTRIBUTED}{{{CLUSTER}}}[$__range])) / "
               f"sum(increase({n.ENERGY_NODE}{{{CLUSTER}}}[$__range]))", instant=True), "percentunit",
             HIGH_BAD_RATIO, w=6),
        stat("Energy spend now", "What the running jobs' power costs per hour at the kWh price.",
             Q(f"sum by (currency) ({n.ACCOUNT_SPEND}{{{CLUSTER},resource=\"energy\"}})", "{{currency}} per hour",
               True), "none", w=6),
        timeseries("Power by account", "Watts attributed to each account's running jobs.",
                   [Q(_now(n.JOB_POWER, "account"), "{{account}}")], "watt", min_=0, stack=True),
        row("Efficiency"),
        timeseries("Efficiency of running jobs", "CPU: CPU seconds used per allocated CPU second; GPU: mean "
                   "utilisation of allocated GPUs; memory: peak against the limit.",
                   [Q(f"1 - {_now(n.JOB_IDLE_CPUS)} / {_now(n.JOB_ALLOC_CPUS)}", "CPU"), Q(gpu_busy, "GPU"),
                    Q(f"1 - {_now(n.JOB_UNUSED_MEMORY)} / {_now(n.JOB_ALLOC_MEMORY)}", "memory")],
                   "percentunit", LOW_BAD_RATIO, 0, 1),
        stat("CPU efficiency now", "CPU seconds used per allocated CPU second, all running jobs.",
             Q(f"1 - {_now(n.JOB_IDLE_CPUS)} / {_now(n.JOB_ALLOC_CPUS)}", instant=True), "percentunit",
             LOW_BAD_RATIO, w=6),
        stat("GPU utilisation now", "Mean utilisation of the GPUs jobs hold, over 5 minutes.",
             Q(gpu_busy, instant=True), "percentunit", LOW_BAD_RATIO, w=6),
        row("Service"),
        timeseries("Job-success error budget", "Share of each job-success SLO's error budget left in its period "
                   "(the SLO catalogue's rules); below 0 the objective is missed.",
                   [Q(f'{n.SLO_BUDGET_REMAINING}{{sloth_slo=~"job-success.*",{CLUSTER}}}', "{{sloth_id}}")],
                   "percentunit", BUDGET),
        timeseries("Queue wait", "How long jobs waited to start (start - eligible), 50th and 90th percentile over "
                   "the last hour, all queues.",
                   [Q(f"histogram_quantile({q}, sum by (le) (rate({n.SCHED_QUEUE_WAIT}_bucket{{{CLUSTER}}}[1h])))",
                      f"p{int(q * 100)}") for q in (0.5, 0.9)], "s", min_=0),
    ]
    return Dashboard(UID, "hpcwatch / Executive", "Spend and waste now and over time, with energy, efficiency, "
                     "the job-success error budget and queue wait; top accounts and users by spend and waste.",
                     "executive", panels, [cluster_variable(n.ACCOUNT_SPEND)], ("accounting",), "now-24h")
