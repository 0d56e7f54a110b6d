"""`fabric`: InfiniBand, RoCE and Omni-Path port counters of this node's RDMA devices, from sysfs.

The reader is thin and cheap: the layout of each device (its ports, counter file names, identity,
netdev) is listed once and re-listed every LAYOUT_TTL seconds or when the device set changes, and the
counter files stay open between scrapes and are re-read with pread(fd, n, 0) (files.HeldFiles),
which makes sysfs run the attribute's show() again. A scrape then costs one syscall per counter file
(sysfs has no batched read of several attributes).

The counter rules (widths, saturation, 64-bit replacements, data words to bytes) live once, in the
pure parser `sysfs.port_counters` / `sysfs.split_hw_counters`, which every scrape runs on the bytes
it read. Listing a port only precomputes what does not change between scrapes: the files to read,
in order, and the label dicts each sample carries.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import resource
import threading
import time
from collections.abc import Iterator

from hpcwatch.exporters import labels
from hpcwatch.exporters import options as opt
from hpcwatch.exporters.fabric.pma import TRAFFIC_COUNTERS, TRAFFIC_HELP
from hpcwatch.exporters.fabric.sysfs import (
    PHYS_LINK_UP,
    STATE_ACTIVE,
    DeviceRecord,
    PortRecord,
    parse_rate,
    parse_state,
    port_counters,
    split_hw_counters,
)
from hpcwatch.exporters.families import FamilyTable, counter, gauge
from hpcwatch.exporters.files import HeldFiles, list_dir, log_once, read_text
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

log = logging.getLogger("hpcwatch.collector.fabric")

FAMILIES = FamilyTable([
    gauge("hpc_fabric_port_info",
          "RDMA port identity, always 1: HCA type, firmware, board id, node GUID, link layer (InfiniBand or "
          "Ethernet for RoCE) and the netdev behind the port.",
          "device", "port", "hca_type", "firmware_version", "board_id", "node_guid", "link_layer", "netdev"),
    gauge("hpc_fabric_port_state_id",
          "Logical port state: 1 Down, 2 Init, 3 Armed, 4 Active, 5 ActiveDefer.", "device", "port"),
    gauge("hpc_fabric_port_physical_state_id",
          "Physical port state: 1 Sleep, 2 Polling, 3 Disabled, 4 PortConfigurationTraining, 5 LinkUp, 6 "
          "LinkErrorRecovery, 7 PhyTest.", "device", "port"),
    gauge("hpc_fabric_port_up",
          "1 when the port is Active and its physical link is LinkUp, else 0.", "device", "port"),
    gauge("hpc_fabric_port_rate_bytes_per_second",
          "Negotiated signalling rate of the port (width times lane speed) in bytes per second.", "device", "port"),
    counter("hpc_fabric_port_errors_total",
            "Standard IB PMA error counters of the port by counter (symbol_error, link_downed, port_rcv_errors, "
            "...); PortCounters values stop at their width, see hpc_fabric_port_pma_saturated.",
            "device", "port", "counter"),
    counter("hpc_fabric_port_transmit_wait_total",
            "Ticks during which the port had data to send but no flow-control credits (PortXmitWait); a congestion "
            "signal.", "device", "port"),
    gauge("hpc_fabric_port_pma_saturated",
          "1 for each fixed-width PMA counter (4, 8, 16 or 32 bits) pinned at its maximum, so its flat line is not "
          "mistaken for health; counters below their maximum have no series.", "device", "port", "counter"),
    counter("hpc_fabric_port_hw_events_total",
            "Per-port driver hw_counters by name, e.g. RoCE congestion (np_cnp_sent, rp_cnp_handled, "
            "np_ecn_marked_roce_packets) and retransmission (out_of_sequence, packet_seq_err, "
            "local_ack_timeout_err).", "device", "port", "counter"),
    gauge("hpc_fabric_port_hw_level",
          "Per-port driver hw_counters that are levels rather than event counts (active_*, *watermark*).",
          "device", "port", "counter"),
    counter("hpc_fabric_device_hw_events_total",
            "Device-level driver hw_counters by name (e.g. Omni-Path hfi1 device counters).", "device", "counter"),
    gauge("hpc_fabric_device_hw_level",
          "Device-level driver hw_counters that are levels rather than event counts.", "device", "counter"),
    *(counter(f"hpc_fabric_port_{suffix}_total", doc, "device", "port") for suffix, doc in TRAFFIC_HELP.items()),
])

LAYOUT_TTL = 60.0  # seconds a device's listed layout is trusted before it is listed again
PARSE_SOURCE = "fabric_sysfs"

# A Sample built as add_metric builds it (timestamp, exemplar and any later field None), without the
# namedtuple's Python-level __new__: tuple.__new__(Sample, (name, labels, value) + _TAIL).
_TAIL = (None,) * (len(Sample._fields) - 3)
_new = tuple.__new__


def default_budget() -> int:
    """A quarter of the open-files soft limit, so held counter files never starve the HTTP server."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return 4096
    return min(soft // 4, 4096)


@dataclasses.dataclass
class _PortPlan:
    """What one scrape of one port reads, and the label dicts its samples carry; built when it is listed.

    `paths` is read in one HeldFiles.read_all call: counters/*, counters_ext/*, hw_counters/*, then
    state, phys_state and rate.
    """

    device: str
    port: str
    dp: dict[str, str]  # {device, port}: shared by every per-port sample
    info: dict[str, str]  # the info family's labels
    counter_names: list[str]
    ext_names: list[str]
    hw_names: list[str]
    paths: list[str]
    labels: dict[str, dict[str, str]]  # counter or hw_counters name -> {device, port, counter}


@dataclasses.dataclass
class _PortLayout:
    port: str
    path: str
    counters: list[tuple[str, str]]  # (name, path) of counters/*
    counters_ext: list[tuple[str, str]]  # pre-4.5 counters_ext/*
    hw: list[tuple[str, str]]  # ports/<n>/hw_counters/*
    link_layer: str
    netdev: str
    plan: _PortPlan | None = None


@dataclasses.dataclass
class _DeviceLayout:
    identity: DeviceRecord
    ports: list[_PortLayout]
    listed_at: float
    hw_names: list[str] = dataclasses.field(default_factory=list)  # device-level hw_counters/*
    hw_paths: list[str] = dataclasses.field(default_factory=list)
    hw_labels: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)


