"""The `slurm` collector: squeue/sinfo/sdiag/sacct once per refresh into the scheduler-neutral model.

One background SnapshotSource runs each command once per interval; scrapes only read what the last
refresh built. Finished jobs come from sacct windows driven by the ledger's watermark, which only
advances when sdiag says slurmctld has no accounting records queued for slurmdbd.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import shutil
import threading
import time
from collections.abc import Iterator, Mapping

from hpcwatch.accounting.agent import OPTIONS as SUMMARY_OPTIONS
from hpcwatch.accounting.agent import SummaryAgent
from hpcwatch.exporters.command import CommandError, run_command
from hpcwatch.exporters.events import publish_finished_job
from hpcwatch.exporters.files import log_once, read_text
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
from hpcwatch.exporters.scheduler.outcomes import slurm_live_state
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.slurm import parse
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.slurm")

COMMANDS = ("squeue", "sinfo", "sacct", "sdiag", "scontrol")
OTHER = "__other__"


@dataclasses.dataclass
class SlurmSnapshot:
    """What one refresh built for the scrape path (immutable once published)."""

    queue: QueueSnapshot
    pending_reasons: dict[tuple[str, str], int]
    users: dict[tuple[str, str], int]
    accounts: dict[tuple[str, str], int]
    sdiag: parse.SdiagStats
    fairshare: list[parse.FairShare]
    accounting_up: bool
    taken_at: float


class SlurmCommands:
    """The reader: runs the Slurm client commands with the pinned environment; one method per command."""

    def __init__(self, bin_dir: str = "", env: Mapping[str, str] | None = None, timeout: float = 20.0) -> None:
        self.bin_dir = bin_dir
        self.env = dict(env or {})
        self.timeout = timeout
        self.calls: dict[str, int] = {}

    def path(self, name: str) -> str | None:
        if self.bin_dir:
            p = os.path.join(self.bin_dir, name)
            return p if os.access(p, os.X_OK) else None
        return shutil.which(name)

    def run(self, name: str, *args: str) -> str:
        self.calls[name] = self.calls.get(name, 0) + 1
        return run_command([self.path(name) or name, *args], timeout=self.timeout, env=self.env)

    def squeue(self) -> str:
        return self.run("squeue", "--noheader", "--all", "--Format", parse.format_option(parse.SQUEUE_FIELDS))

    def sinfo(self) -> str:
        return self.run("sinfo", "--noheader", "--Node", "--all", "--Format",
                        parse.format_option(parse.SINFO_FIELDS))

    def sdiag(self) -> str:
        return self.run("sdiag")

    def sacct(self, start: float, end: float) -> str:
        return self.run("sacct", "--allusers", "--noheader", "--parsable2", "--allocations", "--duplicates",
                        "--state", ",".join(parse.SACCT_STATES),
                        "--starttime", parse.format_time(start), "--endtime", parse.format_time(end),
                        "--format", ",".join(parse.SACCT_FIELDS))

    def sacct_jobs(self, ids: list[str]) -> str:
        """The summary writer's one batched call: the given jobs with their steps (accounting.sacct)."""
        from hpcwatch.accounting.sacct import sacct_argv
        argv = sacct_argv(self.path("sacct") or "sacct", ids)
        self.calls["sacct"] = self.calls.get("sacct", 0) + 1
        return run_command(argv, timeout=self.timeout, env=self.env)

    def config(self) -> str:
        return self.run("scontrol", "show", "config")

    def sshare(self) -> str:
        return self.run("sshare", "--noheader", "--parsable2", "--all", "--format", "Account,User,FairShare")


