"""`gpfs`: IBM Storage Scale per-filesystem I/O (mmpmon fs_io_s), usage (mmdf -Y), health (mmhealth),
daemon state (mmgetstate -Y) and waiters (mmdiag --waiters -Y).

Each command has its own snapshot source and interval: mmpmon is cheap and local; mmhealth reads the
local health monitor; mmgetstate and mmdiag ask the local daemon; mmdf asks the filesystem manager for
cluster-wide usage, so it runs on a long interval and, by default, only in the cluster agent (one
node asks for the whole cluster).
"""

from __future__ import annotations

import logging
import os
import re
import tempfile
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.families import FamilyTable, counter, gauge, histogram
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.gpfs.parse import (
    FsIo,
    FsUsage,
    HealthEvent,
    HealthState,
    parse_fs_io_s,
    parse_mmdf,
    parse_mmhealth,
    parse_mmhealth_events,
)
from hpcwatch.exporters.gpfs.state import GPFS_STATES, DaemonState, Waiter, parse_mmgetstate, parse_waiters
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.gpfs")

# Every state mmhealth documents; the current one is 1, the rest 0, so alerts can match on == 1.
HEALTH_STATES = ("HEALTHY", "DEGRADED", "FAILED", "DEPEND", "TIPS", "CHECKING", "STARTING", "STOPPED",
                 "SUSPENDED", "DISABLED", "UNKNOWN")
MMDF_AUTO_CLUSTER_INTERVAL = 600.0
HealthSnapshot = tuple[list[HealthState], list[HealthEvent]]

# (family, FsUsage attribute, help) of the per-filesystem usage gauges (mmdf -Y).
USAGE_FAMILIES = (
    ("hpc_gpfs_fs_size_bytes", "size", "Size of a GPFS filesystem (mmdf fsTotal)."),
    ("hpc_gpfs_fs_free_bytes", "free", "Free full blocks in a GPFS filesystem (mmdf fsTotal)."),
    ("hpc_gpfs_fs_free_fragments_bytes", "free_fragments",
     "Free space in fragments (sub-blocks) of a GPFS filesystem."),
    ("hpc_gpfs_data_size_bytes", "data_size", "Capacity of the data disks of a GPFS filesystem."),
    ("hpc_gpfs_data_free_bytes", "data_free", "Free full blocks on the data disks of a GPFS filesystem."),
    ("hpc_gpfs_metadata_size_bytes", "metadata_size", "Capacity of the metadata disks of a GPFS filesystem."),
    ("hpc_gpfs_metadata_free_bytes", "metadata_free", "Free full blocks on the metadata disks of a GPFS filesystem."),
)
# mmdf -Y inode kind -> what its hpc_gpfs_inodes_<kind> gauge counts.
INODE_FAMILIES = {"used": "Inodes in use", "free": "Allocated inodes not in use", "allocated": "Inodes allocated",
                  "max": "Most inodes the filesystem may allocate"}
# (family, DaemonState attribute, help) of the mmgetstate gauges.
STATE_FAMILIES = (
    ("hpc_gpfs_quorum_nodes", "quorum", "Quorum nodes needed for quorum (mmgetstate quorum)."),
    ("hpc_gpfs_cluster_nodes_up", "nodes_up", "Nodes up in the GPFS cluster as this node's daemon sees it "
                                              "(mmgetstate nodesUp)."),
    ("hpc_gpfs_cluster_nodes", "total_nodes", "Nodes in the GPFS cluster (mmgetstate totalNodes)."),
)