def _files(directory: str) -> list[tuple[str, str]]:
    return [(name, f"{directory}/{name}") for name in list_dir(directory)]


def _netdev(dev_path: str, port: str, port_path: str) -> str:
    """The netdev behind a port: the RoCE GID table's first entry, else the device's own net/ child."""
    name = labels.first_line(read_text(f"{port_path}/gid_attrs/ndevs/0", 4096))
    if name:
        return name
    nets = list_dir(f"{dev_path}/device/net")
    if len(nets) == 1:
        return nets[0]
    for net in nets:  # a multi-port function (mlx4): dev_port is the 0-based port index
        dev_port = read_text(f"{dev_path}/device/net/{net}/dev_port", 4096)
        if dev_port is not None and dev_port.strip() == str(int(port) - 1):
            return net
    return ""


def plan_port(layout: _PortLayout, ident: DeviceRecord) -> _PortPlan:
    """What a scrape of a listed port reads (files in order) and the label dicts of its samples."""
    dp = {"device": ident.device, "port": layout.port}
    names = [n for n, _ in layout.counters] + [n for n, _ in layout.hw]
    return _PortPlan(
        device=ident.device, port=layout.port, dp=dp,
        info={**dp, "hca_type": ident.hca_type, "firmware_version": ident.firmware_version,
              "board_id": ident.board_id, "node_guid": ident.node_guid, "link_layer": layout.link_layer,
              "netdev": layout.netdev},
        counter_names=[n for n, _ in layout.counters], ext_names=[n for n, _ in layout.counters_ext],
        hw_names=[n for n, _ in layout.hw],
        paths=[p for _, p in layout.counters + layout.counters_ext + layout.hw]
        + [f"{layout.path}/state", f"{layout.path}/phys_state", f"{layout.path}/rate"],
        labels={n: {**dp, "counter": labels.value(n)} for n in names})


