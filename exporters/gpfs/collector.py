"""`gpfs`: IBM Storage Scale per-filesystem I/O (mmpmon fs_io_s), usage (mmdf -Y), health (mmhealth).

Each command has its own snapshot source and interval: mmpmon is cheap and local; mmhealth reads the
local health monitor; mmdf asks the filesystem manager for cluster-wide usage, so it runs on a long
interval and, by default, only in the cluster agent (one node asks for the whole cluster).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterator

from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.gpfs.parse import (
    FsIo,
    FsUsage,
    HealthState,
    parse_fs_io_s,
    parse_mmdf,
    parse_mmhealth,
)
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.gpfs")

# Every state mmhealth documents; the current one is 1, the rest 0, so alerts can match on == 1.
HEALTH_STATES = ("HEALTHY", "DEGRADED", "FAILED", "DEPEND", "TIPS", "CHECKING", "STARTING", "STOPPED",
                 "SUSPENDED", "DISABLED", "UNKNOWN")
MMDF_AUTO_CLUSTER_INTERVAL = 600.0


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
    default_agents = frozenset({"node", "cluster"})
    options = (
        Option("bin-dir", "/usr/lpp/mmfs/bin", "directory holding mmpmon, mmdf, mmhealth"),
        Option("refresh-interval", 30.0, "seconds between mmpmon fs_io_s reads", type=float),
        Option("health-interval", 60.0, "seconds between mmhealth runs; 0 disables", type=float),
        Option("mmdf-interval", -1.0, "seconds between mmdf runs; 0 disables; -1: 600 in the cluster agent, "
                                      "off in the node agent (mmdf is cluster-wide and costly)", type=float),
        Option("filesystems", "", "comma-separated filesystems for mmdf (empty: those mmpmon reports)"),
        Option("timeout", 60.0, "seconds each command may take", type=float),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        o = ctx.options
        self.bin_dir = o.get("bin-dir") or "/usr/lpp/mmfs/bin"
        self.timeout = float(o.get("timeout", 60.0))
        self.filesystems = [f.strip() for f in (o.get("filesystems") or "").split(",") if f.strip()]
        self.io = SnapshotSource("gpfs_mmpmon", self.refresh_io, float(o.get("refresh-interval", 30.0)))
        self._sources: list[SnapshotSource] = [self.io]
        self.health: SnapshotSource | None = None
        self.usage: SnapshotSource | None = None
        health_interval = float(o.get("health-interval", 60.0))
        if health_interval > 0:
            self.health = SnapshotSource("gpfs_mmhealth", self.refresh_health, health_interval)
            self._sources.append(self.health)
        mmdf_interval = float(o.get("mmdf-interval", -1.0))
        if mmdf_interval < 0:
            mmdf_interval = MMDF_AUTO_CLUSTER_INTERVAL if ctx.agent == "cluster" else 0.0
        if mmdf_interval > 0:
            self.usage = SnapshotSource("gpfs_mmdf", self.refresh_usage, mmdf_interval)
            self._sources.append(self.usage)

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """mmpmon, mmdf and mmhealth fixtures, as the cluster agent would hold them."""
        fix = os.path.join(repo, "tests", "fixtures", "gpfs")

        def text(name: str) -> str:
            with open(os.path.join(fix, name)) as fh:
                return fh.read()
        c = cls(CollectorContext(options={o.name: o.default for o in cls.options}, agent="cluster"))
        c.io = SnapshotSource("gpfs_mmpmon", lambda: parse_fs_io_s(text("mmpmon_fs_io_s.txt")), 30.0)
        c.usage = SnapshotSource("gpfs_mmdf", lambda: {"scratch": parse_mmdf(text("mmdf_scratch_Y.txt"))}, 600.0)
        c.health = SnapshotSource("gpfs_mmhealth", lambda: parse_mmhealth(text("mmhealth_5.0.txt")), 60.0)
        c._sources = [c.io, c.health, c.usage]
        for s in c._sources:
            s.refresh_now()
        return [c]

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

    def refresh_health(self) -> list[HealthState]:
        out = run_command([self._bin("mmhealth"), "node", "show", "-Y"], self.timeout)
        return parse_mmhealth(out, _error("gpfs_mmhealth"))

    def refresh_usage(self) -> dict[str, FsUsage]:
        filesystems = self.filesystems
        if not filesystems:
            io = self.io.value if self.io.value is not None else self.refresh_io()
            filesystems = sorted({f.filesystem for f in io})
        return {fs: parse_mmdf(run_command([self._bin("mmdf"), fs, "-Y"], self.timeout), _error("gpfs_mmdf"))
                for fs in filesystems}

    # ------------------------------------------------------------------ scrape
    def collect(self) -> Iterator[Metric]:
        if self.io.value is not None:
            yield from io_families(self.io.value)
        if self.usage is not None and self.usage.value is not None:
            yield from usage_families(self.usage.value)
        if self.health is not None and self.health.value is not None:
            yield from health_families(self.health.value)


def io_families(stats: list[FsIo]) -> Iterator[Metric]:
    labels = ["cluster", "fs"]
    br = CounterMetricFamily("hpc_gpfs_read_bytes", "Bytes read from a GPFS filesystem by this node "
                             "(mmpmon fs_io_s _br_).", labels=labels)
    bw = CounterMetricFamily("hpc_gpfs_write_bytes", "Bytes written to a GPFS filesystem by this node "
                             "(mmpmon fs_io_s _bw_).", labels=labels)
    ops = CounterMetricFamily("hpc_gpfs_operations", "Calls this node made on a GPFS filesystem: open, close, "
                              "read, write, readdir, inode_update (mmpmon fs_io_s).", labels=labels + ["operation"])
    disks = GaugeMetricFamily("hpc_gpfs_fs_disks", "Disks (NSDs) in a GPFS filesystem mounted on this node.",
                              labels=labels)
    for s in sorted(stats, key=lambda s: (s.cluster, s.filesystem)):
        base = [s.cluster, s.filesystem]
        br.add_metric(base, s.bytes_read)
        bw.add_metric(base, s.bytes_written)
        disks.add_metric(base, s.disks)
        for op, n in sorted(s.operations.items()):
            ops.add_metric(base + [op], n)
    yield from (br, bw, ops, disks)


def usage_families(usage: dict[str, FsUsage]) -> Iterator[Metric]:
    simple = (
        ("hpc_gpfs_fs_size_bytes", "size", "Size of a GPFS filesystem (mmdf fsTotal)."),
        ("hpc_gpfs_fs_free_bytes", "free", "Free full blocks in a GPFS filesystem (mmdf fsTotal)."),
        ("hpc_gpfs_fs_free_fragments_bytes", "free_fragments", ("Free space in fragments (sub-blocks) of a GPFS "
                                                               "filesystem.")),
        ("hpc_gpfs_data_size_bytes", "data_size", "Capacity of the data disks of a GPFS filesystem."),
        ("hpc_gpfs_data_free_bytes", "data_free", "Free full blocks on the data disks of a GPFS filesystem."),
        ("hpc_gpfs_metadata_size_bytes", "metadata_size", "Capacity of the metadata disks of a GPFS filesystem."),
        ("hpc_gpfs_metadata_free_bytes", "metadata_free", ("Free full blocks on the metadata disks of a GPFS "
                                                          "filesystem.")),
    )
    for name, attr, doc in simple:
        fam = GaugeMetricFamily(name, doc, labels=["fs"])
        for fs, u in sorted(usage.items()):
            v = getattr(u, attr)
            if v is not None:
                fam.add_metric([fs], v)
        yield fam
    size = GaugeMetricFamily("hpc_gpfs_pool_size_bytes", "Size of a GPFS storage pool.", labels=["fs", "pool"])
    free = GaugeMetricFamily("hpc_gpfs_pool_free_bytes", "Free full blocks in a GPFS storage pool.",
                             labels=["fs", "pool"])
    for fs, u in sorted(usage.items()):
        for pool, (s, f) in sorted(u.pools.items()):
            size.add_metric([fs, pool], s)
            free.add_metric([fs, pool], f)
    yield from (size, free)
    for kind, doc in (("used", "Inodes in use"), ("free", "Allocated inodes not in use"),
                      ("allocated", "Inodes allocated"), ("max", "Most inodes the filesystem may allocate")):
        fam = GaugeMetricFamily(f"hpc_gpfs_inodes_{kind}", f"{doc} in a GPFS filesystem (mmdf -Y inode).",
                                labels=["fs"])
        for fs, u in sorted(usage.items()):
            if kind in u.inodes:
                fam.add_metric([fs], u.inodes[kind])
        yield fam


def health_families(states: list[HealthState]) -> Iterator[Metric]:
    fam = GaugeMetricFamily("hpc_gpfs_health_status", "1 for the state a GPFS component or entity is in "
                            "(mmhealth node show), 0 for the other states.",
                            labels=["component", "entity", "entity_type", "status"])
    seen: set[tuple[str, str, str]] = set()
    for s in sorted(states, key=lambda s: (s.component, s.entity, s.entity_type)):
        key = (s.component, s.entity, s.entity_type)
        if key in seen:
            continue
        seen.add(key)
        for state in sorted(set(HEALTH_STATES) | {s.status}):
            fam.add_metric(list(key) + [state], 1 if state == s.status else 0)
    yield fam