def build_queue(cluster: str, jobs: list[parse.SqueueJob], now: float, buckets: tuple[float, ...],
                label_limit: int = 128) -> tuple[QueueSnapshot, dict[tuple[str, str], int],
                                                 list[tuple[str, str, float]]]:
    """Aggregate squeue lines -> (queue snapshot, pending jobs by (partition, reason), running runs).

    Running runs are (run key, queue, start - eligible) for the queue-wait observation at start.
    A job submitted to several partitions counts under the first one listed.
    """
    snap = QueueSnapshot(cluster=cluster)
    reasons: dict[tuple[str, str], int] = {}
    running: list[tuple[str, str, float]] = []
    for j in jobs:
        if j.het_component:
            continue
        state = slurm_live_state(j.state)
        if state is None:
            continue
        queue = cap_label(j.partition.split(",", 1)[0])
        n = j.count
        snap.add_job(queue, state, n)
        if state == "pending":
            key = (queue, cap_label(j.reason))
            reasons[key] = reasons.get(key, 0) + n
            if j.eligible is not None and j.eligible <= now:
                hist = snap.pending_wait.get(queue)
                if hist is None:
                    hist = snap.pending_wait[queue] = Histogram(buckets)
                hist.observe(now - j.eligible, n)
        elif state == "running" and j.start is not None:
            begin = j.eligible if j.eligible is not None else j.submit
            if begin is not None:
                running.append((run_key(j.jobid, j.submit, j.start), queue, j.start - begin))
    return snap, reasons, running


def add_capacity(snap: QueueSnapshot, nodes: list[parse.SinfoNode]) -> None:
    """Nodes, CPUs and GPUs by (partition, state) from `sinfo -N` lines."""
    for n in nodes:
        q = cap_label(n.partition)
        state = parse.node_state(n.state)
        snap.nodes[(q, state)] = snap.nodes.get((q, state), 0) + 1
        for st, v in (("allocated", n.cpus_alloc), ("idle", n.cpus_idle), ("other", n.cpus_other)):
            snap.cpus[(q, st)] = snap.cpus.get((q, st), 0) + v
        if n.gpus_total:
            usable = state not in ("down", "drain", "maint")
            split = (("allocated", n.gpus_used), ("idle", max(0, n.gpus_total - n.gpus_used) if usable else 0),
                     ("other", 0 if usable else max(0, n.gpus_total - n.gpus_used)))
            for st, v in split:
                snap.gpus[(q, st)] = snap.gpus.get((q, st), 0) + v


def capped_counts(items: list[tuple[str, str]], limit: int) -> dict[tuple[str, str], int]:
    """Count (name, state) pairs; the `limit` names with most jobs keep their own series, the rest sum to __other__."""
    per_name: dict[str, int] = {}
    for name, _ in items:
        per_name[name] = per_name.get(name, 0) + 1
    keep = set(sorted(per_name, key=lambda k: (-per_name[k], k))[:limit])
    out: dict[tuple[str, str], int] = {}
    for name, state in items:
        key = (cap_label(name) if name in keep else OTHER, state)
        out[key] = out.get(key, 0) + 1
    return out


