"""The `slurm` collector: squeue/sinfo/sdiag/sacct once per refresh into the scheduler-neutral model.

The shared adapter base (exporters/scheduler/adapter.py) owns the ledger, state file, snapshot
source and cache; this module only reads Slurm. Finished jobs come from sacct windows; the
watermark only advances when sdiag says slurmctld has no accounting records queued for slurmdbd.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import shutil
from collections.abc import Iterator, Mapping

from hpcwatch.accounting.agent import OPTIONS as SUMMARY_OPTIONS
from hpcwatch.accounting.agent import SummaryAgent
from hpcwatch.exporters import labels
from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import CommandError, run_command
from hpcwatch.exporters.families import counter, gauge
from hpcwatch.exporters.files import log_once, read_text
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
from hpcwatch.exporters.scheduler.model import Histogram, MaintenanceWindow, QueueSnapshot, run_key
from hpcwatch.exporters.scheduler.outcomes import slurm_live_state
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.slurm import parse
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.slurm")

COMMANDS = ("squeue", "sinfo", "sacct", "sdiag", "scontrol")


@dataclasses.dataclass(frozen=True)
class SlurmExtras:
    """What one refresh read beyond the neutral model, for the hpc_slurm_* families."""

    pending_reasons: dict[tuple[str, str], int]
    users: dict[tuple[str, str], int]
    accounts: dict[tuple[str, str], int]
    sdiag: parse.SdiagStats
    fairshare: list[parse.FairShare]


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

    def squeue(self, sep: str) -> str:
        return self.run("squeue", "--noheader", "--all", "--Format", parse.format_option(parse.SQUEUE_FIELDS, sep))

    def sinfo(self, sep: str) -> str:
        return self.run("sinfo", "--noheader", "--Node", "--all", "--Format",
                        parse.format_option(parse.SINFO_FIELDS, sep))

    def sdiag(self) -> str:
        return self.run("sdiag")

    def sacct(self, start: float, end: float, sep: str) -> str:
        return self.run("sacct", "--allusers", "--noheader", "--parsable2", f"--delimiter={sep}",
                        "--allocations", "--duplicates",
                        "--state", ",".join(parse.SACCT_STATES),
                        "--starttime", parse.format_time(start), "--endtime", parse.format_time(end),
                        "--format", ",".join(parse.SACCT_FIELDS))

    def sacct_jobs(self, ids: list[str], sep: str) -> str:
        """The summary writer's one batched call: the given jobs with their steps (accounting.sacct)."""
        from hpcwatch.accounting.sacct import sacct_argv
        argv = sacct_argv(self.path("sacct") or "sacct", ids, sep)
        self.calls["sacct"] = self.calls.get("sacct", 0) + 1
        return run_command(argv, timeout=self.timeout, env=self.env)

    def config(self) -> str:
        return self.run("scontrol", "show", "config")

    def reservations(self) -> str:
        return self.run("scontrol", "show", "reservation", "--oneliner")

    def sshare(self) -> str:
        return self.run("sshare", "--noheader", "--parsable2", "--all", "--format", "Account,User,FairShare")


def build_queue(cluster: str, jobs: list[parse.SqueueJob], now: float, buckets: tuple[float, ...],
                partitions: frozenset[str] = frozenset()
                ) -> tuple[QueueSnapshot, dict[tuple[str, str], int], list[RunningJob]]:
    """Aggregate squeue lines -> (queue snapshot, pending jobs by (partition, reason), running runs).

    Running runs carry their start and queue wait (start - eligible) for the observation at start.
    A job submitted to several partitions counts under the first one listed (`partitions`: the names
    sinfo knows, so a name that holds a comma is not cut).
    """
    snap = QueueSnapshot(cluster=cluster)
    reasons: dict[tuple[str, str], int] = {}
    running: list[RunningJob] = []
    for j in jobs:
        if j.het_component:
            continue
        state = slurm_live_state(j.state)
        if state is None:
            continue
        queue = labels.value(parse.first_partition(j.partition, partitions))
        n = j.count
        snap.add_job(queue, state, n)
        if state == "pending":
            key = (queue, labels.value(j.reason))
            reasons[key] = reasons.get(key, 0) + n
            if j.eligible is not None and j.eligible <= now:
                hist = snap.pending_wait.get(queue)
                if hist is None:
                    hist = snap.pending_wait[queue] = Histogram(buckets)
                hist.observe(now - j.eligible, n)
        elif state == "running" and j.start is not None:
            begin = j.eligible if j.eligible is not None else j.submit
            if begin is not None:
                running.append(RunningJob(run_key(j.jobid, j.submit, j.start), queue, j.start, j.start - begin))
    return snap, reasons, running