FAMILIES = FamilyTable([
    counter("hpc_gpfs_read_bytes_total",
            "Bytes read from a GPFS filesystem by this node (mmpmon fs_io_s _br_).", "gpfs_cluster", "fs"),
    counter("hpc_gpfs_write_bytes_total",
            "Bytes written to a GPFS filesystem by this node (mmpmon fs_io_s _bw_).", "gpfs_cluster", "fs"),
    counter("hpc_gpfs_operations_total",
            "Calls this node made on a GPFS filesystem: open, close, read, write, readdir, inode_update (mmpmon "
            "fs_io_s).", "gpfs_cluster", "fs", "operation"),
    gauge("hpc_gpfs_fs_disks", "Disks (NSDs) in a GPFS filesystem mounted on this node.", "gpfs_cluster", "fs"),
    gauge("hpc_gpfs_pool_size_bytes", "Size of a GPFS storage pool.", "fs", "pool"),
    gauge("hpc_gpfs_pool_free_bytes", "Free full blocks in a GPFS storage pool.", "fs", "pool"),
    gauge("hpc_gpfs_health_status",
          "1 for the state a GPFS component or entity is in (mmhealth node show), 0 for the other states.",
          "component", "entity", "entity_type", "status"),
    gauge("hpc_gpfs_health_event",
          "1 for each event mmhealth reports active on a GPFS component (hidden events left out); severity is TIP, "
          "INFO, WARNING or ERROR (Scale 5.1+).", "component", "entity", "entity_type", "event", "severity"),
    gauge("hpc_gpfs_state",
          "1 for the state this node's GPFS daemon is in (mmgetstate: active, arbitrating, down, unknown), 0 for "
          "the others.", "state"),
    gauge("hpc_gpfs_waiters",
          "Threads of this node's GPFS daemon waiting now, by thread name (mmdiag --waiters).", "thread"),
    histogram("hpc_gpfs_waiter_seconds",
              "How long the GPFS daemon's waiting threads have waited so far: a distribution of now, rebuilt each "
              "refresh (never rate() it)."),
    gauge("hpc_gpfs_waiter_longest_seconds",
          "The longest current wait of a GPFS daemon thread on this node, 0 when none waits (mmdiag --waiters)."),
    *(gauge(name, doc, "fs") for name, _, doc in USAGE_FAMILIES),
    *(gauge(f"hpc_gpfs_inodes_{kind}", f"{doc} in a GPFS filesystem (mmdf -Y inode).", "fs")
      for kind, doc in INODE_FAMILIES.items()),
    *(gauge(name, doc) for name, _, doc in STATE_FAMILIES),
])


def _error(source: str):
    def report(reason: str) -> None:
        record_parse_error(source)
        log_once(log, source, "skipped part of %s output: %s", source, reason)
    return report


