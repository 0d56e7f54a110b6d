"""`fabric`: InfiniBand, RoCE and Omni-Path port counters of this node's RDMA devices, from sysfs.

The reader is thin and cheap: the layout of each device (its ports, counter file names, identity,
netdev) is listed once and re-listed every LAYOUT_TTL seconds or when the device set changes, and the
counter files stay open between scrapes and are re-read with pread(fd, n, 0), which makes sysfs run
the attribute's show() again (the seq_file rewinds at offset 0). A scrape then costs one syscall per
counter file. Parsing and the width table live in sysfs.py / pma.py.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
import resource
import threading
import time
from collections.abc import Iterator

from hpcwatch.exporters.fabric.pma import ERROR_COUNTERS, TRAFFIC_COUNTERS, TRAFFIC_HELP
from hpcwatch.exporters.fabric.sysfs import (
    PHYS_LINK_UP,
    STATE_ACTIVE,
    DeviceRecord,
    PortRecord,
    clean_label,
    parse_rate,
    parse_state,
    port_counters,
    split_hw_counters,
)
from hpcwatch.exporters.files import list_dir, log_once
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, Paths, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.fabric")

LAYOUT_TTL = 60.0  # seconds a device's listed layout is trusted before it is listed again
PARSE_SOURCE = "fabric_sysfs"


def read_small(path: str) -> str | None:
    """A sysfs attribute's text, or None when missing, vanished, unreadable or a directory.

    Same contract as files.read_text, but with os.open/os.read: half the cost per file, which is
    what keeps a scrape of 16 ports with ~40 counter files each near a millisecond.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096).decode("utf-8", "replace")
    except OSError:
        return None
    finally:
        os.close(fd)