def maintenance(nodes: list[parse.SinfoNode], reservations: list[parse.Reservation], now: float,
                reason: re.Pattern[str] | None) -> tuple[dict[str, tuple[str, str]], list[MaintenanceWindow]]:
    """Nodes under maintenance now (node -> (source, reservation)) and every MAINT reservation as a window.

    A node is under maintenance while an active MAINT reservation holds it, or while it is drained or
    down with a reason `reason` matches (an admin's `scontrol update state=drain reason="maintenance"`)."""
    windows = [MaintenanceWindow(labels.value(r.name), r.start, r.end, tuple(labels.value(n) for n in r.nodes))
               for r in reservations if r.maintenance]
    out: dict[str, tuple[str, str]] = {}
    for w in windows:
        if w.active(now):
            for node in w.nodes:
                out.setdefault(node, ("reservation", w.name))
    if reason is not None:
        for n in nodes:
            if n.reason and parse.node_state(n.state) in ("down", "drain") and reason.search(n.reason):
                out.setdefault(labels.value(n.node), ("drain", ""))
    return out, windows


def add_capacity(snap: QueueSnapshot, nodes: list[parse.SinfoNode]) -> None:
    """Nodes, CPUs and GPUs by (partition, state) from `sinfo -N` lines; a node under maintenance
    (snap.maintenance) counts as `maint`, so availability leaves it out."""
    for n in nodes:
        q = labels.value(n.partition)
        state = "maint" if labels.value(n.node) in snap.maintenance else parse.node_state(n.state)
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
        key = (labels.value(name) if name in keep else labels.OTHER, state)
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

FAMILIES = SchedulerCollector.families + [
    gauge("hpc_slurm_accounting_up", "1 when the last sacct call answered (slurmdbd reachable).", "cluster"),
    gauge("hpc_slurm_pending_jobs",
          "Pending jobs by partition and the reason Slurm gives.", "cluster", "partition", "reason"),
    counter("hpc_slurm_rpc_calls_total", "RPCs slurmctld served by message type (sdiag).", "cluster", "type"),
    counter("hpc_slurm_rpc_time_seconds_total",
            "Time slurmctld spent serving RPCs by message type (sdiag).", "cluster", "type"),
    gauge("hpc_slurm_account_fairshare", "Fair-share factor of each account (0..1, sshare).", "cluster", "account"),
    gauge("hpc_slurm_user_fairshare",
          "Fair-share factor of each user in an account (0..1, sshare; with per-user).",
          "cluster", "account", "user"),
    gauge("hpc_slurm_user_jobs", "Jobs by user and state (with per-user; at most label-limit users, the rest "
          "under __other__).", "cluster", "user", "state"),
    gauge("hpc_slurm_account_jobs", "Jobs by account and state (with per-account; at most label-limit accounts, "
          "the rest under __other__).", "cluster", "account", "state"),
    *(gauge(name, doc, "cluster") for _, name, doc, _ in SDIAG_GAUGES),
    *(counter(name + "_total", doc, "cluster") for _, name, doc, _ in SDIAG_COUNTERS),
]

SLURM_CONF_PATHS = ("/etc/slurm/slurm.conf", "/etc/slurm-llnl/slurm.conf", "/usr/local/etc/slurm.conf")


def cluster_from_conf(conf: str | None) -> str:
    """ClusterName from slurm.conf: the given file only, else the usual paths; "" when none is readable."""
    for path in [conf] if conf else SLURM_CONF_PATHS:
        text = read_text(path, limit=4 << 20)
        if text is not None:
            name = parse.cluster_name_from_slurm_conf(text)
            return labels.value(name) if name else ""
    return ""


