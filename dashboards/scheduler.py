"""Scheduler: queue depth, wait distribution, job outcomes by cause, nodes by state, scheduler cycles."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    CLUSTER,
    UP_DOWN,
    UP_MAPPING,
    Dashboard,
    Q,
    cluster_variable,
    heatmap,
    query_variable,
    row,
    stat,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-scheduler"
RI = "$__rate_interval"
Z = f'{CLUSTER},queue=~"$queue"'
SLOW = ((None, "green"), (2, "orange"), (10, "red"))


def build() -> Dashboard:
    wait_q = [Q(f"histogram_quantile({q}, sum by (le) (rate({n.SCHED_QUEUE_WAIT}_bucket{{{Z}}}[{RI}])))",
                f"p{int(q * 100)}") for q in (0.5, 0.9, 0.99)]
    panels = [
        row("Queues"),
        stat("Scheduler", "1 when the last refresh reached the scheduler.", f"min({n.SCHED_UP}{{{CLUSTER}}})",
             "none", UP_DOWN, UP_MAPPING),
        stat("Pending", "Jobs waiting.", f'sum({n.SCHED_JOBS}{{state="pending",{Z}}})', "none"),
        stat("Running", "Jobs running.", f'sum({n.SCHED_JOBS}{{state="running",{Z}}})', "none"),
        stat("Snapshot age", "Seconds since the scheduler source last refreshed successfully.",
             f'time() - max({n.SOURCE_LAST_SUCCESS}{{source=~"{n.SCHED_SOURCE_RE}",{CLUSTER}}})', "s",
             ((None, "green"), (120, "orange"), (300, "red"))),
        timeseries("Queue depth by state and queue", "Jobs per queue and state.",
                   [Q(f"sum by (queue, state) ({n.SCHED_JOBS}{{{Z}}})", "{{queue}} {{state}}")], "none", stack=True),
        timeseries("Pending by reason", "Pending jobs by the reason Slurm gives (Resources, Priority, ...).",
                   [Q(f'sum by (reason) ({n.SLURM_PENDING_JOBS}{{{CLUSTER},partition=~"$queue"}})', "{{reason}}")],
                   "none", stack=True),
        row("Waiting"),
        heatmap("Queue wait distribution", "Jobs started per wait-time bucket (start minus eligible).",
                f"sum by (le) (rate({n.SCHED_QUEUE_WAIT}_bucket{{{Z}}}[{RI}]))"),
        timeseries("Queue wait quantiles", "Wait of jobs that started, estimated from the histogram.",
                   wait_q, "s", ((None, "green"), (3600, "orange"), (86400, "red")), 0),
        timeseries("Wait of jobs still pending", "How long the jobs still pending have waited so far (p50, p90).",
                   [Q(f"histogram_quantile({q}, sum by (le) ({n.SCHED_PENDING_WAIT}_bucket{{{Z}}}))",
                      f"p{int(q * 100)}") for q in (0.5, 0.9)], "s", min_=0, w=24),
        row("Outcomes and capacity"),
        timeseries("Finished jobs by outcome and cause", "Jobs finished per hour; cause says who is to blame: "
                   "user, system or none.",
                   [Q(f"sum by (outcome, cause) (increase({n.SCHED_JOBS_FINISHED}{{{Z}}}[1h]))",
                      "{{outcome}} ({{cause}})")], "none", stack=True),
        timeseries("Nodes by state", "Nodes per scheduler state.",
                   [Q(f"sum by (state) ({n.SCHED_NODES}{{{Z}}})", "{{state}}")], "none", stack=True),
        timeseries("CPUs by state", "CPUs allocated, idle and other (down, drained).",
                   [Q(f'sum by (state) ({n.SCHED_CPUS}{{state!="total",{Z}}})', "{{state}}")], "none", stack=True),
        timeseries("GPUs by state", "GPUs allocated and idle.",
                   [Q(f'sum by (state) ({n.SCHED_GPUS}{{state!="total",{Z}}})', "{{state}}")], "none", stack=True),
        row("Slurm controller"),
        timeseries("Scheduler cycle", "Main and backfill scheduler cycle times (sdiag); long cycles delay "
                   "every job start.",
                   [Q(f"max({n.SLURM_SCHED_CYCLE_LAST}{{{CLUSTER}}})", "main last"),
                    Q(f"max({n.SLURM_SCHED_CYCLE_MEAN}{{{CLUSTER}}})", "main mean"),
                    Q(f"max({n.SLURM_BACKFILL_CYCLE_LAST}{{{CLUSTER}}})", "backfill last"),
                    Q(f"max({n.SLURM_BACKFILL_CYCLE_MEAN}{{{CLUSTER}}})", "backfill mean")], "s", SLOW, 0),
        timeseries("Controller queues", "slurmctld server threads, agent queue and DBD agent queue (sdiag): "
                   "growing queues mean the controller or slurmdbd cannot keep up.",
                   [Q(f"max({n.SLURM_SERVER_THREADS}{{{CLUSTER}}})", "server threads"),
                    Q(f"max({n.SLURM_AGENT_QUEUE}{{{CLUSTER}}})", "agent queue"),
                    Q(f"max({n.SLURM_DBD_AGENT_QUEUE}{{{CLUSTER}}})", "dbd agent queue")], "none", min_=0),
    ]
    queue = query_variable("queue", "Queue", f"label_values({n.SCHED_JOBS}{{{CLUSTER}}}, queue)")
    return Dashboard(UID, "hpcwatch / Scheduler", "Slurm or Flux through the scheduler-neutral model: queues, "
                     "waits, outcomes by cause, capacity and controller health.", "scheduler", panels,
                     [cluster_variable(n.SCHED_UP), queue], ("scheduler",))