# sdiag value -> (metric name, help, scale). Times in sdiag are microseconds.
SDIAG_GAUGES = (
    ("top:Server thread count", "hpc_slurm_server_threads", "slurmctld server threads in use.", 1),
    ("top:Agent queue size", "hpc_slurm_agent_queue_size", "Outgoing RPCs slurmctld has queued for nodes.", 1),
    ("top:Agent count", "hpc_slurm_agents", "slurmctld agents running.", 1),
    ("top:DBD Agent queue size", "hpc_slurm_dbd_agent_queue_size",
     "Accounting messages slurmctld has queued for slurmdbd (non-zero: accounting is behind).", 1),
    ("top:Jobs pending", "hpc_slurm_sdiag_jobs_pending", "Pending jobs as sdiag last counted them.", 1),
    ("top:Jobs running", "hpc_slurm_sdiag_jobs_running", "Running jobs as sdiag last counted them.", 1),
    ("main:Last cycle", "hpc_slurm_main_cycle_last_seconds", "Duration of the last main scheduling cycle.", 1e-6),
    ("main:Max cycle", "hpc_slurm_main_cycle_max_seconds", "Longest main scheduling cycle since the sdiag reset.",
     1e-6),
    ("main:Mean cycle", "hpc_slurm_main_cycle_mean_seconds", "Mean main scheduling cycle since the sdiag reset.",
     1e-6),
    ("main:Mean depth cycle", "hpc_slurm_main_cycle_depth_mean", "Mean jobs examined per main scheduling cycle.", 1),
    ("main:Last queue length", "hpc_slurm_main_queue_length", "Jobs in the queue at the last main cycle.", 1),
    ("backfill:Last cycle", "hpc_slurm_backfill_cycle_last_seconds", "Duration of the last backfill cycle.", 1e-6),
    ("backfill:Max cycle", "hpc_slurm_backfill_cycle_max_seconds", "Longest backfill cycle since the sdiag reset.",
     1e-6),
    ("backfill:Mean cycle", "hpc_slurm_backfill_cycle_mean_seconds", "Mean backfill cycle since the sdiag reset.",
     1e-6),
    ("backfill:Last depth cycle", "hpc_slurm_backfill_depth_last", "Jobs examined by the last backfill cycle.", 1),
    ("backfill:Depth Mean", "hpc_slurm_backfill_depth_mean", "Mean jobs examined per backfill cycle.", 1),
    ("backfill:Last queue length", "hpc_slurm_backfill_queue_length", "Jobs in the queue at the last backfill.", 1),
)
SDIAG_COUNTERS = (
    ("main:Total cycles", "hpc_slurm_main_cycles", "Main scheduling cycles since the sdiag reset.", 1),
    ("backfill:Total cycles", "hpc_slurm_backfill_cycles", "Backfill cycles since the sdiag reset.", 1),
    ("backfill:Total backfilled jobs (since last slurm start)", "hpc_slurm_backfilled_jobs",
     "Jobs started by backfill since slurmctld started.", 1),
)

DEFAULT_BUCKETS_TEXT = ",".join(str(int(b)) for b in DEFAULT_WAIT_BUCKETS)


SLURM_CONF_PATHS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/usr/local/etc/slurm.conf")


def cluster_from_conf(conf: str | None) -> str:
    """ClusterName from slurm.conf: the given file only, else the usual paths; "" when none is readable."""
    for path in [conf] if conf else SLURM_CONF_PATHS:
        text = read_text(path, limit=4 << 20)
        if text is not None:
            name = parse.cluster_name_from_slurm_conf(text)
            return cap_label(name) if name else ""
    return ""


