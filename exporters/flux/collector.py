"""The `flux` collector: `flux jobs` and `flux resource list` once per refresh into the neutral model.

One `flux jobs -A --json --since=<window>` call returns the live queue and every job that became
inactive in the accounting window, so live and finished jobs come from the same answer. Flux's
job-list is in-memory and synchronous, so the watermark advances on every successful call.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping

from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.events import publish_finished_job
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.flux import parse
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.scheduler.families import (
    known_queues,
    lag_family,
    ledger_families,
    snapshot_families,
    up_family,
)
from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger, StateFile, StateFileError, load_ledger
from hpcwatch.exporters.scheduler.model import (
    DEFAULT_WAIT_BUCKETS,
    Histogram,
    QueueSnapshot,
    cap_label,
    parse_buckets,
    run_key,
)
from hpcwatch.exporters.scheduler.outcomes import flux_live_state
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.flux")

DEFAULT_BUCKETS_TEXT = ",".join(str(int(b)) for b in DEFAULT_WAIT_BUCKETS)
RESOURCE_STATES = {"free": "idle", "allocated": "allocated", "down": "down"}


@dataclasses.dataclass
class FluxSnapshot:
    queue: QueueSnapshot
    pending_by_state: dict[tuple[str, str], int]   # (queue, DEPEND|PRIORITY|SCHED)
    taken_at: float


def build_flux_queue(cluster: str, jobs: list[parse.FluxJob], resources: list[parse.FluxResources], now: float,
                     buckets: tuple[float, ...]) -> tuple[QueueSnapshot, dict[tuple[str, str], int],
                                                      list[tuple[str, str, float]]]:
    """Aggregate live jobs and resources -> (snapshot, pending by Flux state, running runs with their wait)."""
    snap = QueueSnapshot(cluster=cluster)
    pending: dict[tuple[str, str], int] = {}
    running: list[tuple[str, str, float]] = []
    for j in jobs:
        state = flux_live_state(j.state)
        if state is None:
            continue
        q = cap_label(j.queue)
        snap.add_job(q, state)
        if state == "pending":
            pending[(q, j.state)] = pending.get((q, j.state), 0) + 1
            if j.state == "SCHED" and j.t_sched is not None and j.t_sched <= now:
                hist = snap.pending_wait.setdefault(q, Histogram(buckets))
                hist.observe(now - j.t_sched)
        elif j.t_run is not None and j.eligible is not None:
            running.append((run_key(j.id, j.t_submit, j.t_run), q, j.t_run - j.eligible))
    for r in resources:
        state = RESOURCE_STATES.get(r.state, "other")
        for queue in r.queues:
            q = cap_label(queue)
            for target, n in ((snap.nodes, r.nnodes), (snap.cpus, r.ncores), (snap.gpus, r.ngpus)):
                target[(q, state)] = target.get((q, state), 0) + n
    return snap, pending, running


@register
class FluxCollector(Collector):
    name = "flux"
    help = "Flux queue, resources and finished jobs (flux jobs, flux resource list)"
    kind = "snapshot"
    default_agents = frozenset({"cluster"})
    options = (
        Option("command", "flux", "the flux command (a name on PATH or a path)"),
        Option("uri", "", "FLUX_URI of the instance to watch (empty: the enclosing/system instance)"),
        Option("refresh-interval", 30.0, "seconds between refreshes", type=float),
        Option("timeout", 20.0, "seconds each flux command may take", type=float),
        Option("state-file", "/var/lib/hpcwatch/flux-state.json",
               "where the watermark, counted jobs and counter totals persist across restarts"),
        Option("cluster", "flux", "cluster label"),
        Option("wait-buckets", DEFAULT_BUCKETS_TEXT, "queue-wait histogram bucket edges, seconds"),
        Option("accounting-overlap", 600.0, "seconds each window reaches back before the watermark", type=float),
    )

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """`flux jobs --json` and `flux resource list` fixtures (Flux is not packaged for Debian 12)."""
        import tempfile

        fix = os.path.join(repo, "tests", "fixtures", "flux")
        bindir = tempfile.mkdtemp(prefix="hpcwatch-doc-flux-")
        path = os.path.join(bindir, "flux")
        with open(path, "w") as fh:
            fh.write(f'#!/bin/sh\ncase "$1" in jobs) cat "{fix}/flux-jobs-json-0.60.json";; '
                     f'resource) cat "{fix}/flux-resource-list.txt";; esac\n')
        os.chmod(path, 0o755)
        opts = {o.name: o.default for o in cls.options}
        opts.update({"command": path, "accounting-overlap": 1e10,
                     "state-file": os.path.join(bindir, "state.json")})
        return [cls(CollectorContext(options=opts, agent="cluster"))]

    def __init__(self, ctx: CollectorContext, env: Mapping[str, str] | None = None) -> None:
        super().__init__(ctx)
        o = ctx.options
        self.flux = o.get("command") or "flux"
        self.env = dict(env or {})
        if o.get("uri"):
            self.env["FLUX_URI"] = o["uri"]
        self.timeout = float(o.get("timeout", 20.0))
        self.cluster = cap_label(o.get("cluster") or "flux")
        self.buckets = parse_buckets(o.get("wait-buckets") or DEFAULT_BUCKETS_TEXT)
        self.state = StateFile(o.get("state-file") or "/var/lib/hpcwatch/flux-state.json")
        self.ledger = FinishedJobLedger(self.buckets, overlap=float(o.get("accounting-overlap", 600.0)))
        self._loaded = False
        self._published: FinishedJobLedger | None = None
        self._lock = threading.Lock()
        self._cache: tuple[tuple, list[Metric]] = ((), [])
        self.source: SnapshotSource[FluxSnapshot] = SnapshotSource(
            "flux", self.refresh, float(o.get("refresh-interval", 30.0)))

    def available(self) -> str | None:
        if os.sep in self.flux:
            return None if os.access(self.flux, os.X_OK) else f"{self.flux} not found or not executable"
        return None if shutil.which(self.flux) else f"{self.flux} not found on PATH (no Flux here)"

    def sources(self) -> list[SnapshotSource]:
        return [self.source]

    def _run(self, *args: str) -> str:
        return run_command([self.flux, *args], timeout=self.timeout, env=self.env)

    def refresh(self) -> FluxSnapshot:
        now = time.time()
        if not self._loaded:
            load_ledger(self.ledger, self.state)
            self._loaded = True
        with self._lock:
            start, _ = self.ledger.window(now)
        since = max(1, int(now - start) + 1)
        jobs, bad = parse.parse_flux_jobs(self._run("jobs", "-A", "--json", "--count=0", f"--since=-{since}s"))
        record_parse_error("flux_jobs", bad)
        resources, bad = parse.parse_resource_list(self._run("resource", "list", "--no-header",
                                                             f"--format={parse.RESOURCE_FORMAT}"))
        record_parse_error("flux_resource", bad)
        runs, unknown = parse.flux_to_finished(jobs, self.cluster)
        record_parse_error("flux_jobs", unknown)
        snap, pending, running = build_flux_queue(self.cluster, jobs, resources, now, self.buckets)
        with self._lock:
            for key, q, wait in running:
                self.ledger.observe_start(key, q, wait, now)
            new = self.ledger.count(runs)
            self.ledger.advance(now)
            self.ledger.prune_started(now)
            try:
                self.state.save(self.ledger.to_dict())
            except StateFileError as exc:
                log_once(log, "state-save", "%s", exc)
            self._published = self.ledger.view()
        for job in new:
            publish_finished_job(job)
        return FluxSnapshot(queue=snap, pending_by_state=pending, taken_at=now)

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            published = self._published
        snap = self.source.value
        yield up_family(self.cluster, self.source.ok)
        if published is not None:
            yield lag_family(self.cluster, published.watermark)
        key = (snap, published)   # the objects themselves: ids could be reused
        cached_key, families = self._cache
        if len(cached_key) != len(key) or any(a is not b for a, b in zip(cached_key, key)):
            families = []
            if published is not None:
                families.extend(ledger_families(self.cluster, published, known_queues(snap)))
            if snap is not None:
                families.extend(snapshot_families(snap.queue))
                families.append(self._pending_family(snap))
            self._cache = (key, families)
        yield from families

    def _pending_family(self, snap: FluxSnapshot) -> GaugeMetricFamily:
        fam = GaugeMetricFamily("hpc_flux_pending_jobs", "Pending Flux jobs by queue and job state "
                                "(DEPEND, PRIORITY, SCHED: only SCHED jobs are eligible to start).",
                                labels=["cluster", "queue", "state"])
        for (q, s), n in sorted(snap.pending_by_state.items()):
            fam.add_metric([self.cluster, q, s], n)
        return fam

    def close(self) -> None:
        self.source.stop()
