"""The scheduler-neutral `hpc_scheduler_*` families (the table both adapters declare) and their builders."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from hpcwatch.exporters.families import FamilyTable, counter, gauge, histogram
from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger
from hpcwatch.exporters.scheduler.model import Histogram, QueueSnapshot
from hpcwatch.exporters.scheduler.outcomes import NEUTRAL_PAIRS
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

FAMILIES = FamilyTable([
    gauge("hpc_scheduler_up",
          "1 when the last refresh reached the scheduler, 0 when it failed (the other families then show the last "
          "good snapshot).", "cluster"),
    gauge("hpc_scheduler_jobs",
          "Jobs now in the queue by neutral state (pending, running, suspended, completing); array tasks count one "
          "each.", "cluster", "queue", "state"),
    counter("hpc_scheduler_jobs_finished_total",
            "Job runs that reached a terminal state, each counted once, by outcome and who is to blame (cause: "
            "user, system, none).", "cluster", "queue", "outcome", "cause"),
    gauge("hpc_scheduler_accounting_lag_seconds",
          "Seconds between now and the accounting watermark: finished jobs newer than this may not be counted yet "
          "(grows while accounting is unreachable).", "cluster"),
    histogram("hpc_scheduler_queue_wait_seconds",
              "Queue wait of each job run (start - eligible), observed once per run when it starts, or from "
              "accounting when it finished unseen.", "cluster", "queue"),
    histogram("hpc_scheduler_turnaround_seconds",
              "Submit to end of each successful job run, wait and run together, observed once when the run is "
              "counted finished (the time-to-result SLI).", "cluster", "queue"),
    # A distribution of now: it may go down, so query it with histogram_quantile() directly, never rate().
    histogram("hpc_scheduler_pending_wait_seconds",
              "How long the jobs still pending have been eligible to start (now - eligible), a distribution of the "
              "current queue rebuilt on each refresh.", "cluster", "queue"),
    *(gauge(f"hpc_scheduler_{what}", f"{doc} by queue and state; a node in two queues counts in both (state "
            "maint: under maintenance, whatever else it is).", "cluster", "queue", "state")
      for what, doc in (("nodes", "Nodes"), ("cpus", "CPUs"), ("gpus", "GPUs"))),
    gauge("hpc_scheduler_maintenance",
          "1 for each node under maintenance now: in an active maintenance window (source reservation: a Slurm "
          "MAINT reservation, named in `reservation`) or drained or down for a reason that says maintenance "
          "(source drain). Alerts and availability SLIs leave these nodes out.", "cluster", "node", "source",
          "reservation"),
    gauge("hpc_scheduler_maintenance_window_start_timestamp_seconds",
          "Start of each maintenance window the scheduler knows of, current or coming (Unix time).",
          "cluster", "reservation"),
    gauge("hpc_scheduler_maintenance_window_end_timestamp_seconds",
          "End of each maintenance window the scheduler knows of, current or coming (Unix time).",
          "cluster", "reservation"),
    gauge("hpc_scheduler_maintenance_window_nodes",
          "Nodes in each maintenance window the scheduler knows of, current or coming.", "cluster", "reservation"),
])


def up_family(cluster: str, up: bool) -> GaugeMetricFamily:
    fam = FAMILIES.new("hpc_scheduler_up")
    fam.add_metric([cluster], 1 if up else 0)
    return fam


def snapshot_families(snap: QueueSnapshot) -> Iterator[Metric]:
    """Live queue and capacity: jobs by state, the wait of pending jobs, nodes/cpus/gpus by state."""
    c = snap.cluster
    jobs = FAMILIES.new("hpc_scheduler_jobs")
    for (queue, state), n in sorted(snap.jobs.items()):
        jobs.add_metric([c, queue, state], n)
    yield jobs
    yield histogram_family("hpc_scheduler_pending_wait_seconds", c, snap.pending_wait)
    for name, data in (("hpc_scheduler_nodes", snap.nodes), ("hpc_scheduler_cpus", snap.cpus),
                       ("hpc_scheduler_gpus", snap.gpus)):
        fam = FAMILIES.new(name)
        for (queue, state), n in sorted(data.items()):
            fam.add_metric([c, queue, state], n)
        yield fam
    yield from maintenance_families(snap)


def maintenance_families(snap: QueueSnapshot) -> Iterator[Metric]:
    """Nodes under maintenance now, and the windows the scheduler knows of."""
    c = snap.cluster
    fam = FAMILIES.new("hpc_scheduler_maintenance")
    for node, (source, name) in sorted(snap.maintenance.items()):
        fam.add_metric([c, node, source, name], 1)
    yield fam
    start = FAMILIES.new("hpc_scheduler_maintenance_window_start_timestamp_seconds")
    end = FAMILIES.new("hpc_scheduler_maintenance_window_end_timestamp_seconds")
    count = FAMILIES.new("hpc_scheduler_maintenance_window_nodes")
    for w in sorted(snap.windows, key=lambda w: w.name):
        if w.start is not None:
            start.add_metric([c, w.name], w.start)
        if w.end is not None:
            end.add_metric([c, w.name], w.end)
        count.add_metric([c, w.name], len(w.nodes))
    yield from (start, end, count)


def ledger_families(cluster: str, ledger: FinishedJobLedger, queues: Iterable[str] = ()) -> Iterator[Metric]:
    """Finished-job counters, the queue-wait and turnaround histograms; all persist across restarts.

    Every (outcome, cause) pair of every known queue (`queues` from the live snapshot, plus those
    with counts) is exported, 0 until its first job, so rate() and increase() see the first one.
    """
    fin = FAMILIES.new("hpc_scheduler_jobs_finished_total")
    counts = dict(ledger.finished)
    for queue in set(queues) | {q for q, _, _ in counts}:
        for outcome, cause in NEUTRAL_PAIRS:
            counts.setdefault((queue, outcome, cause), 0)
    for (queue, outcome, cause), n in sorted(counts.items()):
        fin.add_metric([cluster, queue, outcome, cause], n)
    yield fin
    yield histogram_family("hpc_scheduler_queue_wait_seconds", cluster, ledger.wait)
    yield histogram_family("hpc_scheduler_turnaround_seconds", cluster, ledger.turnaround)


def known_queues(snap: object) -> set[str]:
    """Queues the live snapshot knows (from jobs and capacity); empty before the first refresh."""
    queue = getattr(snap, "queue", None)
    if queue is None:
        return set()
    return ({q for q, _ in queue.jobs} | {q for q, _ in queue.nodes}) - {""}


def lag_family(cluster: str, watermark: float | None) -> GaugeMetricFamily:
    """How far behind finished-job counting is; built per scrape because it grows with the clock."""
    lag = FAMILIES.new("hpc_scheduler_accounting_lag_seconds")
    if watermark is not None:
        lag.add_metric([cluster], max(0.0, time.time() - watermark))
    return lag


def histogram_family(name: str, cluster: str, hists: dict[str, Histogram]) -> Metric:
    """The histogram family `name` (FAMILIES) by queue."""
    fam = FAMILIES.new(name)
    for queue, h in sorted(hists.items()):
        fam.add_metric([cluster, queue], h.cumulative(), h.sum)
    return fam