@register
class SlurmCollector(SchedulerCollector):
    name = "slurm"
    help = "Slurm queue, capacity, scheduler statistics and finished jobs (squeue, sinfo, sdiag, sacct)"
    families = FAMILIES
    options = (
        Option("bin-dir", "", "directory holding squeue, sinfo, sacct, sdiag, scontrol (empty: search PATH)"),
        Option("conf", "", "SLURM_CONF for the client commands (empty: the commands' own default)"),
        *shared_options("slurm", "", "cluster label (empty: ClusterName from slurm.conf, else from "
                        "`scontrol show config`)"),
        Option("per-user", False, "export job counts per user (capped by label-limit)", type=bool),
        Option("per-account", False, "export job counts per account (capped by label-limit)", type=bool),
        Option("fairshare", False, "export fairshare per account (and per user with per-user) from sshare",
               type=bool),
        Option("label-limit", 200, "most users/accounts with their own series; the rest sum to __other__",
               type=opt.positive_count),
        Option("maintenance-reason", re.compile(r"(?i)\bmaint"), "regexp of the drain or down reasons that put a "
               "node under maintenance (besides active MAINT reservations); empty: reservations only",
               type=opt.regexp),
        *SUMMARY_OPTIONS,
    )

    def __init__(self, ctx: CollectorContext, env: Mapping[str, str] | None = None) -> None:
        super().__init__(ctx)
        full_env = dict(env or {})
        if ctx.option("conf"):
            full_env["SLURM_CONF"] = ctx.option("conf")
        self.commands = SlurmCommands(ctx.option("bin-dir"), full_env, self.timeout)
        # The cluster label, known before the first refresh where slurm.conf is readable, so even a
        # slurmctld that is down from the start shows as hpc_scheduler_up{cluster="<name>"} 0.
        self.cluster = labels.value(self.cluster) or cluster_from_conf(
            full_env.get("SLURM_CONF") or os.environ.get("SLURM_CONF"))
        self.per_user = ctx.option("per-user")
        self.per_account = ctx.option("per-account")
        self.fairshare = ctx.option("fairshare")
        self.label_limit = ctx.option("label-limit")
        self._sdiag: parse.SdiagStats | Exception = parse.SdiagStats()
        self._nodes: list[parse.SinfoNode] | Exception = []
        self._partitions: frozenset[str] = frozenset()   # from the last sinfo that answered
        self.maintenance_reason = ctx.option("maintenance-reason")
        self._reservations: list[parse.Reservation] = []   # the last good read (scontrol can fail alone)
        self.summaries = SummaryAgent.from_options("slurm", ctx.options, self._summary_details)
        if self.summaries is not None:
            self.ledger.outbox = {}

    def available(self) -> str | None:
        missing = [c for c in ("squeue", "sinfo", "sacct", "sdiag") if self.commands.path(c) is None]
        if missing:
            where = self.commands.bin_dir or "PATH"
            return f"{', '.join(missing)} not found in {where} (no Slurm client here)"
        return None

    # ------------------------------------------------------------ reads (background thread)
    def read_finished(self, start: float, end: float) -> FinishedRead:
        """sdiag, sinfo, then sacct over the window; complete up to `end` when slurmdbd has nothing queued."""
        if not self.cluster:  # no readable slurm.conf: ask slurmctld
            cfg = parse.parse_scontrol_config(self.commands.config())
            self.cluster = labels.value(cfg.get("ClusterName") or "unknown")
        try:  # read before sacct: an empty DBD agent queue then means every job that ended is in accounting
            self._sdiag = parse.parse_sdiag(self.commands.sdiag())
        except (CommandError, parse.SlurmParseError) as exc:
            self._sdiag = exc  # slurmctld is down: accounting still counts, the live read then fails
        # A fresh separator per call: no account, partition or name stored before it can hold it.
        sep = parse.call_separator()
        try:  # before sacct: partition names tell a comma inside a name from a list of partitions
            self._nodes, bad = parse.parse_sinfo(self.commands.sinfo(sep), sep)
            record_parse_error("slurm_sinfo", bad)
            self._partitions = frozenset(n.partition for n in self._nodes) or self._partitions
        except CommandError as exc:
            self._nodes = exc
        try:
            text = self.commands.sacct(start, end, sep)
        except CommandError as exc:
            raise AccountingUnavailable(f"sacct failed: {exc}") from exc
        records, bad = parse.parse_sacct(text, sep)
        runs, unknown = parse.sacct_to_finished(records, self.cluster, self._partitions)
        record_parse_error("slurm_sacct", bad + unknown)
        queued = None if isinstance(self._sdiag, Exception) else self._sdiag.get("top:DBD Agent queue size")
        # Only when slurmctld has nothing queued for slurmdbd is every job that ended before the sdiag
        # call in accounting; otherwise keep the window open so late records are caught.
        return FinishedRead(runs, end if queued == 0 else None)

    def read_live(self, now: float) -> LiveRead:
        """squeue (and sshare with fairshare) with the sinfo read_finished took; raises when slurmctld did not
        answer sdiag or sinfo."""
        for failed in (self._sdiag, self._nodes):
            if isinstance(failed, Exception):
                raise failed
        sep = parse.call_separator()
        jobs, bad = parse.parse_squeue(self.commands.squeue(sep), sep)
        record_parse_error("slurm_squeue", bad)
        queue, reasons, running = build_queue(self.cluster, jobs, now, self.buckets, self._partitions)
        try:
            self._reservations, bad = parse.parse_reservations(self.commands.reservations())
            record_parse_error("slurm_reservations", bad)
        except CommandError as exc:
            log_once(log, "reservations", "scontrol show reservation failed; keeping the last maintenance windows "
                     "read: %s", exc)
        queue.maintenance, queue.windows = maintenance(self._nodes, self._reservations, now, self.maintenance_reason)
        add_capacity(queue, self._nodes)
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
        return LiveRead(queue, running, SlurmExtras(reasons, users, accounts, self._sdiag, fairshare))

    def _summary_details(self, ids):
        from hpcwatch.accounting.sacct import parse_summary_sacct
        sep = parse.call_separator()
        details, bad = parse_summary_sacct(self.commands.sacct_jobs(list(ids), sep), sep)
        record_parse_error("slurm_sacct_summary", bad)
        return details, bad

    # ------------------------------------------------------------ scrape path
    def extra_families(self, cluster: str, snap: SchedulerSnapshot) -> Iterator[Metric]:
        acct = FAMILIES.new("hpc_slurm_accounting_up")
        acct.add_metric([cluster], 1 if snap.accounting_up else 0)
        yield acct
        yield from self._slurm_families(cluster, snap.extra)

    def _slurm_families(self, cluster: str, snap: SlurmExtras) -> Iterator[Metric]:
        pend = FAMILIES.new("hpc_slurm_pending_jobs")
        for (p, r), n in sorted(snap.pending_reasons.items()):
            pend.add_metric([cluster, p, r], n)
        yield pend
        for key, name, _, scale in SDIAG_GAUGES:
            v = snap.sdiag.get(key)
            if v is not None:
                fam = FAMILIES.new(name)
                fam.add_metric([cluster], v * scale)
                yield fam
        for key, name, _, scale in SDIAG_COUNTERS:
            v = snap.sdiag.get(key)
            if v is not None:
                fam = FAMILIES.new(name + "_total")
                fam.add_metric([cluster], v * scale)
                yield fam
        calls = FAMILIES.new("hpc_slurm_rpc_calls_total")
        secs = FAMILIES.new("hpc_slurm_rpc_time_seconds_total")
        for t, (n, total) in sorted(snap.sdiag.rpc_by_type.items()):
            calls.add_metric([cluster, labels.value(t)], n)
            secs.add_metric([cluster, labels.value(t)], total)
        yield calls
        yield secs
        if self.per_user:
            fam = FAMILIES.new("hpc_slurm_user_jobs")
            for (u, s), n in sorted(snap.users.items()):
                fam.add_metric([cluster, u, s], n)
            yield fam
        if self.per_account:
            fam = FAMILIES.new("hpc_slurm_account_jobs")
            for (a, s), n in sorted(snap.accounts.items()):
                fam.add_metric([cluster, a, s], n)
            yield fam
        if self.fairshare:
            yield from self._fairshare_families(cluster, snap.fairshare)

    def _fairshare_families(self, cluster: str, rows: list[parse.FairShare]) -> Iterator[Metric]:
        acc = FAMILIES.new("hpc_slurm_account_fairshare")
        usr = FAMILIES.new("hpc_slurm_user_fairshare")
        seen_acc, seen_usr = set(), set()
        for r in rows:
            a = labels.value(r.account)
            if not r.user and a not in seen_acc and len(seen_acc) < self.label_limit:
                seen_acc.add(a)
                acc.add_metric([cluster, a], r.fairshare)
            elif r.user and self.per_user and (a, r.user) not in seen_usr and len(seen_usr) < self.label_limit:
                seen_usr.add((a, r.user))
                usr.add_metric([cluster, a, labels.value(r.user)], r.fairshare)
        yield acc
        if self.per_user:
            yield usr
