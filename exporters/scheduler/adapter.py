"""The scheduler adapter base: what Slurm and Flux share, so each adapter only implements its reads.

The base owns the seven shared options, the finished-job ledger and its state file, the snapshot
source and the scrape-side cache. One refresh:

1. loads the ledger once (no usable state: counting starts now, said in one log line);
2. `read_finished(start, end)`: the jobs that ended in the accounting window and how far
   accounting is complete; the ledger counts the new runs and the state is saved;
3. `read_live(now)`: the live queue and capacity, the running runs (their queue wait is
   observed at start) and the adapter's own extras; the state is saved again.

Accounting is committed before the live read, so it survives a scheduler controller outage (a
failing live read fails the refresh, and `hpc_scheduler_up` goes 0). An unreachable accounting
(`AccountingUnavailable`) changes nothing and is caught up later. The state is saved after every
change and only saved totals are served: a failed save counts in
`hpcwatch_state_save_failures_total` and the served counters stay at the last saved ones, so
they never go backwards, not even across a crash; finished-job events go out after the save too.
The ledger lock is held only while the ledger changes, never while the state file is written, and
the scrape path takes no lock at all: it reads the published (totals, save failures) pair.
"""

from __future__ import annotations

import dataclasses
import logging
import threading
import time
from collections.abc import Iterable, Iterator
from typing import Any, ClassVar

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.events import publish_finished_job
from hpcwatch.exporters.families import counter
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.registry import Collector, CollectorContext, Option
from hpcwatch.exporters.scheduler.families import FAMILIES as NEUTRAL_FAMILIES
from hpcwatch.exporters.scheduler.families import (
    known_queues,
    lag_family,
    ledger_families,
    snapshot_families,
    up_family,
)
from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger, StateFile, StateFileError, load_ledger
from hpcwatch.exporters.scheduler.model import (
    DEFAULT_TURNAROUND_BUCKETS,
    DEFAULT_WAIT_BUCKETS,
    FinishedJob,
    QueueSnapshot,
)
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.scheduler")

# The neutral families every adapter exports, and the health of its state file.
FAMILIES = NEUTRAL_FAMILIES + [
    counter("hpcwatch_state_save_failures_total",
            "State file saves that failed; meanwhile the collector serves the counters it last saved.", "collector"),
]


def shared_options(name: str, cluster_default: str, cluster_help: str) -> tuple[Option, ...]:
    """The seven options every scheduler adapter has, with its own state file and cluster default."""
    return (
        Option("refresh-interval", 30.0, "time between refreshes (each command runs once per refresh)",
               type=opt.duration),
        Option("timeout", 20.0, "how long each scheduler command may take", type=opt.duration),
        Option("state-file", f"/var/lib/hpcwatch/{name}-state.json",
               "where the accounting watermark, counted jobs and counter totals persist across restarts"),
        Option("cluster", cluster_default, cluster_help),
        Option("wait-buckets", DEFAULT_WAIT_BUCKETS, "queue-wait histogram bucket edges (seconds or durations)",
               type=opt.buckets),
        Option("turnaround-buckets", DEFAULT_TURNAROUND_BUCKETS, "turnaround (submit to end of a successful run) "
               "histogram bucket edges (seconds or durations); time-to-result thresholds sit on them",
               type=opt.buckets),
        Option("accounting-overlap", 600.0, "how far each accounting window reaches back before the watermark, "
               "to catch records that arrive late (it only de-duplicates: jobs that ended before the agent "
               "started counting are never counted)", type=opt.duration),
    )


class AccountingUnavailable(RuntimeError):
    """Accounting could not be read this refresh; finished jobs are caught up when it answers."""


@dataclasses.dataclass(frozen=True)
class FinishedRead:
    """What one accounting read returned: the runs that ended in the window, and the time up to
    which accounting is known complete (the watermark may advance to it; None: keep it open)."""

    jobs: list[FinishedJob]
    complete_until: float | None


@dataclasses.dataclass(frozen=True)
class RunningJob:
    """A run seen running: its key, queue, when it started and how long it waited (start - eligible)."""

    key: str
    queue: str
    started: float
    wait: float


@dataclasses.dataclass(frozen=True)
class LiveRead:
    """What one live read returned: the queue and capacity, the running runs, the adapter's extras."""

    queue: QueueSnapshot
    running: list[RunningJob]
    extra: Any = None


@dataclasses.dataclass(frozen=True)
class SchedulerSnapshot:
    """What one refresh published for the scrape path (immutable once published)."""

    queue: QueueSnapshot
    accounting_up: bool
    extra: Any
    taken_at: float