@register
class GpfsCollector(Collector):
    name = "gpfs"
    help = "IBM Storage Scale (GPFS): per-filesystem I/O (mmpmon), usage (mmdf), component health (mmhealth)"
    kind = "snapshot"
    # Families built once per snapshot and reused until the next refresh (their bytes too); the key
    # holds the instance, so one class-wide cache serves the one collector an agent runs.
    _families = FamilyCache()
    default_agents = frozenset({"node", "cluster"})
    families = FAMILIES
    options = (
        Option("bin-dir", "/usr/lpp/mmfs/bin", "directory holding mmpmon, mmdf, mmhealth"),
        Option("refresh-interval", 30.0, "time between mmpmon fs_io_s reads", type=opt.duration),
        Option("health-interval", 60.0, "time between mmhealth runs; 0 disables", type=opt.duration),
        Option("mmdf-interval", None, "time between mmdf runs; 0 disables; auto: 10m in the cluster agent, "
                                      "off in the node agent (mmdf is cluster-wide and costly)",
               type=opt.auto(opt.duration), format=opt.show_auto),
        Option("filesystems", (), "comma-separated filesystems for mmdf (empty: those mmpmon reports)",
               type=opt.names),
        Option("state-interval", 60.0, "time between mmgetstate runs; 0 disables", type=opt.duration),
        Option("waiters-interval", 60.0, "time between mmdiag --waiters runs; 0 disables", type=opt.duration),
        Option("waiters-exclude", opt.regexp("EventsExporterSenderThread|Fsck"),
               "regexp of waiter thread names to ignore (threads that wait by design)", type=opt.regexp),
        Option("waiters-buckets", (1.0, 5.0, 15.0, 60.0, 300.0, 3600.0),
               "upper bounds of the waiter histogram buckets (seconds or durations)", type=opt.buckets),
        Option("timeout", 60.0, "how long each command may take", type=opt.duration),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.bin_dir = ctx.option("bin-dir")
        self.timeout = ctx.option("timeout")
        self.filesystems = list(ctx.option("filesystems"))
        self.io = SnapshotSource("gpfs_mmpmon", self.refresh_io, ctx.option("refresh-interval"))
        self._sources: list[SnapshotSource] = [self.io]
        self.health: SnapshotSource | None = None
        self.usage: SnapshotSource | None = None
        health_interval = ctx.option("health-interval")
        if health_interval > 0:
            self.health = SnapshotSource("gpfs_mmhealth", self.refresh_health, health_interval)
            self._sources.append(self.health)
        self.state: SnapshotSource | None = None
        self.waiters: SnapshotSource | None = None
        self.waiters_exclude = ctx.option("waiters-exclude") or re.compile("^$")
        self.waiter_buckets = list(ctx.option("waiters-buckets"))
        state_interval = ctx.option("state-interval")
        if state_interval > 0:
            self.state = SnapshotSource("gpfs_mmgetstate", self.refresh_state, state_interval)
            self._sources.append(self.state)
        waiters_interval = ctx.option("waiters-interval")
        if waiters_interval > 0:
            self.waiters = SnapshotSource("gpfs_waiters", self.refresh_waiters, waiters_interval)
            self._sources.append(self.waiters)
        mmdf_interval = ctx.option("mmdf-interval")
        if mmdf_interval is None:
            mmdf_interval = MMDF_AUTO_CLUSTER_INTERVAL if ctx.agent == "cluster" else 0.0
        if mmdf_interval > 0:
            self.usage = SnapshotSource("gpfs_mmdf", self.refresh_usage, mmdf_interval)
            self._sources.append(self.usage)

    def _bin(self, name: str) -> str:
        return os.path.join(self.bin_dir, name)

    def available(self) -> str | None:
        mmpmon = self._bin("mmpmon")
        if not os.access(mmpmon, os.X_OK):
            return f"{mmpmon} not found (no Storage Scale here)"
        return None

    def sources(self) -> list[SnapshotSource]:
        return list(self._sources)

    # ------------------------------------------------------------------ refreshes (background threads)
    def refresh_io(self) -> list[FsIo]:
        # mmpmon reads its requests from a command file (-i); our commands get no stdin.
        with tempfile.NamedTemporaryFile("w", prefix="hpcwatch-mmpmon-", suffix=".cmd") as cmd:
            cmd.write("fs_io_s\n")
            cmd.flush()
            out = run_command([self._bin("mmpmon"), "-p", "-s", "-i", cmd.name], self.timeout)
        return parse_fs_io_s(out, _error("gpfs_mmpmon"))

    def refresh_health(self) -> HealthSnapshot:
        out = run_command([self._bin("mmhealth"), "node", "show", "-Y"], self.timeout)
        return parse_mmhealth(out, _error("gpfs_mmhealth")), parse_mmhealth_events(out, _error("gpfs_mmhealth"))

    def refresh_state(self) -> DaemonState:
        out = run_command([self._bin("mmgetstate"), "-Y"], self.timeout)
        state = parse_mmgetstate(out, _error("gpfs_mmgetstate"))
        if state is None:
            raise RuntimeError(f"mmgetstate -Y printed no state row: {out.strip()[:200]!r}")
        return state

    def refresh_waiters(self) -> list[Waiter]:
        out = run_command([self._bin("mmdiag"), "--waiters", "-Y"], self.timeout)
        return self.keep_waiters(parse_waiters(out, _error("gpfs_waiters")))

    def keep_waiters(self, waiters: list[Waiter]) -> list[Waiter]:
        return [w for w in waiters if not self.waiters_exclude.search(w.thread)]

    def refresh_usage(self) -> dict[str, FsUsage]:
        filesystems = self.filesystems
        if not filesystems:
            io = self.io.value if self.io.value is not None else self.refresh_io()
            filesystems = sorted({f.filesystem for f in io})
        return {fs: parse_mmdf(run_command([self._bin("mmdf"), fs, "-Y"], self.timeout), _error("gpfs_mmdf"))
                for fs in filesystems}

    # ------------------------------------------------------------------ scrape
    def collect(self) -> Iterator[Metric]:
        values = tuple(s.value if s is not None else None
                       for s in (self.io, self.usage, self.health, self.state, self.waiters))
        yield from self._families.get((self, *values), lambda: self._build(*values))

    def _build(self, io, usage, health, state, waiters) -> Iterator[Metric]:
        if io is not None:
            yield from io_families(io)
        if usage is not None:
            yield from usage_families(usage)
        if health is not None:
            yield from health_families(*health)
        if state is not None:
            yield from state_families(state)
        if waiters is not None:
            yield from waiter_families(waiters, self.waiter_buckets)


def io_families(stats: list[FsIo]) -> Iterator[Metric]:
    br = FAMILIES.new("hpc_gpfs_read_bytes_total")
    bw = FAMILIES.new("hpc_gpfs_write_bytes_total")
    ops = FAMILIES.new("hpc_gpfs_operations_total")
    disks = FAMILIES.new("hpc_gpfs_fs_disks")
    for s in sorted(stats, key=lambda s: (s.cluster, s.filesystem)):
        base = [s.cluster, s.filesystem]
        br.add_metric(base, s.bytes_read)
        bw.add_metric(base, s.bytes_written)
        disks.add_metric(base, s.disks)
        for op, n in sorted(s.operations.items()):
            ops.add_metric(base + [op], n)
    yield from (br, bw, ops, disks)


def usage_families(usage: dict[str, FsUsage]) -> Iterator[Metric]:
    for name, attr, _ in USAGE_FAMILIES:
        fam = FAMILIES.new(name)
        for fs, u in sorted(usage.items()):
            v = getattr(u, attr)
            if v is not None:
                fam.add_metric([fs], v)
        yield fam
    size = FAMILIES.new("hpc_gpfs_pool_size_bytes")
    free = FAMILIES.new("hpc_gpfs_pool_free_bytes")
    for fs, u in sorted(usage.items()):
        for pool, (s, f) in sorted(u.pools.items()):
            size.add_metric([fs, pool], s)
            free.add_metric([fs, pool], f)
    yield from (size, free)
    for kind in INODE_FAMILIES:
        fam = FAMILIES.new(f"hpc_gpfs_inodes_{kind}")
        for fs, u in sorted(usage.items()):
            if kind in u.inodes:
                fam.add_metric([fs], u.inodes[kind])
        yield fam


def health_families(states: list[HealthState], events: list[HealthEvent]) -> Iterator[Metric]:
    fam = FAMILIES.new("hpc_gpfs_health_status")
    seen: set[tuple[str, str, str]] = set()
    for s in sorted(states, key=lambda s: (s.component, s.entity, s.entity_type)):
        key = (s.component, s.entity, s.entity_type)
        if key in seen:
            continue
        seen.add(key)
        for state in sorted(set(HEALTH_STATES) | {s.status}):
            fam.add_metric(list(key) + [state], 1 if state == s.status else 0)
    yield fam
    ev = FAMILIES.new("hpc_gpfs_health_event")
    for e in sorted(set(events), key=lambda e: (e.component, e.entity, e.entity_type, e.event, e.severity)):
        ev.add_metric([e.component, e.entity, e.entity_type, e.event, e.severity], 1)
    yield ev


def state_families(state: DaemonState) -> Iterator[Metric]:
    fam = FAMILIES.new("hpc_gpfs_state")
    for s in sorted(set(GPFS_STATES) | {state.state}):
        fam.add_metric([s], 1 if s == state.state else 0)
    yield fam
    for name, attr, _ in STATE_FAMILIES:
        fam = FAMILIES.new(name)
        value = getattr(state, attr)
        if value is not None:
            fam.add_metric([], value)
        yield fam


def waiter_families(waiters: list[Waiter], bounds: list[float]) -> Iterator[Metric]:
    count = FAMILIES.new("hpc_gpfs_waiters")
    by_thread: dict[str, int] = {}
    for w in waiters:
        by_thread[w.thread] = by_thread.get(w.thread, 0) + 1
    for thread, n in sorted(by_thread.items()):
        count.add_metric([thread], n)
    yield count
    hist = FAMILIES.new("hpc_gpfs_waiter_seconds")
    buckets = [(repr(float(b)), sum(1 for w in waiters if w.seconds <= b)) for b in bounds]
    hist.add_metric([], buckets + [("+Inf", len(waiters))], sum(w.seconds for w in waiters))
    yield hist
    longest = FAMILIES.new("hpc_gpfs_waiter_longest_seconds")
    longest.add_metric([], max((w.seconds for w in waiters), default=0.0))
    yield longest