def list_device(root: str, device: str, hw_counters: bool, now: float) -> _DeviceLayout:
    """List one device's identity, ports and counter files and plan their reads (the cached part)."""
    path = f"{root}/{device}"
    ident = DeviceRecord(
        device=device,
        hca_type=labels.first_line(read_text(f"{path}/hca_type", 4096)),
        firmware_version=labels.first_line(read_text(f"{path}/fw_ver", 4096)),
        board_id=labels.first_line(read_text(f"{path}/board_id", 4096)),
        node_guid=labels.first_line(read_text(f"{path}/node_guid", 4096)),
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
            link_layer=labels.first_line(read_text(f"{pp}/link_layer", 4096)),
            netdev=_netdev(path, port, pp),
        ))
    ports.sort(key=lambda p: int(p.port))
    for p in ports:
        p.plan = plan_port(p, ident)
    hw = _files(f"{path}/hw_counters") if hw_counters else []
    return _DeviceLayout(identity=ident, ports=ports, listed_at=now, hw_names=[n for n, _ in hw],
                         hw_paths=[p for _, p in hw],
                         hw_labels={n: {"device": device, "counter": labels.value(n)} for n, _ in hw})


def _text(data: bytes | None) -> str | None:
    return None if data is None else data.decode("utf-8", "replace")


def read_port(plan: _PortPlan, files: HeldFiles) -> PortRecord:
    """One scrape of one port: read its files, then the pure parsers turn them into a PortRecord."""
    data = files.read_all(plan.paths)
    nc, ne = len(plan.counter_names), len(plan.ext_names)
    rec = PortRecord(device=plan.device, port=plan.port)
    port_counters(rec, dict(zip(plan.counter_names, data)),
                  dict(zip(plan.ext_names, data[nc:nc + ne])) if ne else None)
    if plan.hw_names:
        rec.hw_counters, rec.hw_gauges, skipped = split_hw_counters(dict(zip(plan.hw_names, data[nc + ne:-3])))
        rec.skipped += skipped
    rec.state = parse_state(_text(data[-3]))
    rec.phys_state = parse_state(_text(data[-2]))
    rec.rate_bytes = parse_rate(_text(data[-1]))
    return rec


# The key each family's samples are gathered under during a scrape -> its family (FAMILIES).
_KEYS = {"info": "hpc_fabric_port_info", "state": "hpc_fabric_port_state_id",
         "phys": "hpc_fabric_port_physical_state_id", "up": "hpc_fabric_port_up",
         "rate": "hpc_fabric_port_rate_bytes_per_second", "errors": "hpc_fabric_port_errors_total",
         "wait": "hpc_fabric_port_transmit_wait_total", "saturated": "hpc_fabric_port_pma_saturated",
         "hw": "hpc_fabric_port_hw_events_total", "hw_level": "hpc_fabric_port_hw_level",
         "dev_hw": "hpc_fabric_device_hw_events_total", "dev_hw_level": "hpc_fabric_device_hw_level",
         **{suffix: f"hpc_fabric_port_{suffix}_total" for suffix in TRAFFIC_HELP}}


def _families() -> dict[str, Metric]:
    return {key: FAMILIES.new(name) for key, name in _KEYS.items()}


# Sample name of each family key (counters get `_total`, as CounterMetricFamily.add_metric writes).
_SAMPLE_NAMES: dict[str, str] = dict(_KEYS)
# counters/ traffic name -> (family key, sample name); port_counters already turned data words into bytes.
_TRAFFIC_OUT: dict[str, tuple[str, str]] = {n: (suffix, _SAMPLE_NAMES[suffix]) for n, (suffix, _) in
                                            TRAFFIC_COUNTERS.items()}