class SchedulerCollector(Collector):
    """Base of the scheduler adapters: subclasses set the Collector attributes (with
    `shared_options(...)` among their options) and implement `read_finished`, `read_live`
    and, for their own families, `extra_families`."""

    kind = "snapshot"
    default_agents = frozenset({"cluster"})
    families = FAMILIES
    default_cluster: ClassVar[str] = "unknown"  # the cluster label while none is known

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.cluster: str = ctx.option("cluster")
        self.buckets: tuple[float, ...] = ctx.option("wait-buckets")
        self.timeout: float = ctx.option("timeout")
        self.state = StateFile(ctx.option("state-file"))
        self.ledger = FinishedJobLedger(self.buckets, overlap=ctx.option("accounting-overlap"),
                                        turnaround_buckets=ctx.option("turnaround-buckets"))
        self.save_failures = 0
        self.summaries: Any = None  # an adapter's per-job summary writer (accounting.agent), fed by the outbox
        self._loaded = False
        self._unpublished: list[FinishedJob] = []
        self._lock = threading.Lock()         # the ledger, while it changes
        self._save_lock = threading.Lock()    # one save at a time, published in the order taken
        # What scrapes serve: the last saved totals and the save failures, swapped as one object.
        self._served: tuple[FinishedJobLedger | None, int] = (None, 0)
        self._cache: tuple[tuple, list[Metric]] = ((), [])
        self.source: SnapshotSource[SchedulerSnapshot] = SnapshotSource(
            self.name, self.refresh, ctx.option("refresh-interval"))

    # ------------------------------------------------------------ what an adapter implements
    def read_finished(self, start: float, end: float) -> FinishedRead:
        """The runs that ended in [start, end]; raise AccountingUnavailable when accounting is unreachable."""
        raise NotImplementedError

    def read_live(self, now: float) -> LiveRead:
        """The live queue, capacity and running runs; raise when the scheduler cannot be reached."""
        raise NotImplementedError

    def extra_families(self, cluster: str, snap: SchedulerSnapshot) -> Iterable[Metric]:
        """The adapter's own families (hpc_slurm_*, hpc_flux_*) from a published snapshot."""
        return ()

    # ------------------------------------------------------------ refresh (background thread)
    def sources(self) -> list[SnapshotSource]:
        return [self.source]

    def refresh(self) -> SchedulerSnapshot:
        """One refresh: accounting first (it survives a controller outage), then the live queue."""
        now = time.time()
        self._load(now)
        accounting_up = self._count_finished(now)
        self._summarise()
        live = self.read_live(now)
        with self._lock:
            for run in live.running:
                self.ledger.observe_start(run.key, run.queue, run.wait, now, run.started)
            self.ledger.prune_started(now)
        self._announce(self._persist())
        return SchedulerSnapshot(queue=live.queue, accounting_up=accounting_up, extra=live.extra, taken_at=now)

    def _load(self, now: float) -> None:
        if self._loaded:
            return
        with self._lock:
            why = load_ledger(self.ledger, self.state)
            if why is not None:
                self.ledger.start(now)
                log.info("collector=%s state file %s: %s; counting finished jobs from now on, counters begin at 0",
                         self.name, self.state.path, why)
            self._loaded = True

    def _count_finished(self, now: float) -> bool:
        """Count the runs that ended in [watermark - overlap, now]; True when accounting answered."""
        with self._lock:
            start, end = self.ledger.window(now)
        try:
            read = self.read_finished(start, end)
        except AccountingUnavailable as exc:
            log_once(log, f"{self.name}:accounting", "collector=%s accounting unavailable, finished jobs will "
                     "be caught up when it answers: %s", self.name, exc)
            return False
        with self._lock:
            self._unpublished.extend(self.ledger.count(read.jobs))
            if read.complete_until is not None:
                self.ledger.advance(min(end, read.complete_until))
        self._announce(self._persist())
        return True

    def _persist(self) -> list[FinishedJob]:
        """Save the ledger, then serve its totals; returns the runs now safe to announce.

        The document is taken under the ledger lock and written after it is released. A failed save
        keeps serving the last saved totals, so a served counter never goes backwards."""
        with self._save_lock:
            with self._lock:
                text = self.state.encode(self.ledger.to_dict())
                view = self.ledger.view()
                pending = len(self._unpublished)
            try:
                self.state.write(text)
            except StateFileError as exc:
                self.save_failures += 1
                self._served = (self._served[0], self.save_failures)
                log_once(log, f"{self.name}:state-save", "collector=%s %s; serving the last saved counters "
                         "until a save succeeds", self.name, exc)
                return []
            with self._lock:
                new = self._unpublished[:pending]
                del self._unpublished[:pending]
            self._served = (view, self.save_failures)
            return new

    def _summarise(self) -> None:
        """Hand the saved outbox to the summary writer (outside the lock: it runs sacct and queries), then
        ack what it appended and save again."""
        if self.summaries is None:
            return
        with self._lock:
            outbox = list((self.ledger.outbox or {}).values())
        if not outbox:
            return
        done = self.summaries.run(outbox)
        if done:
            with self._lock:
                self.ledger.ack(done)
            self._announce(self._persist())

    @staticmethod
    def _announce(jobs: list[FinishedJob]) -> None:
        for job in jobs:  # after the state is saved, so subscribers see each job once
            publish_finished_job(job)

    # ------------------------------------------------------------ scrape path
    def collect(self) -> Iterator[Metric]:
        snap = self.source.value
        cluster = self.cluster or self.default_cluster
        published, failures = self._served
        yield up_family(cluster, self.source.ok)
        if self.summaries is not None:
            yield from self.summaries.families()
        if published is not None:
            yield lag_family(cluster, published.watermark)
        saves = FAMILIES.new("hpcwatch_state_save_failures_total")
        saves.add_metric([self.name], failures)
        yield saves
        # Families change only when a refresh publishes; concurrent scrapes reuse the same objects.
        key = (snap, published, cluster)  # the objects themselves: ids could be reused
        cached_key, families = self._cache
        if len(cached_key) != len(key) or any(a is not b for a, b in zip(cached_key, key)):
            families = []
            if published is not None:
                families.extend(ledger_families(cluster, published, known_queues(snap)))
            if snap is not None:
                families.extend(snapshot_families(snap.queue))
                families.extend(self.extra_families(cluster, snap))
            self._cache = (key, families)
        yield from families

    def close(self) -> None:
        self.source.stop()
