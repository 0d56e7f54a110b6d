"""The `flux` collector: `flux jobs` and the scheduler's resource sets once per refresh into the neutral model.

One `flux jobs -A --json --since=<window>` call returns the live queue and every job that became
inactive in the accounting window, so live and finished jobs come from the same answer. Flux's
job-list is in-memory and synchronous, so the watermark advances on every successful call.
Capacity comes from exporters.flux.resources (one state per node, core and GPU); a job seen held
has its eventlog read once when the hold ends, so held time never counts as queue wait. The shared
adapter base (exporters/scheduler/adapter.py) owns the ledger, state and cache.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
from collections.abc import Iterator, Mapping

from hpcwatch.exporters import labels
from hpcwatch.exporters.command import CommandError
from hpcwatch.exporters.families import gauge
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.flux import parse, resources
from hpcwatch.exporters.flux.queue import build_flux_queue
from hpcwatch.exporters.flux.reader import FluxCommands
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
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.flux")

FAMILIES = SchedulerCollector.families + [
    gauge("hpc_flux_pending_jobs",
          "Pending Flux jobs by queue and job state (DEPEND, PRIORITY, SCHED: only SCHED jobs are eligible to "
          "start; held ones, urgency 0, are counted but not waiting).", "cluster", "queue", "state"),
]


@dataclasses.dataclass(frozen=True)
class FluxExtras:
    """What one refresh read beyond the neutral model: pending jobs by (queue, DEPEND|PRIORITY|SCHED)."""

    pending_by_state: dict[tuple[str, str], int]


@register
class FluxCollector(SchedulerCollector):
    name = "flux"
    help = "Flux queue, resources and finished jobs (flux jobs, flux resource R/status, flux config)"
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
        self.commands = FluxCommands(self.flux, self.env, self.timeout)
        self._jobs: list[parse.FluxJob] | None = None  # this refresh's `flux jobs` answer (None: it failed)
        self._held: set[str] = set()              # jobs seen held (urgency 0) and not yet released
        self._released: dict[str, float] = {}     # job id -> when its hold ended (from its eventlog)

    def available(self) -> str | None:
        if os.sep in self.flux:
            return None if os.access(self.flux, os.X_OK) else f"{self.flux} not found or not executable"
        return None if shutil.which(self.flux) else f"{self.flux} not found on PATH (no Flux here)"

    # ------------------------------------------------------------ reads (background thread)
    def read_finished(self, start: float, end: float) -> FinishedRead:
        """One `flux jobs` over the window: its inactive jobs are the finished runs, the rest the live queue."""
        since = max(1, int(end - start) + 1)
        try:
            text = self.commands.jobs(since)
        except CommandError as exc:
            self._jobs = None
            raise AccountingUnavailable(f"flux jobs failed: {exc}") from exc
        jobs, bad = parse.parse_flux_jobs(text)
        record_parse_error("flux_jobs", bad)
        self._jobs = jobs
        self._track_holds(jobs)
        runs, unknown = parse.flux_to_finished(jobs, self.cluster, self._released)
        record_parse_error("flux_jobs", unknown)
        return FinishedRead(runs, end)  # job-list is synchronous: everything that ended is in the answer

    def read_live(self, now: float) -> LiveRead:
        """The jobs `read_finished` fetched, and the resource sets; raises when flux did not answer."""
        if self._jobs is None:
            raise CommandError("flux jobs did not answer this refresh")
        texts = self.commands.resources()
        queues = resources.parse_queues(texts.queues)
        status, bad = resources.parse_status(texts.status)
        record_parse_error("flux_resource", bad)
        cap = resources.capacity(resources.parse_R(texts.all, "flux resource R -s all"),
                                 resources.parse_R(texts.allocated, "flux resource R -s allocated"),
                                 resources.parse_R(texts.down, "flux resource R -s down"), status, queues)
        snap, pending, running = build_flux_queue(self.cluster, self._jobs, cap, [q.name for q in queues], now,
                                                  self.buckets, self._released)
        self._forget_released(self._jobs)
        return LiveRead(snap, [RunningJob(*r) for r in running], FluxExtras(pending))

    def _track_holds(self, jobs: list[parse.FluxJob]) -> None:
        """Remember jobs seen held; when one is no longer held, read when the hold ended (once)."""
        for j in jobs:
            if j.held:
                self._held.add(j.id)
            elif j.id in self._held:
                self._held.discard(j.id)
                try:
                    when = parse.release_time(self.commands.eventlog(j.id))
                except (CommandError, parse.FluxParseError) as exc:
                    log_once(log, "eventlog", "job %s: hold release time unknown, its wait counts from "
                             "t_sched: %s", j.id, exc)
                    continue
                if when is not None:
                    self._released[j.id] = when

    def _forget_released(self, jobs: list[parse.FluxJob]) -> None:
        """Release times are needed until the job's run is counted; drop those of jobs gone from the window."""
        seen = {j.id for j in jobs}
        self._held &= seen
        self._released = {k: v for k, v in self._released.items() if k in seen}

    # ------------------------------------------------------------ scrape path
    def extra_families(self, cluster: str, snap: SchedulerSnapshot) -> Iterator[Metric]:
        fam = FAMILIES.new("hpc_flux_pending_jobs")
        for (q, s), n in sorted(snap.extra.pending_by_state.items()):
            fam.add_metric([cluster, q, s], n)
        yield fam
