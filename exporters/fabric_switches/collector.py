"""`fabric_switches`: switch port counters and the link map of the whole InfiniBand fabric (cluster agent).

One background refresh per interval (SnapshotSource): the topology from `ibnetdiscover --ports`
(re-discovered every discovery-interval, the last good one kept when a discovery fails), then
`perfquery -x -l <lid> 255` for every switch, at most `concurrency` at a time, each with its own
timeout. A switch whose PMA lacks AdditionalPortCountersExtended gets its error counters from a second,
basic `perfquery -l <lid> 255`. One switch that does not answer never hides the others.
"""

from __future__ import annotations

import dataclasses
import logging
import shutil
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import CommandError, run_command
from hpcwatch.exporters.fabric.pma import (
    ERROR_COUNTERS,
    PORT_COUNTERS_WIDTH,
    TRAFFIC_COUNTERS,
    TRAFFIC_HELP,
    is_saturated,
)
from hpcwatch.exporters.fabric_switches.parse import (
    PortCounters,
    Switch,
    Topology,
    lanes,
    parse_perfquery,
    parse_ports_report,
    rate_bytes,
)
from hpcwatch.exporters.families import FamilyTable, counter, gauge
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.fabric_switches")

FAMILIES = FamilyTable([
    gauge("hpc_fabric_switch_info",
          "InfiniBand switch identity, always 1: GUID, name (node description or node-name-map entry) and port-0 "
          "LID.", "switch_guid", "switch_name", "lid"),
    gauge("hpc_fabric_switch_query_success",
          "1 when the last perfquery of the switch succeeded, 0 when it failed or timed out.", "switch_guid"),
    gauge("hpc_fabric_link_info",
          "Link map, always 1: what sits on the other end of each connected switch port (port GUID, port number, "
          "name and type CA, SW or RT).",
          "switch_guid", "port", "remote_guid", "remote_port", "remote_name", "remote_type"),
    gauge("hpc_fabric_switch_port_width_lanes",
          "Active link width of a connected switch port in lanes (4 for 4x); a drop from 4 is a degraded cable or "
          "connector.", "switch_guid", "port"),
    gauge("hpc_fabric_switch_port_rate_bytes_per_second",
          "Nominal data rate of a connected switch port (active width times lane speed).", "switch_guid", "port"),
    counter("hpc_fabric_switch_port_errors_total",
            "IB PMA error counters of a switch port by counter (symbol_error, link_downed, ...).",
            "switch_guid", "port", "counter"),
    counter("hpc_fabric_switch_port_transmit_wait_total",
            "Ticks a switch port had data to send but no flow-control credits (PortXmitWait).",
            "switch_guid", "port"),
    gauge("hpc_fabric_switch_port_pma_saturated",
          "1 for each fixed-width PortCounters counter of a switch port pinned at its maximum; counters below their"
          " maximum have no series.", "switch_guid", "port", "counter"),
    gauge("hpc_fabric_topology_discovery_timestamp_seconds",
          "Unix time of the ibnetdiscover run whose topology is in use."),
    *(counter(f"hpc_fabric_switch_port_{suffix}_total", "Switch port: " + doc[0].lower() + doc[1:],
              "switch_guid", "port") for suffix, doc in TRAFFIC_HELP.items()),
])

_BASIC_ONLY = set(ERROR_COUNTERS) | {"port_xmit_wait"}


@dataclasses.dataclass
class SwitchReading:
    """Counters of one switch's ports in one refresh: value and whether it is pinned at its width."""

    guid: str
    ok: bool
    ports: dict[int, dict[str, int]] = dataclasses.field(default_factory=dict)
    saturated: dict[int, list[str]] = dataclasses.field(default_factory=dict)
    error: str = ""


@dataclasses.dataclass
class FabricSnapshot:
    topology: Topology
    discovered_at: float  # unix time of the topology in use
    readings: dict[str, SwitchReading]


def merge_counters(ext: dict[int, PortCounters], basic: dict[int, PortCounters]) -> SwitchReading:
    """Extended counters first; fixed-width PortCounters fill what the extended set lacks."""
    reading = SwitchReading(guid="", ok=True)
    for port in sorted(set(ext) | set(basic)):
        if port == 0:  # enhanced switch port 0 is the management port, not a link
            continue
        values: dict[str, int] = {}
        pinned: list[str] = []
        if port in ext:
            values.update(ext[port].values)
        if port in basic:
            for name, v in basic[port].values.items():
                if name in values:
                    continue
                values[name] = v
                if is_saturated(name, v):
                    pinned.append(name)
        reading.ports[port] = values
        if pinned:
            reading.saturated[port] = sorted(pinned)
    return reading


