"""`beegfs`: BeeGFS request counts per operation, metadata and storage, from beegfs-ctl (snapshot)."""

from __future__ import annotations

import logging
import shutil
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.beegfs.clientstats import ClientStatsSum, parse_clientstats
from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.families import FamilyTable, counter
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.beegfs")

FAMILIES = FamilyTable([
    counter("hpc_beegfs_requests_total",
            "Requests all clients sent to BeeGFS metadata or storage servers (the [sum] column).", "nodetype"),
    counter("hpc_beegfs_operations_total",
            "Requests all clients sent to BeeGFS metadata or storage servers, by operation (beegfs-ctl "
            "--clientstats).", "nodetype", "operation"),
    counter("hpc_beegfs_bytes_total",
            "Bytes all clients read from or wrote to BeeGFS storage servers.", "nodetype", "direction"),
])

NODE_TYPES = ("meta", "storage")


@register
class BeegfsCollector(Collector):
    name = "beegfs"
    help = "BeeGFS metadata and storage requests per operation and bytes (beegfs-ctl --clientstats)"
    kind = "snapshot"
    # Families built once per snapshot and reused until the next refresh (their bytes too); the key
    # holds the instance, so one class-wide cache serves the one collector an agent runs.
    _families = FamilyCache()
    default_agents = frozenset({"cluster"})
    families = FAMILIES
    options = (
        Option("ctl", "beegfs-ctl", "beegfs-ctl binary"),
        Option("cfg-file", "", "beegfs-client.conf to use (empty: beegfs-ctl's default)"),
        Option("refresh-interval", 30.0, "time between beegfs-ctl runs", type=opt.duration),
        Option("timeout", 30.0, "how long each beegfs-ctl run may take", type=opt.duration),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.ctl = ctx.option("ctl")
        self.cfg = ctx.option("cfg-file")
        self.timeout = ctx.option("timeout")
        interval = ctx.option("refresh-interval")
        self.stats = {t: SnapshotSource(f"beegfs_{t}", self._refresher(t), interval) for t in NODE_TYPES}

    def available(self) -> str | None:
        return None if shutil.which(self.ctl) else f"{self.ctl} not found (no BeeGFS tools here)"

    def sources(self) -> list[SnapshotSource]:
        return list(self.stats.values())

    def argv(self, node_type: str) -> list[str]:
        # --interval=0 prints one report of the totals and exits instead of refreshing forever.
        argv = [self.ctl, "--clientstats", f"--nodetype={node_type}", "--interval=0"]
        if self.cfg:
            argv.append(f"--cfgFile={self.cfg}")
        return argv

    def _refresher(self, node_type: str):
        def refresh() -> ClientStatsSum:
            return parse_clientstats(run_command(self.argv(node_type), self.timeout), _parse_error)
        return refresh

    def collect(self) -> Iterator[Metric]:
        values = {t: s.value for t, s in self.stats.items() if s.value is not None}
        yield from self._families.get((self, *values.values()), lambda: families(values))


def _parse_error(reason: str) -> None:
    record_parse_error("beegfs_clientstats")
    log_once(log, "parse", "skipped part of beegfs-ctl output: %s", reason)


def families(stats: dict[str, ClientStatsSum]) -> Iterator[Metric]:
    req = FAMILIES.new("hpc_beegfs_requests_total")
    ops = FAMILIES.new("hpc_beegfs_operations_total")
    byt = FAMILIES.new("hpc_beegfs_bytes_total")
    for node_type, s in sorted(stats.items()):
        if s.requests is not None:
            req.add_metric([node_type], s.requests)
        for op, v in sorted(s.operations.items()):
            ops.add_metric([node_type, op], v)
        for direction, v in sorted(s.bytes.items()):
            byt.add_metric([node_type, direction], v)
    yield from (req, ops, byt)
