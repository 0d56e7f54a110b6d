"""`beegfs`: BeeGFS request counts per operation, metadata and storage, from beegfs-ctl (snapshot)."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator

from hpcwatch.exporters.beegfs.clientstats import ClientStatsSum, parse_clientstats
from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
from prometheus_client.core import CounterMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.beegfs")

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
    options = (
        Option("ctl", "beegfs-ctl", "beegfs-ctl binary"),
        Option("cfg-file", "", "beegfs-client.conf to use (empty: beegfs-ctl's default)"),
        Option("refresh-interval", 30.0, "seconds between beegfs-ctl runs", type=float),
        Option("timeout", 30.0, "seconds each beegfs-ctl run may take", type=float),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        o = ctx.options
        self.ctl = o.get("ctl") or "beegfs-ctl"
        self.cfg = o.get("cfg-file") or ""
        self.timeout = float(o.get("timeout", 30.0))
        interval = float(o.get("refresh-interval", 30.0))
        self.stats = {t: SnapshotSource(f"beegfs_{t}", self._refresher(t), interval) for t in NODE_TYPES}

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """The meta and storage clientstats fixtures."""
        fix = os.path.join(repo, "tests", "fixtures", "beegfs")
        c = cls(CollectorContext(options={o.name: o.default for o in cls.options}, agent="cluster"))
        for node_type in NODE_TYPES:
            with open(os.path.join(fix, f"clientstats_{node_type}.txt")) as fh:
                out = fh.read()
            c.stats[node_type] = SnapshotSource(f"beegfs_{node_type}", lambda out=out: parse_clientstats(out), 30.0)
            c.stats[node_type].refresh_now()
        return [c]

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
    req = CounterMetricFamily("hpc_beegfs_requests", "Requests all clients sent to BeeGFS metadata or storage "
                              "servers (the [sum] column).", labels=["nodetype"])
    ops = CounterMetricFamily("hpc_beegfs_operations", "Requests all clients sent to BeeGFS metadata or storage "
                              "servers, by operation (beegfs-ctl --clientstats).", labels=["nodetype", "operation"])
    byt = CounterMetricFamily("hpc_beegfs_bytes", "Bytes all clients read from or wrote to BeeGFS storage "
                              "servers.", labels=["nodetype", "direction"])
    for node_type, s in sorted(stats.items()):
        if s.requests is not None:
            req.add_metric([node_type], s.requests)
        for op, v in sorted(s.operations.items()):
            ops.add_metric([node_type, op], v)
        for direction, v in sorted(s.bytes.items()):
            byt.add_metric([node_type, direction], v)
    yield from (req, ops, byt)