def needs_basic(ext: dict[int, PortCounters]) -> bool:
    """True when the extended query carried no error counters (no AdditionalPortCountersExtended)."""
    return not ext or any(not (_BASIC_ONLY & set(pc.values)) for p, pc in ext.items() if p)


@register
class FabricSwitchesCollector(Collector):
    name = "fabric_switches"
    help = "InfiniBand switch port counters and link map through infiniband-diags (ibnetdiscover, perfquery)"
    kind = "snapshot"
    default_agents: frozenset[str] = frozenset()
    families = FAMILIES
    options = (
        Option("interval", 60.0, "time between counter refreshes", type=opt.duration),
        Option("discovery-interval", 600.0, "time between topology discoveries (ibnetdiscover)", type=opt.duration),
        Option("timeout", 30.0, "how long each ibnetdiscover or perfquery call may take", type=opt.duration),
        Option("concurrency", 8, "perfquery calls running at once", type=opt.positive_count),
        Option("node-name-map", "", "node name map file passed to ibnetdiscover --node-name-map"),
        Option("ca", "", "local HCA to use (-C), e.g. mlx5_0; empty: the first active port"),
        Option("ca-port", 0, "local HCA port to use (-P); 0: the first active port", type=opt.count),
        Option("ibnetdiscover", "ibnetdiscover", "ibnetdiscover binary"),
        Option("perfquery", "perfquery", "perfquery binary"),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        o = ctx.option
        self.interval = o("interval")
        self.discovery_interval = o("discovery-interval")
        self.timeout = o("timeout")
        self.concurrency = o("concurrency")
        self.node_name_map = o("node-name-map")
        self.ibnetdiscover = o("ibnetdiscover")
        self.perfquery = o("perfquery")
        self.local = (["-C", o("ca")] if o("ca") else []) + (["-P", str(o("ca-port"))] if o("ca-port") else [])
        self._topology: Topology | None = None
        self._discovered_at = 0.0  # unix time
        self._discovered_mono = float("-inf")
        self._lock = threading.Lock()
        self._rendered: tuple[FabricSnapshot, list[Metric]] | None = None
        self.source: SnapshotSource[FabricSnapshot] = SnapshotSource("fabric_switches", self.refresh,
                                                                     self.interval)

    def available(self) -> str | None:
        for binary in (self.ibnetdiscover, self.perfquery):
            if shutil.which(binary) is None:
                return f"{binary} not found (install infiniband-diags)"
        return None

    def sources(self) -> list[SnapshotSource]:
        return [self.source]

    # -- refresh (background thread) --
    def discover(self) -> Topology:
        argv = [self.ibnetdiscover, *self.local, "--ports"]
        if self.node_name_map:
            argv += ["--node-name-map", self.node_name_map]
        topo = parse_ports_report(run_command(argv, self.timeout))
        if topo.skipped:
            record_parse_error("fabric_ibnetdiscover", topo.skipped)
        if not topo.links:
            raise CommandError("ibnetdiscover --ports reported no ports")
        return topo

    def topology(self) -> tuple[Topology, float]:
        """The fabric topology, re-discovered when older than discovery-interval; the last good one on failure."""
        if time.monotonic() - self._discovered_mono >= self.discovery_interval or self._topology is None:
            try:
                self._topology = self.discover()
                self._discovered_at = time.time()
                self._discovered_mono = time.monotonic()
            except CommandError as exc:
                if self._topology is None:
                    raise
                log_once(log, "discovery", "ibnetdiscover failed, keeping the topology from %s: %s",
                         time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self._discovered_at)), exc)
        return self._topology, self._discovered_at

    def _perfquery(self, lid: int, extended: bool) -> dict[int, PortCounters]:
        argv = [self.perfquery, *self.local, *(["-x"] if extended else []), "-l", str(lid), "255"]
        ports, skipped = parse_perfquery(run_command(argv, self.timeout))
        if skipped:
            record_parse_error("fabric_perfquery", skipped)
        return ports

    def query_switch(self, switch: Switch) -> SwitchReading:
        try:
            try:
                ext = self._perfquery(switch.lid, extended=True)
            except CommandError as exc:  # a PMA without PortCountersExtended: basic counters only
                ext, ext_error = {}, exc
            else:
                ext_error = None
            try:
                basic = self._perfquery(switch.lid, extended=False) if needs_basic(ext) else {}
            except CommandError:
                if ext_error is not None or not ext:
                    raise ext_error or CommandError(f"perfquery -x of lid {switch.lid} reported no ports")  # noqa: B904
                basic = {}
        except CommandError as exc:
            log_once(log, f"switch:{switch.guid}:{exc}", "perfquery of switch %s (%s, lid %d) failed: %s",
                     switch.guid, switch.name, switch.lid, exc)
            return SwitchReading(guid=switch.guid, ok=False, error=str(exc))
        reading = merge_counters(ext, basic)
        reading.guid = switch.guid
        return reading

    def refresh(self) -> FabricSnapshot:
        with self._lock:
            topo, discovered_at = self.topology()
        switches = list(topo.switches.values())
        with ThreadPoolExecutor(max_workers=min(self.concurrency, max(1, len(switches))),
                                thread_name_prefix="perfquery") as pool:
            readings = {r.guid: r for r in pool.map(self.query_switch, switches)}
        return FabricSnapshot(topology=topo, discovered_at=discovered_at, readings=readings)

    # -- scrape (reads the last good snapshot, never runs a command) --
    def collect(self) -> Iterator[Metric]:
        snap = self.source.value
        if snap is None:
            return
        # A snapshot never changes once made, so its ~100k samples are rendered once, not per scrape.
        cached = self._rendered
        if cached is None or cached[0] is not snap:
            cached = self._rendered = (snap, render(snap))
        yield from cached[1]

    def close(self) -> None:
        self.source.stop()


