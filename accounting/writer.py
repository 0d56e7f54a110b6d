"""The summary writer of the cluster agent: finished jobs in, one summary each into the dataset.

Jobs come from the scheduler ledger's outbox: the ledger adds every job it counts to the outbox in
the same atomic save as the count, and removes it only after the writer has appended its summary.
A crash between the two repeats the job at the next start, and the dataset drops the repeat by its
key (cluster, job id, submit time): each job is summarised exactly once across restarts.

Per refresh the writer takes at most `limit` jobs whose end is at least `delay` seconds old (so the
node agents' last samples have reached Prometheus), reads their sacct detail with one batched call,
asks Prometheus in batches of `batch_size` jobs, prices them and appends them in one file per
partition. Without Prometheus (not configured, or failing) the summaries carry what sacct knows
and list what is missing; without sacct they carry what the counter knew.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Callable, Sequence

from hpcwatch.accounting.enrich import Enrichment, JobWindow, enrich
from hpcwatch.accounting.prices import PriceTable
from hpcwatch.accounting.record import JobSummary
from hpcwatch.accounting.sacct import RAW_ID, SacctDetail
from hpcwatch.accounting.store import StoreError, SummaryStore
from hpcwatch.accounting.summary import build_summary
from hpcwatch.exporters.command import CommandError
from hpcwatch.exporters.scheduler.model import FinishedJob
from hpcwatch.slo.history.prom import PrometheusClient

log = logging.getLogger("hpcwatch.accounting.writer")

DetailReader = Callable[[Sequence[str]], tuple[dict[str, SacctDetail], int]]


@dataclasses.dataclass
class WriterStats:
    """What the writer did, for its health families."""

    written: int = 0            # summaries appended (duplicates not counted)
    duplicates: int = 0         # jobs the dataset already held (a repeat after a crash)
    failures: int = 0           # refreshes whose append failed (the jobs stay in the outbox)
    enrich_errors: int = 0      # Prometheus queries that failed
    last_success: float | None = None


def raw_id(job: FinishedJob) -> str:
    """The JobIDRaw a run key starts with (what the batched sacct call asks for)."""
    return job.key.split("@", 1)[0]


class SummaryWriter:
    """Turns finished jobs into summaries in a SummaryStore; `write()` returns the keys it is done with."""

    def __init__(self, store: SummaryStore, details: DetailReader | None, prometheus: PrometheusClient | None,
                 prices: PriceTable | None, limit: int = 1000, batch_size: int = 100, delay: float = 60.0,
                 clock: Callable[[], float] = time.time) -> None:
        self.store = store
        self.details = details
        self.prometheus = prometheus
        self.prices = prices
        self.limit = limit
        self.batch_size = batch_size
        self.delay = delay
        self.clock = clock
        self.stats = WriterStats()

    def ready(self, jobs: Sequence[FinishedJob]) -> list[FinishedJob]:
        """The jobs due this refresh: ended at least `delay` ago, oldest first, `limit` at most."""
        now = self.clock()
        due = [j for j in jobs if (j.end if j.end is not None else 0.0) + self.delay <= now]
        due.sort(key=lambda j: (j.end or 0.0, j.key))
        return due[: self.limit]

    def write(self, jobs: Sequence[FinishedJob]) -> list[str]:
        """Summarise the due jobs; returns the run keys now in the dataset (ack them); raises StoreError
        when the append failed (nothing is acked then)."""
        due = self.ready(jobs)
        if not due:
            return []
        summaries = self.build(due)
        try:
            written = self.store.append(summaries)
        except StoreError:
            self.stats.failures += 1
            raise
        self.stats.written += written
        self.stats.duplicates += len(summaries) - written
        self.stats.last_success = self.clock()
        return [j.key for j in due]

    def build(self, jobs: Sequence[FinishedJob]) -> list[JobSummary]:
        """Summaries of `jobs` from one batched sacct call and batched Prometheus queries."""
        details: dict[str, SacctDetail] = {}
        sacct_error = None
        if self.details is not None:
            ids = [raw_id(j) for j in jobs if RAW_ID.match(raw_id(j))]
            try:
                details, _skipped = self.details(ids)
            except CommandError as exc:
                sacct_error = str(exc)
                log.warning("batched sacct for %d job summaries failed: %s", len(ids), exc)
        found, prom_error = self._enrich(jobs, details)
        now = self.clock()
        out = []
        for j in jobs:
            d = details.get(raw_id(j))
            s = build_summary(j.cluster, j.jobid, j, d, found.get(j.jobid), prom_error, self.prices, now)
            if d is None and sacct_error:
                s.note_missing("sacct", sacct_error[:200])
            out.append(s)
        return out

    def _enrich(self, jobs: Sequence[FinishedJob], details: dict[str, SacctDetail]
                ) -> tuple[dict[str, Enrichment], str | None]:
        if self.prometheus is None:
            return {}, "Prometheus not configured for the summary writer"
        by_cluster: dict[str, list[JobWindow]] = {}
        for j in jobs:
            if j.start is not None and j.end is not None:
                by_cluster.setdefault(j.cluster, []).append(JobWindow(j.jobid, j.start, j.end))
        found: dict[str, Enrichment] = {}
        errors: list[str] = []
        for cluster, ws in by_cluster.items():
            f, e = enrich(self.prometheus, ws, cluster, self.batch_size)
            found.update(f)
            errors += e
        if errors:
            self.stats.enrich_errors += len(errors)
            log.warning("Prometheus enrichment of %d jobs: %s", len(jobs), "; ".join(errors[:3]))
        return found, ("prometheus: " + errors[0][:200]) if errors else None
