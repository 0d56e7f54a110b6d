"""`lustre_server`: OSS/MDS job_stats per job (capped), target stats, capacity, recovery and OSD brw_stats
histograms (snapshot).

job_stats on a busy OSS holds tens of thousands of jobs; the refresh streams each file through the
parser in blocks, keeps one small totals object per job of the current target, and exports only the
top N jobs by bytes and by metadata operations plus one `jobid="__other__"` remainder per target.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import CommandError
from hpcwatch.exporters.families import FamilyTable, counter, gauge
from hpcwatch.exporters.files import fail_scrape, log_once, read_text, reading
from hpcwatch.exporters.lustre.brw import BRW_FAMILIES, BrwTable, brw_families, parse_brw_stats
from hpcwatch.exporters.lustre.jobs import REMAINDER_JOBID, JobIdFormat, TargetJobs, aggregate_raw
from hpcwatch.exporters.lustre.jobstats import iter_job_stats
from hpcwatch.exporters.lustre.reader import Lctl, find_files, read_blocks
from hpcwatch.exporters.lustre.stats import (
    StatsCounter,
    fold_counters,
    param_device,
    parse_stats,
    split_get_param,
)
from hpcwatch.exporters.lustre.target import (
    RECOVERY_STATES,
    RecoveryStatus,
    RecoveryStatusError,
    parse_counter_value,
    parse_recovery_status,
)
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.lustre_server")

JOB_STATS_SOURCE = "lustre_job_stats"
STATS_SOURCE = "lustre_stats"
# (device type in /proc|/sys, stats file name) for OSTs and MDTs.
JOB_STATS_DEVICES = (("obdfilter", "job_stats"), ("mdt", "job_stats"))
TARGET_STATS_DEVICES = (("obdfilter", "stats"), ("mdt", "md_stats"))
# capacity file -> (family, help, scale to the family's unit)
CAPACITY_FAMILIES = {
    "kbytestotal": ("hpc_lustre_target_capacity_bytes", "Size of a Lustre OST/MDT.", 1024),
    "kbytesfree": ("hpc_lustre_target_free_bytes", "Free space on a Lustre OST/MDT, reserved blocks included.", 1024),
    "kbytesavail": ("hpc_lustre_target_available_bytes",
                    "Space on a Lustre OST/MDT available to users (free minus reserved).", 1024),
    "filestotal": ("hpc_lustre_target_files", "Inodes (objects) a Lustre OST/MDT can hold.", 1),
    "filesfree": ("hpc_lustre_target_files_free", "Free inodes (objects) on a Lustre OST/MDT.", 1),
}
CAPACITY_FILES = tuple(CAPACITY_FAMILIES)
# An OST's obdfilter device answers statfs as clients see it (`lfs df`: grants and the precreate
# reserve taken out of kbytesavail); its OSD device gives the raw backend. MDTs have only the OSD's.
CAPACITY_DEVICES = ("obdfilter", "mdt", "osd-*")

# (family, RecoveryStatus attribute, help): a target exports those its current state prints.
RECOVERY_GAUGES = (
    ("hpc_lustre_target_recovery_completed_clients", "completed_clients",
     "Clients that completed recovery with a Lustre target (COMPLETE and RECOVERING)."),
    ("hpc_lustre_target_recovery_expected_clients", "expected_clients",
     "Clients a Lustre target expects to reconnect during recovery (COMPLETE and RECOVERING)."),
    ("hpc_lustre_target_recovery_connected_clients", "connected_clients",
     "Clients that have reconnected to a Lustre target in recovery (RECOVERING only)."),
    ("hpc_lustre_target_recovery_time_remaining_seconds", "time_remaining_seconds",
     "Seconds until a recovering Lustre target's recovery window closes and it evicts the clients "
     "still missing (RECOVERING only)."),
    ("hpc_lustre_target_recovery_duration_seconds", "duration_seconds",
     "How long a Lustre target's last recovery took (COMPLETE only)."),
)

FAMILIES = FamilyTable([
    counter("hpc_lustre_job_operations_total",
            "Operations a job issued to a Lustre target (job_stats samples); the jobs outside the top N are summed "
            'into jobid="__other__".', "target", "jobid", "uid", "host", "operation"),
    counter("hpc_lustre_job_bytes_total",
            "Bytes a job read or wrote on a Lustre target (job_stats read_bytes/write_bytes sum).",
            "target", "jobid", "uid", "host", "operation"),
    counter("hpc_lustre_job_operation_time_seconds_total",
            "Time a Lustre target spent serving a job's operations (job_stats usecs sum, Lustre 2.12 and later).",
            "target", "jobid", "uid", "host", "operation"),
    gauge("hpc_lustre_target_jobs", "Jobs present in a target's job_stats, before the top-N cap.", "target"),
    counter("hpc_lustre_target_operations_total",
            "Requests a Lustre OST/MDT served, by operation (obdfilter stats, mdt md_stats).", "target", "operation"),
    counter("hpc_lustre_target_bytes_total",
            "Bytes a Lustre OST/MDT read or wrote, by operation.", "target", "operation"),
    counter("hpc_lustre_target_operation_time_seconds_total",
            "Time a Lustre OST/MDT spent serving requests, by operation (usecs counters).", "target", "operation"),
    gauge("hpc_lustre_target_recovery_status",
          "1 for the recovery state a Lustre target is in (recovery_status), 0 for the others.", "target", "status"),
    *(gauge(name, doc, "target") for name, doc, _ in CAPACITY_FAMILIES.values()),
    *(gauge(name, doc, "target") for name, _, doc in RECOVERY_GAUGES),
]) + BRW_FAMILIES


@dataclasses.dataclass
class TargetCounters:
    ops: dict[str, int] = dataclasses.field(default_factory=dict)
    bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class ServerSnapshot:
    jobs: list[TargetJobs]
    counters: dict[str, TargetCounters]
    capacity: dict[str, dict[str, int]]
    recovery: dict[str, RecoveryStatus]
    taken_at: float
    brw: dict[str, list[BrwTable]] = dataclasses.field(default_factory=dict)
    read_error: str | None = None  # the first file the refresh could not read: scrapes of it report success 0


@register
class LustreServerCollector(Collector):
    name = "lustre_server"
    help = "Lustre OSS/MDS: per-job I/O from job_stats (top N jobs), target stats, capacity, recovery"
    kind = "snapshot"
    # Families built once per snapshot and reused until the next refresh (their bytes too); the key
    # holds the instance, so one class-wide cache serves the one collector an agent runs.
    _families = FamilyCache()
    default_agents = frozenset({"cluster"})
    families = FAMILIES
    options = (
        Option("refresh-interval", 30.0, "time between job_stats reads", type=opt.duration),
        Option("jobid-format", JobIdFormat("%j"),
               "Lustre jobid_name pattern(s) to split job_id into jobid/uid/host, comma-separated and tried "
               "in order, e.g. '%j:%u:%H,%e.%u'", type=JobIdFormat, format=lambda f: f.spec),
        Option("top-jobs-by-bytes", 100, "jobs per target kept by bytes read+written", type=opt.count),
        Option("top-jobs-by-metadata", 100, "jobs per target kept by metadata operations", type=opt.count),
        Option("job-stats", True, "export per-job series from job_stats", type=bool),
        Option("brw-stats", True, "export the OSD brw_stats histograms (150 to 250 series per target)", type=bool),
        Option("lctl", "lctl", "lctl binary, used when the parameter files are not readable"),
        Option("timeout", 30.0, "how long each lctl call may take", type=opt.duration),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.paths = ctx.paths
        self.jobid_format = ctx.option("jobid-format")
        self.top_bytes = ctx.option("top-jobs-by-bytes")
        self.top_metadata = ctx.option("top-jobs-by-metadata")
        self.job_stats = ctx.option("job-stats")
        self.brw_stats = ctx.option("brw-stats")
        self.lctl = Lctl(ctx.option("lctl"), ctx.option("timeout"))
        self.source: SnapshotSource[ServerSnapshot] = SnapshotSource(
            "lustre_server", self.refresh, ctx.option("refresh-interval"))

    # ------------------------------------------------------------------ start-up
    def _has_files(self) -> bool:
        return any(find_files(self.paths, dev, name) for dev, name in JOB_STATS_DEVICES + TARGET_STATS_DEVICES)

    def available(self) -> str | None:
        if self._has_files():
            return None
        if self.lctl.path() is None:
            return "no obdfilter/mdt targets under /proc/fs/lustre or /sys/fs/lustre and no lctl (not a Lustre server)"
        if not self._lctl_targets():
            return "lctl lists no obdfilter or mdt targets (not a Lustre server)"
        return None

    def sources(self) -> list[SnapshotSource]:
        return [self.source]

    # ------------------------------------------------------------------ refresh
    def refresh(self) -> ServerSnapshot:
        with reading(self.name) as errors:
            snap = self._refresh_files() if self._has_files() else self._refresh_lctl()
        return dataclasses.replace(snap, read_error=errors.first())

    def _refresh_files(self) -> ServerSnapshot:
        jobs: list[TargetJobs] = []
        if self.job_stats:
            for dev, name in JOB_STATS_DEVICES:
                for target, path in sorted(find_files(self.paths, dev, name).items()):
                    try:
                        records = iter_job_stats(read_blocks(path), target, on_error=self._job_error)
                        jobs.extend(aggregate_raw(records, self.jobid_format, self.top_bytes, self.top_metadata))
                    except OSError as exc:  # the target went away mid-read: skip it, keep the others
                        log_once(log, f"read:{path}", "cannot read %s: %s", path, exc)
        counters: dict[str, TargetCounters] = {}
        for dev, name in TARGET_STATS_DEVICES:
            for target, path in find_files(self.paths, dev, name).items():
                text = read_text(path)
                if text is not None:
                    counters[target] = _fold(parse_stats(text, on_error=_stats_error))
        capacity: dict[str, dict[str, int]] = {}
        for fname in CAPACITY_FILES:
            for dev in CAPACITY_DEVICES:
                for target, path in find_files(self.paths, dev, fname).items():
                    value = parse_counter_value(read_text(path))
                    if value is not None:
                        capacity.setdefault(target, {}).setdefault(fname, value)
        recovery: dict[str, RecoveryStatus] = {}
        for dev in ("obdfilter", "mdt"):
            for target, path in find_files(self.paths, dev, "recovery_status").items():
                text = read_text(path)
                if text is not None:
                    self._add_recovery(recovery, target, text)
        brw: dict[str, list[BrwTable]] = {}
        if self.brw_stats:
            # The OSD's file first: 2.10 also has obdfilter/<target>/brw_stats, empty on ZFS OSTs.
            for dev in ("osd-*", "obdfilter", "mdt"):
                for target, path in find_files(self.paths, dev, "brw_stats").items():
                    text = read_text(path) if target not in brw else None
                    if text and text.strip():
                        brw[target] = parse_brw_stats(text, _brw_error)
        return ServerSnapshot(jobs, counters, capacity, recovery, time.time(), brw)

    def _lctl_targets(self) -> list[str]:
        return [p for pattern in ("obdfilter.*.job_stats", "mdt.*.job_stats") for p in self.lctl.list_param(pattern)]

    def _refresh_lctl(self) -> ServerSnapshot:
        jobs: list[TargetJobs] = []
        if self.job_stats:
            # One target per call keeps at most one target's text in memory.
            for param in self._lctl_targets():
                _, target = param_device(param)
                text = self.lctl.get_param(param, values_only=True)
                records = iter_job_stats((text,), target, on_error=self._job_error)
                jobs.extend(aggregate_raw(records, self.jobid_format, self.top_bytes, self.top_metadata))
        counters: dict[str, TargetCounters] = {}
        capacity: dict[str, dict[str, int]] = {}
        recovery: dict[str, RecoveryStatus] = {}
        brw: dict[str, list[BrwTable]] = {}
        patterns = ["obdfilter.*.stats", "mdt.*.md_stats", "obdfilter.*.recovery_status", "mdt.*.recovery_status",
                    *(f"obdfilter.*.{f}" for f in CAPACITY_FILES), *(f"osd-*.*.{f}" for f in CAPACITY_FILES)]
        if self.brw_stats:
            patterns.append("osd-*.*.brw_stats")
        for pattern in patterns:
            try:
                out = self.lctl.get_param(pattern)
            except CommandError as exc:
                log_once(log, f"lctl:{pattern}", "lctl get_param %s failed: %s", pattern, exc)
                continue
            for param, value in split_get_param(out):
                _, target = param_device(param)
                leaf = param.rsplit(".", 1)[-1]
                if leaf in ("stats", "md_stats"):
                    counters[target] = _fold(parse_stats(value, on_error=_stats_error))
                elif leaf == "recovery_status":
                    self._add_recovery(recovery, target, value)
                elif leaf in CAPACITY_FILES:
                    v = parse_counter_value(value)
                    if v is not None:
                        capacity.setdefault(target, {}).setdefault(leaf, v)
                elif leaf == "brw_stats" and value.strip():
                    brw.setdefault(target, parse_brw_stats(value, _brw_error))
        return ServerSnapshot(jobs, counters, capacity, recovery, time.time(), brw)

    @staticmethod
    def _job_error(reason: str) -> None:
        record_parse_error(JOB_STATS_SOURCE)
        log_once(log, "job_stats_parse", "skipped a job_stats record: %s", reason)

    @staticmethod
    def _add_recovery(recovery: dict[str, RecoveryStatus], target: str, text: str) -> None:
        try:
            recovery[target] = parse_recovery_status(text)
        except RecoveryStatusError as exc:
            record_parse_error("lustre_recovery_status")
            log_once(log, f"recovery:{target}", "%s recovery_status: %s", target, exc)

    # ------------------------------------------------------------------ scrape
    def collect(self) -> Iterator[Metric]:
        snap = self.source.value
        if snap is None:
            return
        if snap.read_error is not None:
            fail_scrape(snap.read_error)
        yield from self._families.get((self, snap), lambda: [
            *job_families(snap.jobs), *target_families(snap), *(brw_families(snap.brw) if self.brw_stats else ())])


def _fold(counters: list[StatsCounter]) -> TargetCounters:
    t = TargetCounters()
    fold_counters(counters, t.ops, t.bytes, t.seconds)
    return t


def _stats_error(reason: str) -> None:
    record_parse_error(STATS_SOURCE)
    log_once(log, "stats_parse", "skipped a Lustre stats line: %s", reason)


def _brw_error(reason: str) -> None:
    record_parse_error("lustre_brw_stats")
    log_once(log, "brw_parse", "skipped a brw_stats line: %s", reason)


JOB_LABELS = ["target", "jobid", "uid", "host", "operation"]


def job_families(targets: list[TargetJobs]) -> Iterator[Metric]:
    ops = FAMILIES.new("hpc_lustre_job_operations_total")
    byt = FAMILIES.new("hpc_lustre_job_bytes_total")
    sec = FAMILIES.new("hpc_lustre_job_operation_time_seconds_total")
    count = FAMILIES.new("hpc_lustre_target_jobs")
    for t in targets:
        count.add_metric([t.target], t.total_jobs)
        entries = [(k.jobid, k.uid, k.host, v) for k, v in sorted(t.jobs.items(), key=lambda kv: (
            kv[0].jobid, kv[0].uid, kv[0].host))]
        if t.remainder is not None:
            entries.append((REMAINDER_JOBID, "", "", t.remainder))
        for jobid, uid, host, v in entries:
            base = [t.target, jobid, uid, host]
            for op, n in sorted(v.ops.items()):
                ops.add_metric(base + [op], n)
            for op, n in sorted(v.bytes.items()):
                byt.add_metric(base + [op], n)
            for op, s in sorted(v.seconds.items()):
                sec.add_metric(base + [op], s)
    yield from (ops, byt, sec, count)


def target_families(snap: ServerSnapshot) -> Iterator[Metric]:
    ops = FAMILIES.new("hpc_lustre_target_operations_total")
    byt = FAMILIES.new("hpc_lustre_target_bytes_total")
    sec = FAMILIES.new("hpc_lustre_target_operation_time_seconds_total")
    for target, c in sorted(snap.counters.items()):
        for op, n in sorted(c.ops.items()):
            ops.add_metric([target, op], n)
        for op, n in sorted(c.bytes.items()):
            byt.add_metric([target, op], n)
        for op, s in sorted(c.seconds.items()):
            sec.add_metric([target, op], s)
    yield from (ops, byt, sec)

    for fname, (name, _, scale) in CAPACITY_FAMILIES.items():
        fam = FAMILIES.new(name)
        for target, values in sorted(snap.capacity.items()):
            if fname in values:
                fam.add_metric([target], values[fname] * scale)
        yield fam

    state = FAMILIES.new("hpc_lustre_target_recovery_status")
    for target, r in sorted(snap.recovery.items()):
        for s in sorted(set(RECOVERY_STATES) | {r.status}):
            state.add_metric([target, s], 1 if s == r.status else 0)
    yield state
    for name, attr, _ in RECOVERY_GAUGES:
        fam = FAMILIES.new(name)
        for target, r in sorted(snap.recovery.items()):
            value = getattr(r, attr)
            if value is not None:
                fam.add_metric([target], value)
        yield fam