class HeldFiles:
    """sysfs attribute files kept open between scrapes, up to a budget of descriptors.

    A file that fails to read (device removed: ENODEV; a directory) is closed and re-opened on the
    next read, so a driver reload costs one scrape of that device's data, never a stale value.
    """

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self._fds: dict[str, int] = {}

    def read(self, path: str) -> str | None:
        fd = self._fds.get(path)
        if fd is None:
            if len(self._fds) >= self.budget:
                return read_small(path)
            try:
                fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError:
                return None
            self._fds[path] = fd
        try:
            return os.pread(fd, 4096, 0).decode("utf-8", "replace")
        except OSError:
            del self._fds[path]
            os.close(fd)
            return None

    def forget(self, prefix: str) -> None:
        """Close every held file under `prefix` (a device that vanished or is re-listed)."""
        for path in [p for p in self._fds if p.startswith(prefix)]:
            os.close(self._fds.pop(path))

    def __len__(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        self.forget("")


def default_budget() -> int:
    """A quarter of the open-files soft limit, so held counter files never starve the HTTP server."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return min(soft // 4, 4096)


@dataclasses.dataclass
class _PortLayout:
    port: str
    path: str
    counters: list[tuple[str, str]]  # (name, path) of counters/*
    counters_ext: list[tuple[str, str]]  # pre-4.5 counters_ext/*
    hw: list[tuple[str, str]]  # ports/<n>/hw_counters/*
    link_layer: str
    netdev: str


@dataclasses.dataclass
class _DeviceLayout:
    identity: DeviceRecord
    hw: list[tuple[str, str]]  # device-level hw_counters/*
    ports: list[_PortLayout]
    listed_at: float


def _files(directory: str) -> list[tuple[str, str]]:
    return [(name, f"{directory}/{name}") for name in list_dir(directory)]


def _netdev(dev_path: str, port: str, port_path: str) -> str:
    """The netdev behind a port: the RoCE GID table's first entry, else the device's own net/ child."""
    name = clean_label(read_small(f"{port_path}/gid_attrs/ndevs/0"))
    if name:
        return name
    nets = list_dir(f"{dev_path}/device/net")
    if len(nets) == 1:
        return nets[0]
    for net in nets:  # a multi-port function (mlx4): dev_port is the 0-based port index
        dev_port = read_small(f"{dev_path}/device/net/{net}/dev_port")
        if dev_port is not None and dev_port.strip() == str(int(port) - 1):
            return net
    return ""


def list_device(root: str, device: str, hw_counters: bool, now: float) -> _DeviceLayout:
    """List one device's identity, ports and counter files (the slow, cached part)."""
    path = f"{root}/{device}"
    ident = DeviceRecord(
        device=device,
        hca_type=clean_label(read_small(f"{path}/hca_type")),
        firmware_version=clean_label(read_small(f"{path}/fw_ver")),
        board_id=clean_label(read_small(f"{path}/board_id")),
        node_guid=clean_label(read_small(f"{path}/node_guid")),
    )
    ports = []
    for port in list_dir(f"{path}/ports"):
        if not port.isdigit():
            continue
        pp = f"{path}/ports/{port}"
        ports.append(_PortLayout(
            port=port,
            path=pp,
            counters=_files(f"{pp}/counters"),
            counters_ext=_files(f"{pp}/counters_ext"),
            hw=_files(f"{pp}/hw_counters") if hw_counters else [],
            link_layer=clean_label(read_small(f"{pp}/link_layer")),
            netdev=_netdev(path, port, pp),
        ))
    ports.sort(key=lambda p: int(p.port))
    hw = _files(f"{path}/hw_counters") if hw_counters else []
    return _DeviceLayout(identity=ident, hw=hw, ports=ports, listed_at=now)


def read_port(layout: _PortLayout, device: str, files: HeldFiles) -> PortRecord:
    """One scrape of one port: state, rate and every counter file its layout lists."""
    rec = PortRecord(device=device, port=layout.port, link_layer=layout.link_layer, netdev=layout.netdev)
    read = files.read
    base = layout.path
    rec.state = parse_state(read(f"{base}/state"))
    rec.phys_state = parse_state(read(f"{base}/phys_state"))
    rec.rate_bytes = parse_rate(read(f"{base}/rate"))
    port_counters(rec, {n: read(p) for n, p in layout.counters}, {n: read(p) for n, p in layout.counters_ext})
    rec.hw_counters, rec.hw_gauges, skipped = split_hw_counters({n: read(p) for n, p in layout.hw})
    rec.skipped += skipped
    return rec


def read_device(layout: _DeviceLayout, files: HeldFiles) -> DeviceRecord:
    rec = dataclasses.replace(layout.identity)
    rec.hw_counters, rec.hw_gauges, rec.skipped = split_hw_counters({n: files.read(p) for n, p in layout.hw})
    return rec


def _families() -> dict[str, Metric]:
    dp = ["device", "port"]
    fams: dict[str, Metric] = {
        "info": GaugeMetricFamily(
            "hpc_fabric_port_info",
            "RDMA port identity, always 1: HCA type, firmware, board id, node GUID, link layer "
            "(InfiniBand or Ethernet for RoCE) and the netdev behind the port.",
            labels=dp + ["hca_type", "firmware_version", "board_id", "node_guid", "link_layer", "netdev"]),
        "state": GaugeMetricFamily(
            "hpc_fabric_port_state_id",
            "Logical port state: 1 Down, 2 Init, 3 Armed, 4 Active, 5 ActiveDefer.", labels=dp),
        "phys": GaugeMetricFamily(
            "hpc_fabric_port_physical_state_id",
            "Physical port state: 1 Sleep, 2 Polling, 3 Disabled, 4 PortConfigurationTraining, "
            "5 LinkUp, 6 LinkErrorRecovery, 7 PhyTest.", labels=dp),
        "up": GaugeMetricFamily(
            "hpc_fabric_port_up",
            "1 when the port is Active and its physical link is LinkUp, else 0.", labels=dp),
        "rate": GaugeMetricFamily(
            "hpc_fabric_port_rate_bytes_per_second",
            "Negotiated signalling rate of the port (width times lane speed) in bytes per second.",
            labels=dp),
        "errors": CounterMetricFamily(
            "hpc_fabric_port_errors",
            "Standard IB PMA error counters of the port by counter (symbol_error, link_downed, "
            "port_rcv_errors, ...); PortCounters values stop at their width, see "
            "hpc_fabric_port_pma_saturated.", labels=dp + ["counter"]),
        "wait": CounterMetricFamily(
            "hpc_fabric_port_transmit_wait",
            "Ticks during which the port had data to send but no flow-control credits (PortXmitWait); "
            "a congestion signal.", labels=dp),
        "saturated": GaugeMetricFamily(
            "hpc_fabric_port_pma_saturated",
            "1 for each fixed-width PMA counter (4, 8, 16 or 32 bits) pinned at its maximum, so its flat "
            "line is not mistaken for health; counters below their maximum have no series.",
            labels=dp + ["counter"]),
        "hw": CounterMetricFamily(
            "hpc_fabric_port_hw_events",
            "Per-port driver hw_counters by name, e.g. RoCE congestion (np_cnp_sent, rp_cnp_handled, "
            "np_ecn_marked_roce_packets) and retransmission (out_of_sequence, packet_seq_err, "
            "local_ack_timeout_err).", labels=dp + ["counter"]),
        "hw_level": GaugeMetricFamily(
            "hpc_fabric_port_hw_level",
            "Per-port driver hw_counters that are levels rather than event counts (active_*, "
            "*watermark*).", labels=dp + ["counter"]),
        "dev_hw": CounterMetricFamily(
            "hpc_fabric_device_hw_events",
            "Device-level driver hw_counters by name (e.g. Omni-Path hfi1 device counters).",
            labels=["device", "counter"]),
        "dev_hw_level": GaugeMetricFamily(
            "hpc_fabric_device_hw_level",
            "Device-level driver hw_counters that are levels rather than event counts.",
            labels=["device", "counter"]),
    }
    for suffix in dict.fromkeys(s for s, _ in TRAFFIC_COUNTERS.values()):
        fams[suffix] = CounterMetricFamily(f"hpc_fabric_port_{suffix}", TRAFFIC_HELP[suffix], labels=dp)
    return fams


def add_port(fams: dict[str, Metric], dev: DeviceRecord, rec: PortRecord) -> None:
    dp = [rec.device, rec.port]
    fams["info"].add_metric(dp + [dev.hca_type, dev.firmware_version, dev.board_id, dev.node_guid,
                                  rec.link_layer, rec.netdev], 1)
    if rec.state is not None:
        fams["state"].add_metric(dp, rec.state[0])
    if rec.phys_state is not None:
        fams["phys"].add_metric(dp, rec.phys_state[0])
    if rec.state is not None and rec.phys_state is not None:
        up = rec.state[0] == STATE_ACTIVE and rec.phys_state[0] == PHYS_LINK_UP
        fams["up"].add_metric(dp, 1 if up else 0)
    if rec.rate_bytes is not None:
        fams["rate"].add_metric(dp, rec.rate_bytes)
    for name, value in rec.traffic.items():
        fams[TRAFFIC_COUNTERS[name][0]].add_metric(dp, value)
    for name in ERROR_COUNTERS:
        if name in rec.errors:
            fams["errors"].add_metric(dp + [name], rec.errors[name])
    if rec.xmit_wait is not None:
        fams["wait"].add_metric(dp, rec.xmit_wait)
    for name, sat in sorted(rec.saturated.items()):
        if sat:
            fams["saturated"].add_metric(dp + [name], 1)
    for name, value in sorted(rec.hw_counters.items()):
        fams["hw"].add_metric(dp + [name], value)
    for name, value in sorted(rec.hw_gauges.items()):
        fams["hw_level"].add_metric(dp + [name], value)


def add_device(fams: dict[str, Metric], dev: DeviceRecord) -> None:
    for name, value in sorted(dev.hw_counters.items()):
        fams["dev_hw"].add_metric([dev.device, name], value)
    for name, value in sorted(dev.hw_gauges.items()):
        fams["dev_hw_level"].add_metric([dev.device, name], value)


@register
class FabricCollector(Collector):
    name = "fabric"
    help = "InfiniBand/RoCE/Omni-Path port state and counters from /sys/class/infiniband"
    kind = "live"
    default_agents = frozenset({"node"})
    options = (
        Option("ignored-devices", "", "regexp of RDMA device names to skip (e.g. '^mlx5_[23]$')"),
        Option("hw-counters", True, "read driver hw_counters (RoCE congestion, retransmission)", type=bool),
        Option("held-files", -1, "counter files kept open between scrapes (re-read with pread); "
               "-1: a quarter of the open-files soft limit, at most 4096; 0: open and close every time",
               type=int),
    )

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """The ConnectX-6 HDR, RoCE and saturated-counter fixture sysfs trees."""
        opts = {o.name: o.default for o in cls.options}
        base = os.path.join(repo, "tests", "fixtures", "fabric", "sysfs")
        return [cls(CollectorContext(paths=Paths(sysfs=os.path.join(base, tree)), options=opts))
                for tree in ("cx6_hdr", "cx6dx_roce", "saturated")]

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.root = ctx.paths.sys("class", "infiniband")
        pattern = ctx.option("ignored-devices")
        self.ignored = re.compile(pattern) if pattern else None
        self.hw_counters = bool(ctx.option("hw-counters"))
        held = int(ctx.option("held-files"))
        self.files = HeldFiles(default_budget() if held < 0 else held)
        self._layouts: dict[str, _DeviceLayout] = {}
        self._lock = threading.Lock()

    def available(self) -> str | None:
        return None if os.path.isdir(self.root) else f"{self.root} not found (no RDMA devices)"

    def _layout(self, device: str, now: float) -> _DeviceLayout:
        cached = self._layouts.get(device)
        if cached is None or now - cached.listed_at > LAYOUT_TTL:
            self.files.forget(f"{self.root}/{device}/")
            cached = list_device(self.root, device, self.hw_counters, now)
            self._layouts[device] = cached
        return cached

    def close(self) -> None:
        with self._lock:
            self.files.close()

    def collect(self) -> Iterator[Metric]:
        with self._lock:
            fams = self._collect()
        yield from fams.values()

    def _collect(self) -> dict[str, Metric]:
        now = time.monotonic()
        devices = [d for d in list_dir(self.root) if not (self.ignored and self.ignored.search(d))]
        for gone in set(self._layouts) - set(devices):
            del self._layouts[gone]
            self.files.forget(f"{self.root}/{gone}/")
        fams = _families()
        for device in devices:
            try:
                layout = self._layout(device, now)
                dev = read_device(layout, self.files)
                add_device(fams, dev)
            except Exception as exc:  # noqa: BLE001 - one broken device never hides the others
                log_once(log, f"device:{device}", "fabric: skipping %s/%s: %s", self.root, device, exc)
                record_parse_error(PARSE_SOURCE)
                continue
            skipped = dev.skipped
            for port in layout.ports:
                try:
                    rec = read_port(port, device, self.files)
                    add_port(fams, dev, rec)
                except Exception as exc:  # noqa: BLE001 - one broken port never hides the others
                    log_once(log, f"port:{port.path}", "fabric: skipping %s: %s", port.path, exc)
                    record_parse_error(PARSE_SOURCE)
                    continue
                skipped += rec.skipped
            if skipped:
                log_once(log, f"skipped:{device}", "fabric: %s: %d counter files unreadable or not a number "
                         "(e.g. 'N/A (no PMA)'), skipped", f"{self.root}/{device}", skipped,
                         level=logging.DEBUG)
        return fams
