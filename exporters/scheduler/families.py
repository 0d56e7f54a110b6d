"""Builders for the scheduler-neutral `hpc_scheduler_*` families, shared by the Slurm and Flux adapters."""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator

from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger
from hpcwatch.exporters.scheduler.model import Histogram, QueueSnapshot
from hpcwatch.exporters.scheduler.outcomes import NEUTRAL_PAIRS
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily
from prometheus_client.metrics_core import Metric


def up_family(cluster: str, up: bool) -> GaugeMetricFamily:
    fam = GaugeMetricFamily("hpc_scheduler_up",
                            "1 when the last refresh reached the scheduler, 0 when it failed (the other "
                            "families then show the last good snapshot).", labels=["cluster"])
    fam.add_metric([cluster], 1 if up else 0)
    return fam


def snapshot_families(snap: QueueSnapshot) -> Iterator[Metric]:
    """Live queue and capacity: jobs by state, the wait of pending jobs, nodes/cpus/gpus by state."""
    c = snap.cluster
    jobs = GaugeMetricFamily("hpc_scheduler_jobs", "Jobs now in the queue by neutral state "
                             "(pending, running, suspended, completing); array tasks count one each.",
                             labels=["cluster", "queue", "state"])
    for (queue, state), n in sorted(snap.jobs.items()):
        jobs.add_metric([c, queue, state], n)
    yield jobs
    yield histogram_family("hpc_scheduler_pending_wait_seconds",
                           "How long the jobs still pending have been eligible to start (now - eligible), "
                           "a distribution of the current queue rebuilt on each refresh.",
                           c, snap.pending_wait, gauge=True)
    for name, data, what in (("hpc_scheduler_nodes", snap.nodes, "Nodes"), ("hpc_scheduler_cpus", snap.cpus, "CPUs"),
                             ("hpc_scheduler_gpus", snap.gpus, "GPUs")):
        fam = GaugeMetricFamily(name, f"{what} by queue and state; a node in two queues counts in both.",
                                labels=["cluster", "queue", "state"])
        for (queue, state), n in sorted(data.items()):
            fam.add_metric([c, queue, state], n)
        yield fam


def ledger_families(cluster: str, ledger: FinishedJobLedger, queues: Iterable[str] = ()) -> Iterator[Metric]:
    """Finished-job counters and the queue-wait histogram; both persist across restarts.

    Every (outcome, cause) pair of every known queue (`queues` from the live snapshot, plus those
    with counts) is exported, 0 until its first job, so rate() and increase() see the first one.
    """
    fin = CounterMetricFamily("hpc_scheduler_jobs_finished",
                              "Job runs that reached a terminal state, each counted once, by outcome and "
                              "who is to blame (cause: user, system, none).",
                              labels=["cluster", "queue", "outcome", "cause"])
    counts = dict(ledger.finished)
    for queue in set(queues) | {q for q, _, _ in counts}:
        for outcome, cause in NEUTRAL_PAIRS:
            counts.setdefault((queue, outcome, cause), 0)
    for (queue, outcome, cause), n in sorted(counts.items()):
        fin.add_metric([cluster, queue, outcome, cause], n)
    yield fin
    yield histogram_family("hpc_scheduler_queue_wait_seconds",
                           "Queue wait of each job run (start - eligible), observed once per run when it "
                           "starts, or from accounting when it finished unseen.", cluster, ledger.wait)


def known_queues(snap: object) -> set[str]:
    """Queues the live snapshot knows (from jobs and capacity); empty before the first refresh."""
    queue = getattr(snap, "queue", None)
    if queue is None:
        return set()
    return ({q for q, _ in queue.jobs} | {q for q, _ in queue.nodes}) - {""}


def lag_family(cluster: str, watermark: float | None) -> GaugeMetricFamily:
    """How far behind finished-job counting is; built per scrape because it grows with the clock."""
    lag = GaugeMetricFamily("hpc_scheduler_accounting_lag_seconds",
                            "Seconds between now and the accounting watermark: finished jobs newer than "
                            "this may not be counted yet (grows while accounting is unreachable).",
                            labels=["cluster"])
    if watermark is not None:
        lag.add_metric([cluster], max(0.0, time.time() - watermark))
    return lag


def histogram_family(name: str, doc: str, cluster: str, hists: dict[str, Histogram],
                     gauge: bool = False) -> Metric:
    """A histogram by queue. With `gauge` it is a distribution of now: it may go down, so query it
    with histogram_quantile() directly, never through rate()."""
    del gauge  # same exposition; the flag documents intent at the call site
    fam = HistogramMetricFamily(name, doc, labels=["cluster", "queue"])
    for queue, h in sorted(hists.items()):
        fam.add_metric([cluster, queue], h.cumulative(), h.sum)
    return fam
