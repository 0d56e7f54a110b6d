"""The `flux` collector: `flux jobs` and `flux resource list` once per refresh into the neutral model.

One `flux jobs -A --json --since=<window>` call returns the live queue and every job that became
inactive in the accounting window, so live and finished jobs come from the same answer. Flux's
job-list is in-memory and synchronous, so the watermark advances on every successful call. The
shared adapter base (exporters/scheduler/adapter.py) owns the ledger, state and cache.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
from collections.abc import Iterator, Mapping

from hpcwatch.exporters import labels
from hpcwatch.exporters.command import CommandError, run_command
from hpcwatch.exporters.families import gauge
from hpcwatch.exporters.flux import parse
from hpcwatch.exporters.registry import CollectorContext, Option, register
from hpcwatch.exporters.scheduler.adapter import (
    AccountingUnavailable,
    FinishedRead,
    LiveRead,
    RunningJob,
    SchedulerCollector,
    SchedulerSnapshot,
    shared_options,
)
from hpcwatch.exporters.scheduler.model import Histogram, QueueSnapshot, run_key
from hpcwatch.exporters.scheduler.outcomes import flux_live_state
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

FAMILIES = SchedulerCollector.families + [
    gauge("hpc_flux_pending_jobs",
          "Pending Flux jobs by queue and job state (DEPEND, PRIORITY, SCHED: only SCHED jobs are eligible to "
          "start).", "cluster", "queue", "state"),
]

RESOURCE_STATES = {"free": "idle", "allocated": "allocated", "down": "down"}


@dataclasses.dataclass(frozen=True)
class FluxExtras:
    """What one refresh read beyond the neutral model: pending jobs by (queue, DEPEND|PRIORITY|SCHED)."""

    pending_by_state: dict[tuple[str, str], int]


def build_flux_queue(cluster: str, jobs: list[parse.FluxJob], resources: list[parse.FluxResources], now: float,
                     buckets: tuple[float, ...]) -> tuple[QueueSnapshot, dict[tuple[str, str], int],
                                                      list[RunningJob]]:
    """Aggregate live jobs and resources -> (snapshot, pending by Flux state, running runs with their wait)."""
    snap = QueueSnapshot(cluster=cluster)
    pending: dict[tuple[str, str], int] = {}
    running: list[RunningJob] = []
    for j in jobs:
        state = flux_live_state(j.state)
        if state is None:
            continue
        q = labels.value(j.queue)
        snap.add_job(q, state)
        if state == "pending":
            pending[(q, j.state)] = pending.get((q, j.state), 0) + 1
            if j.state == "SCHED" and j.t_sched is not None and j.t_sched <= now:
                hist = snap.pending_wait.setdefault(q, Histogram(buckets))
                hist.observe(now - j.t_sched)
        elif j.t_run is not None and j.eligible is not None:
            running.append(RunningJob(run_key(j.id, j.t_submit, j.t_run), q, j.t_run, j.t_run - j.eligible))
    for r in resources:
        state = RESOURCE_STATES.get(r.state, "other")
        for queue in r.queues:
            q = labels.value(queue)
            for target, n in ((snap.nodes, r.nnodes), (snap.cpus, r.ncores), (snap.gpus, r.ngpus)):
                target[(q, state)] = target.get((q, state), 0) + n
    return snap, pending, running


@register
class FluxCollector(SchedulerCollector):
    name = "flux"
    help = "Flux queue, resources and finished jobs (flux jobs, flux resource list)"
    families = FAMILIES
    options = (
        Option("command", "flux", "the flux command (a name on PATH or a path)"),
        Option("uri", "", "FLUX_URI of the instance to watch (empty: the enclosing/system instance)"),
        *shared_options("flux", "flux", "cluster label"),
    )

    def __init__(self, ctx: CollectorContext, env: Mapping[str, str] | None = None) -> None:
        super().__init__(ctx)
        self.flux = ctx.option("command")
        self.env = dict(env or {})
        if ctx.option("uri"):
            self.env["FLUX_URI"] = ctx.option("uri")
        self.cluster = labels.value(self.cluster)
        self._jobs: list[parse.FluxJob] | None = None  # this refresh's `flux jobs` answer (None: it failed)

    def available(self) -> str | None:
        if os.sep in self.flux:
            return None if os.access(self.flux, os.X_OK) else f"{self.flux} not found or not executable"
        return None if shutil.which(self.flux) else f"{self.flux} not found on PATH (no Flux here)"

    def _run(self, *args: str) -> str:
        return run_command([self.flux, *args], timeout=self.timeout, env=self.env)

    # ------------------------------------------------------------ reads (background thread)
    def read_finished(self, start: float, end: float) -> FinishedRead:
        """One `flux jobs` over the window: its inactive jobs are the finished runs, the rest the live queue."""
        since = max(1, int(end - start) + 1)
        try:
            text = self._run("jobs", "-A", "--json", "--count=0", f"--since=-{since}s")
        except CommandError as exc:
            self._jobs = None
            raise AccountingUnavailable(f"flux jobs failed: {exc}") from exc
        jobs, bad = parse.parse_flux_jobs(text)
        record_parse_error("flux_jobs", bad)
        self._jobs = jobs
        runs, unknown = parse.flux_to_finished(jobs, self.cluster)
        record_parse_error("flux_jobs", unknown)
        return FinishedRead(runs, end)  # job-list is synchronous: everything that ended is in the answer

    def read_live(self, now: float) -> LiveRead:
        """The jobs `read_finished` fetched, and `flux resource list`; raises when flux did not answer."""
        if self._jobs is None:
            raise CommandError("flux jobs did not answer this refresh")
        resources, bad = parse.parse_resource_list(self._run("resource", "list", "--no-header",
                                                             f"--format={parse.RESOURCE_FORMAT}"))
        record_parse_error("flux_resource", bad)
        snap, pending, running = build_flux_queue(self.cluster, self._jobs, resources, now, self.buckets)
        return LiveRead(snap, running, FluxExtras(pending))

    # ------------------------------------------------------------ scrape path
    def extra_families(self, cluster: str, snap: SchedulerSnapshot) -> Iterator[Metric]:
        fam = FAMILIES.new("hpc_flux_pending_jobs")
        for (q, s), n in sorted(snap.extra.pending_by_state.items()):
            fam.add_metric([cluster, q, s], n)
        yield fam