def emit_port(out: dict[str, list], plan: _PortPlan, rec: PortRecord) -> int:
    """One port's record into the families' sample lists; returns the files skipped."""
    names = _SAMPLE_NAMES
    dp = plan.dp
    lab = plan.labels
    out["info"].append(_new(Sample, (names["info"], plan.info, 1) + _TAIL))
    state, phys = rec.state, rec.phys_state
    if state is not None:
        out["state"].append(_new(Sample, (names["state"], dp, state[0]) + _TAIL))
    if phys is not None:
        out["phys"].append(_new(Sample, (names["phys"], dp, phys[0]) + _TAIL))
    if state is not None and phys is not None:
        up = 1 if state[0] == STATE_ACTIVE and phys[0] == PHYS_LINK_UP else 0
        out["up"].append(_new(Sample, (names["up"], dp, up) + _TAIL))
    if rec.rate_bytes is not None:
        out["rate"].append(_new(Sample, (names["rate"], dp, rec.rate_bytes) + _TAIL))
    errors, sample = out["errors"].append, names["errors"]
    for name, v in rec.errors.items():
        errors(_new(Sample, (sample, lab[name], v) + _TAIL))
    for name, v in rec.traffic.items():
        key, sample = _TRAFFIC_OUT[name]
        out[key].append(_new(Sample, (sample, dp, v) + _TAIL))
    if rec.xmit_wait is not None:
        out["wait"].append(_new(Sample, (names["wait"], dp, rec.xmit_wait) + _TAIL))
    saturated, sample = out["saturated"].append, names["saturated"]
    for name, pinned in rec.saturated.items():
        if pinned:
            saturated(_new(Sample, (sample, lab[name], 1) + _TAIL))
    hw, sample = out["hw"].append, names["hw"]
    for name, v in rec.hw_counters.items():
        hw(_new(Sample, (sample, lab[name], v) + _TAIL))
    level, sample = out["hw_level"].append, names["hw_level"]
    for name, v in rec.hw_gauges.items():
        level(_new(Sample, (sample, lab[name], v) + _TAIL))
    return rec.skipped


def emit_device(out: dict[str, list], layout: _DeviceLayout, files: HeldFiles) -> int:
    """Device-level hw_counters into the families' sample lists; returns the files skipped."""
    counters, gauges, skipped = split_hw_counters(dict(zip(layout.hw_names, files.read_all(layout.hw_paths))))
    lab = layout.hw_labels
    hw, sample = out["dev_hw"].append, _SAMPLE_NAMES["dev_hw"]
    for name, v in counters.items():
        hw(_new(Sample, (sample, lab[name], v) + _TAIL))
    level, sample = out["dev_hw_level"].append, _SAMPLE_NAMES["dev_hw_level"]
    for name, v in gauges.items():
        level(_new(Sample, (sample, lab[name], v) + _TAIL))
    return skipped


@register
class FabricCollector(Collector):
    name = "fabric"
    help = "InfiniBand/RoCE/Omni-Path port state and counters from /sys/class/infiniband"
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option("ignored-devices", None, "regexp of RDMA device names to skip (e.g. '^mlx5_[23]$')",
               type=opt.regexp),
        Option("hw-counters", True, "read driver hw_counters (RoCE congestion, retransmission)", type=bool),
        Option("held-files", None, "counter files kept open between scrapes (re-read with pread); "
               "auto: a quarter of the open-files soft limit, at most 4096; 0: open and close every time",
               type=opt.auto(opt.count), format=opt.show_auto),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.root = ctx.paths.sys("class", "infiniband")
        self.ignored = ctx.option("ignored-devices")
        self.hw_counters = ctx.option("hw-counters")
        held = ctx.option("held-files")
        self.files = HeldFiles(default_budget() if held is None else held)
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
        out = {key: fam.samples for key, fam in fams.items()}
        for device in devices:
            try:
                layout = self._layout(device, now)
                skipped = emit_device(out, layout, self.files)
            except Exception as exc:  # noqa: BLE001 - one broken device never hides the others
                log_once(log, f"device:{device}", "fabric: skipping %s/%s: %s", self.root, device, exc)
                record_parse_error(PARSE_SOURCE)
                continue
            for port in layout.ports:
                try:
                    skipped += emit_port(out, port.plan, read_port(port.plan, self.files))
                except Exception as exc:  # noqa: BLE001 - one broken port never hides the others
                    log_once(log, f"port:{port.path}", "fabric: skipping %s: %s", port.path, exc)
                    record_parse_error(PARSE_SOURCE)
                    continue
            if skipped:
                log_once(log, f"skipped:{device}", "fabric: %s: %d counter files unreadable or not a number "
                         "(e.g. 'N/A (no PMA)'), skipped", f"{self.root}/{device}", skipped,
                         level=logging.DEBUG)
        return fams