@register
class SlurmCollector(Collector):
    name = "slurm"
    help = "Slurm queue, capacity, scheduler statistics and finished jobs (squeue, sinfo, sdiag, sacct)"
    kind = "snapshot"
    default_agents = frozenset({"cluster"})
    options = (
        Option("bin-dir", "", "directory holding squeue, sinfo, sacct, sdiag, scontrol (empty: search PATH)"),
        Option("conf", "", "SLURM_CONF for the client commands (empty: the commands' own default)"),
        Option("refresh-interval", 30.0, "seconds between refreshes (each command runs once per refresh)",
               type=float),
        Option("timeout", 20.0, "seconds each Slurm command may take", type=float),
        Option("state-file", "/var/lib/hpcwatch/slurm-state.json",
               "where the accounting watermark, counted jobs and counter totals persist across restarts"),
        Option("cluster", "", "cluster label (empty: ClusterName from `scontrol show config`)"),
        Option("wait-buckets", DEFAULT_BUCKETS_TEXT, "queue-wait histogram bucket edges, seconds"),
        Option("accounting-overlap", 600.0, "seconds each sacct window reaches back before the watermark",
               type=float),
        Option("per-user", False, "export job counts per user (capped by label-limit)", type=bool),
        Option("per-account", False, "export job counts per account (capped by label-limit)", type=bool),
        Option("fairshare", False, "export fairshare per account (and per user with per-user) from sshare",
               type=bool),
        Option("label-limit", 200, "most users/accounts with their own series; the rest sum to __other__",
               type=int),
        *SUMMARY_OPTIONS,
    )

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """Output captured from real Slurm 22.05 daemons (tests/fixtures/slurm), through stand-in commands."""
        import tempfile

        from hpcwatch.metricsdoc import stand_in_commands

        fix = os.path.join(repo, "tests", "fixtures", "slurm")
        bindir = stand_in_commands({
            "squeue": f"{fix}/squeue-22.05.txt", "sinfo": f"{fix}/sinfo-22.05.txt",
            "sdiag": f"{fix}/sdiag-22.05.txt", "sacct": f"{fix}/sacct-22.05.txt",
            "scontrol": f"{fix}/scontrol-show-config-22.05.txt"})
        opts = {o.name: o.default for o in cls.options}
        opts.update({"bin-dir": bindir, "accounting-overlap": 1e10,
                     "state-file": os.path.join(tempfile.mkdtemp(prefix="hpcwatch-doc-"), "state.json")})
        return [cls(CollectorContext(options=opts, agent="cluster"))]

    def __init__(self, ctx: CollectorContext, env: Mapping[str, str] | None = None) -> None:
        super().__init__(ctx)
        o = ctx.options
        full_env = dict(env or {})
        if o.get("conf"):
            full_env["SLURM_CONF"] = o["conf"]
        self.commands = SlurmCommands(o.get("bin-dir", ""), full_env, float(o.get("timeout", 20.0)))
        self.buckets = parse_buckets(o.get("wait-buckets") or DEFAULT_BUCKETS_TEXT)
        # The cluster label, known before the first refresh where slurm.conf is readable, so even a
        # slurmctld that is down from the start shows as hpc_scheduler_up{cluster="<name>"} 0.
        self.cluster = o.get("cluster") or cluster_from_conf(full_env.get("SLURM_CONF") or os.environ.get("SLURM_CONF"))
        self.per_user = bool(o.get("per-user"))
        self.per_account = bool(o.get("per-account"))
        self.fairshare = bool(o.get("fairshare"))
        self.label_limit = int(o.get("label-limit", 200))
        self.state = StateFile(o.get("state-file") or "/var/lib/hpcwatch/slurm-state.json")
        self.ledger = FinishedJobLedger(self.buckets, overlap=float(o.get("accounting-overlap", 600.0)))
        self._ledger_loaded = False
        self.summaries = SummaryAgent.from_options("slurm", o, self._summary_details)
        if self.summaries is not None:
            self.ledger.outbox = {}
        self._published: FinishedJobLedger | None = None
        self._lock = threading.Lock()
        self._cache: tuple[tuple, list[Metric]] = ((), [])
        self.source: SnapshotSource[SlurmSnapshot] = SnapshotSource(
            "slurm", self.refresh, float(o.get("refresh-interval", 30.0)))

    def available(self) -> str | None:
        missing = [c for c in ("squeue", "sinfo", "sacct", "sdiag") if self.commands.path(c) is None]
        if missing:
            where = self.commands.bin_dir or "PATH"
            return f"{', '.join(missing)} not found in {where} (no Slurm client here)"
        return None

    def sources(self) -> list[SnapshotSource]:
        return [self.source]

    # ------------------------------------------------------------ refresh (background thread)
    def refresh(self) -> SlurmSnapshot:
        """One refresh: accounting first (it survives a slurmctld outage), then the live queue."""
        now = time.time()
        if not self._ledger_loaded:
            load_ledger(self.ledger, self.state)
            self._ledger_loaded = True
        if not self.cluster:  # no readable slurm.conf: ask slurmctld
            cfg = parse.parse_scontrol_config(self.commands.config())
            self.cluster = cap_label(cfg.get("ClusterName") or "unknown")
        sdiag_err: Exception | None = None
        try:
            sdiag = parse.parse_sdiag(self.commands.sdiag())
        except (CommandError, parse.SlurmParseError) as exc:
            sdiag, sdiag_err = parse.SdiagStats(), exc
        accounting_up = self._refresh_accounting(now, sdiag if sdiag_err is None else None)
        if sdiag_err is not None:
            raise sdiag_err
        squeue_text = self.commands.squeue()
        sinfo_text = self.commands.sinfo()
        jobs, bad = parse.parse_squeue(squeue_text)
        record_parse_error("slurm_squeue", bad)
        nodes, bad = parse.parse_sinfo(sinfo_text)
        record_parse_error("slurm_sinfo", bad)
        queue, reasons, running = build_queue(self.cluster, jobs, now, self.buckets)
        add_capacity(queue, nodes)
        with self._lock:
            for key, q, wait in running:
                self.ledger.observe_start(key, q, wait, now)
            self.ledger.prune_started(now)
            self._persist()
        fairshare: list[parse.FairShare] = []
        if self.fairshare:
            try:
                fairshare, bad = parse.parse_sshare(self.commands.sshare())
                record_parse_error("slurm_sshare", bad)
            except CommandError as exc:
                log_once(log, "sshare", "sshare failed, fairshare not exported: %s", exc)
        live = [j for j in jobs if not j.het_component and slurm_live_state(j.state)]
        users = capped_counts([(j.user, slurm_live_state(j.state)) for j in live], self.label_limit) \
            if self.per_user else {}
        accounts = capped_counts([(j.account, slurm_live_state(j.state)) for j in live], self.label_limit) \
            if self.per_account else {}
        return SlurmSnapshot(queue=queue, pending_reasons=reasons, users=users, accounts=accounts, sdiag=sdiag,
                             fairshare=fairshare, accounting_up=accounting_up, taken_at=now)

    def _refresh_accounting(self, now: float, sdiag: parse.SdiagStats | None) -> bool:
        """Count the jobs that ended in [watermark - overlap, now]; True when sacct answered."""
        with self._lock:
            start, end = self.ledger.window(now)
        try:
            text = self.commands.sacct(start, end)
        except CommandError as exc:
            log_once(log, "sacct", "sacct failed, finished jobs will be caught up when it answers: %s", exc)
            with self._lock:
                self._persist()
            return False
        records, bad = parse.parse_sacct(text)
        runs, unknown = parse.sacct_to_finished(records, self.cluster)
        record_parse_error("slurm_sacct", bad + unknown)
        queued = sdiag.get("top:DBD Agent queue size") if sdiag is not None else None
        with self._lock:
            new = self.ledger.count(runs)
            # Only when slurmctld has nothing queued for slurmdbd is every job that ended before the
            # sdiag call in accounting; otherwise keep the window open so late records are caught.
            if queued == 0:
                self.ledger.advance(min(end, now))
            self._persist()
        for job in new:        # after the state is saved, so subscribers see each job once
            publish_finished_job(job)
        self._summarise()
        return True

    def _summary_details(self, ids):
        from hpcwatch.accounting.sacct import parse_summary_sacct
        details, bad = parse_summary_sacct(self.commands.sacct_jobs(list(ids)))
        record_parse_error("slurm_sacct_summary", bad)
        return details, bad

    def _summarise(self) -> None:
        """Hand the outbox to the summary writer (outside the lock: it runs sacct and queries), then ack."""
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
                self._persist()

    def _persist(self) -> None:
        """Save the ledger, then publish its totals for scrapes (caller holds the lock)."""
        try:
            self.state.save(self.ledger.to_dict())
        except StateFileError as exc:
            log_once(log, "state-save", "%s; counters will restart from the last saved state after a restart", exc)
        self._published = self.ledger.view()

    # ------------------------------------------------------------ scrape path
    def collect(self) -> Iterator[Metric]:
        snap = self.source.value
        cluster = self.cluster or "unknown"
        with self._lock:
            published = self._published
        yield up_family(cluster, self.source.ok)
        if self.summaries is not None:
            yield from self.summaries.families()
        if published is not None:
            yield lag_family(cluster, published.watermark)
        # Families change only when a refresh publishes; concurrent scrapes reuse the same objects.
        key = (snap, published, cluster)   # the objects themselves: ids could be reused
        cached_key, families = self._cache
        if len(cached_key) != len(key) or any(a is not b for a, b in zip(cached_key, key)):
            families = []
            if published is not None:
                families.extend(ledger_families(cluster, published, known_queues(snap)))
            if snap is not None:
                families.extend(snapshot_families(snap.queue))
                families.extend(self._slurm_families(cluster, snap))
            self._cache = (key, families)
        yield from families

    def _slurm_families(self, cluster: str, snap: SlurmSnapshot) -> Iterator[Metric]:
        acct = GaugeMetricFamily("hpc_slurm_accounting_up",
                                 "1 when the last sacct call answered (slurmdbd reachable).", labels=["cluster"])
        acct.add_metric([cluster], 1 if snap.accounting_up else 0)
        yield acct
        pend = GaugeMetricFamily("hpc_slurm_pending_jobs", "Pending jobs by partition and the reason Slurm gives.",
                                 labels=["cluster", "partition", "reason"])
        for (p, r), n in sorted(snap.pending_reasons.items()):
            pend.add_metric([cluster, p, r], n)
        yield pend
        for key, name, doc, scale in SDIAG_GAUGES:
            v = snap.sdiag.get(key)
            if v is not None:
                fam = GaugeMetricFamily(name, doc, labels=["cluster"])
                fam.add_metric([cluster], v * scale)
                yield fam
        for key, name, doc, scale in SDIAG_COUNTERS:
            v = snap.sdiag.get(key)
            if v is not None:
                fam = CounterMetricFamily(name, doc, labels=["cluster"])
                fam.add_metric([cluster], v * scale)
                yield fam
        calls = CounterMetricFamily("hpc_slurm_rpc_calls", "RPCs slurmctld served by message type (sdiag).",
                                    labels=["cluster", "type"])
        secs = CounterMetricFamily("hpc_slurm_rpc_time_seconds", "Time slurmctld spent serving RPCs by message "
                                   "type (sdiag).", labels=["cluster", "type"])
        for t, (n, total) in sorted(snap.sdiag.rpc_by_type.items()):
            calls.add_metric([cluster, cap_label(t)], n)
            secs.add_metric([cluster, cap_label(t)], total)
        yield calls
        yield secs
        if self.per_user:
            fam = GaugeMetricFamily("hpc_slurm_user_jobs", f"Jobs by user and state (at most {self.label_limit} "
                                    "users; the rest under __other__).", labels=["cluster", "user", "state"])
            for (u, s), n in sorted(snap.users.items()):
                fam.add_metric([cluster, u, s], n)
            yield fam
        if self.per_account:
            fam = GaugeMetricFamily("hpc_slurm_account_jobs", f"Jobs by account and state (at most "
                                    f"{self.label_limit} accounts; the rest under __other__).",
                                    labels=["cluster", "account", "state"])
            for (a, s), n in sorted(snap.accounts.items()):
                fam.add_metric([cluster, a, s], n)
            yield fam
        if self.fairshare:
            yield from self._fairshare_families(cluster, snap.fairshare)

    def _fairshare_families(self, cluster: str, rows: list[parse.FairShare]) -> Iterator[Metric]:
        acc = GaugeMetricFamily("hpc_slurm_account_fairshare", "Fair-share factor of each account (0..1, sshare).",
                                labels=["cluster", "account"])
        usr = GaugeMetricFamily("hpc_slurm_user_fairshare", "Fair-share factor of each user in an account "
                                "(0..1, sshare; with per-user).", labels=["cluster", "account", "user"])
        seen_acc, seen_usr = set(), set()
        for r in rows:
            a = cap_label(r.account)
            if not r.user and a not in seen_acc and len(seen_acc) < self.label_limit:
                seen_acc.add(a)
                acc.add_metric([cluster, a], r.fairshare)
            elif r.user and self.per_user and (a, r.user) not in seen_usr and len(seen_usr) < self.label_limit:
                seen_usr.add((a, r.user))
                usr.add_metric([cluster, a, cap_label(r.user)], r.fairshare)
        yield acc
        if self.per_user:
            yield usr

    def close(self) -> None:
        self.source.stop()