def render(snap: FabricSnapshot) -> list[Metric]:
    """Metric families for one snapshot (pure: also used by the benchmark and the docs)."""
    info = FAMILIES.new("hpc_fabric_switch_info")
    up = FAMILIES.new("hpc_fabric_switch_query_success")
    link = FAMILIES.new("hpc_fabric_link_info")
    width = FAMILIES.new("hpc_fabric_switch_port_width_lanes")
    rate = FAMILIES.new("hpc_fabric_switch_port_rate_bytes_per_second")
    errors = FAMILIES.new("hpc_fabric_switch_port_errors_total")
    wait = FAMILIES.new("hpc_fabric_switch_port_transmit_wait_total")
    saturated = FAMILIES.new("hpc_fabric_switch_port_pma_saturated")
    discovered = FAMILIES.new("hpc_fabric_topology_discovery_timestamp_seconds")
    discovered.add_metric([], snap.discovered_at)
    traffic = {s: FAMILIES.new(f"hpc_fabric_switch_port_{s}_total") for s in TRAFFIC_HELP}
    for guid, sw in sorted(snap.topology.switches.items()):
        info.add_metric([guid, sw.name, str(sw.lid)], 1)
        for port, pl in sorted(sw.ports.items()):
            if not pl.connected:
                continue
            labels = [guid, str(port)]
            link.add_metric(labels + [pl.remote_guid, str(pl.remote_port), pl.remote_name, pl.remote_type], 1)
            n = lanes(pl.width)
            if n is not None:
                width.add_metric(labels, n)
            r = rate_bytes(pl.width, pl.speed)
            if r is not None:
                rate.add_metric(labels, r)
        reading = snap.readings.get(guid)
        if reading is None:
            continue
        up.add_metric([guid], 1 if reading.ok else 0)
        for port, values in sorted(reading.ports.items()):
            labels = [guid, str(port)]
            for name, (suffix, mult) in TRAFFIC_COUNTERS.items():
                if name in values:
                    traffic[suffix].add_metric(labels, values[name] * mult)
            for name in ERROR_COUNTERS:
                if name in values:
                    errors.add_metric(labels + [name], values[name])
            if "port_xmit_wait" in values:
                wait.add_metric(labels, values["port_xmit_wait"])
            for name in reading.saturated.get(port, ()):
                if name in PORT_COUNTERS_WIDTH:
                    saturated.add_metric(labels + [name], 1)
    return [info, up, link, width, rate, *traffic.values(), errors, wait, saturated, discovered]
