"""Cluster overview: is the scheduler up, how full is the machine, are jobs failing, what is firing."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    CLUSTER,
    HIGH_BAD_RATIO,
    UP_DOWN,
    UP_MAPPING,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    down_count,
    gauge,
    row,
    stat,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-cluster"
RI = "$__rate_interval"


def build() -> Dashboard:
    c = CLUSTER
    finished = f"{n.SCHED_JOBS_FINISHED}{{{c}}}"
    panels = [
        row("Health"),
        stat("Scheduler", "1 when the cluster agent's last refresh reached the scheduler (hpc_scheduler_up).",
             f"min({n.SCHED_UP}{{{c}}})", "none", UP_DOWN, UP_MAPPING),
        stat("Exporter targets down", "hpcwatch scrape targets Prometheus cannot reach right now.",
             down_count(f'{n.UP}{{job=~"{n.EXPORTER_JOB_RE}",{c}}}'), "none", ANY_BAD),
        stat("Collectors failing", "Collectors whose last scrape raised or timed out (hpcwatch_collector_success 0).",
             down_count(f"{n.COLLECTOR_SUCCESS}{{{c}}}"), "none", ANY_BAD),
        # No ALERTS series means none fires, but only where this Prometheus scrapes the cluster at all.
        stat("Alerts firing", "Infrastructure and SLO alerts firing now in this Prometheus for the cluster "
             "(no data when Prometheus scrapes nothing of it).",
             f'count({n.ALERTS}{{alertstate="firing",{c}}}) or 0 * count({n.UP}{{{c}}})', "none", ANY_BAD),
        row("Capacity"),
        gauge("CPUs allocated", "Share of schedulable CPUs allocated to jobs.",
              f'sum({n.SCHED_CPUS}{{state="allocated",{c}}}) / sum({n.SCHED_CPUS}{{state!="total",{c}}})'),
        gauge("GPUs allocated", "Share of schedulable GPUs allocated to jobs.",
              f'sum({n.SCHED_GPUS}{{state="allocated",{c}}}) / sum({n.SCHED_GPUS}{{state!="total",{c}}})'),
        bargauge("Nodes by state", "Nodes per scheduler state, summed over queues (a node in two queues "
                 "counts in both).", [Q(f"sum by (state) ({n.SCHED_NODES}{{{c}}})", "{{state}}", instant=True)],
                 unit="none", thresholds=((None, "blue"),), min_=0, max_=None, w=12, h=6),
        timeseries("Jobs by state", "Jobs the scheduler holds, by state.",
                   [Q(f"sum by (state) ({n.SCHED_JOBS}{{{c}}})", "{{state}}")], "none", stack=True),
        # Pre-aggregated per cluster (alerts/recording.py): one series per cluster, not one per core.
        timeseries("CPU and GPU busy", "Mean CPU busy share over all nodes (5-minute rate), and mean GPU "
                   "utilisation.",
                   [Q(f"1 - sum({n.REC_CPU_IDLE_RATE}{{{c}}}) / sum({n.REC_CPU_COUNT}{{{c}}})", "CPU busy"),
                    Q(f"sum({n.REC_GPU_UTILIZATION_SUM}{{{c}}}) / sum({n.REC_GPU_COUNT}{{{c}}})", "GPU utilisation")],
                   "percentunit", HIGH_BAD_RATIO, 0, 1),
        row("Jobs"),
        timeseries("Jobs finished per hour by outcome", "Jobs that reached a terminal state, by outcome.",
                   [Q(f"sum by (outcome) (increase({finished}[1h]))", "{{outcome}}")], "none", stack=True),
        stat("System-caused failures (24h)", "Share of finished jobs (user cancels excluded) that failed "
             "because of the system: node failures, boot failures, ...",
             f'sum(increase({n.SCHED_JOBS_FINISHED}{{cause="system",{c}}}[24h])) / '
             f'sum(increase({n.SCHED_JOBS_FINISHED}{{outcome!="cancelled",{c}}}[24h]))',
             "percentunit", ((None, "green"), (0.01, "orange"), (0.05, "red")), w=6, h=6),
        stat("Jobs pending", "Jobs waiting in all queues.",
             f'sum({n.SCHED_JOBS}{{state="pending",{c}}})', "none", ((None, "green"),), w=6, h=6),
        row("SLOs and alerts"),
        table("SLO error budget", "Error budget left in each SLO's period (Sloth recording rules).",
              [Q(f"{n.SLO_BUDGET_REMAINING}", "budget remaining")], "percentunit",
              ((None, "red"), (0.25, "orange"), (0.5, "green")),
              hide=("Time", "__name__", "job", "instance", "sloth_window"), w=12),
        table("Firing alerts", "Alerts firing now, with their severity.",
              [Q(f'{n.ALERTS}{{alertstate="firing",{c}}}', "")], "none",
              hide=("Time", "__name__", "Value", "alertstate"), w=12),
    ]
    return Dashboard(UID, "hpcwatch / Cluster overview",
                     "One screen for the whole cluster: scheduler, capacity, job outcomes, SLOs and alerts.",
                     "cluster", panels, [cluster_variable(n.SCHED_UP)], ("overview",))
