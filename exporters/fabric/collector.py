"""`fabric`: InfiniBand, RoCE and Omni-Path port counters of this node's RDMA devices, from sysfs.

The reader is thin and cheap: the layout of each device (its ports, counter file names, identity,
netdev) is listed once and re-listed every LAYOUT_TTL seconds or when the device set changes, and the
counter files stay open between scrapes and are re-read with pread(fd, n, 0), which makes sysfs run
the attribute's show() again (the seq_file rewinds at offset 0). A scrape then costs one syscall per
counter file (sysfs has no batched read of several attributes).

Listing a port also compiles its plan: which files to read, in which order, which family and
pre-built label dict each value goes to, and the value range at which a fixed-width PMA counter is
pinned. Label dicts do not change between scrapes, so a scrape only appends Sample tuples; the
result is the same as sysfs.port_counters / split_hw_counters (the pure reference parsers) rendered
with add_metric, which tests/unit/test_fabric.py checks on every fixture tree.
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

from hpcwatch.exporters.fabric.pma import (
    ERROR_COUNTERS,
    LEGACY_EXT_NAMES,
    PORT_COUNTERS_WIDTH,
    TRAFFIC_COUNTERS,
    TRAFFIC_HELP,
)
from hpcwatch.exporters.fabric.sysfs import (
    PHYS_LINK_UP,
    STATE_ACTIVE,
    WIDENED,
    DeviceRecord,
    clean_label,
    is_hw_gauge,
    parse_counter,
    parse_rate,
    parse_state,
)
from hpcwatch.exporters.files import list_dir, log_once
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, Paths, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

log = logging.getLogger("hpcwatch.collector.fabric")

LAYOUT_TTL = 60.0  # seconds a device's listed layout is trusted before it is listed again
PARSE_SOURCE = "fabric_sysfs"


_U32_MAX = (1 << 32) - 1
_U64_MAX = (1 << 64) - 1
# A Sample built as add_metric builds it (timestamp, exemplar and any later field None), without the
# namedtuple's Python-level __new__: tuple.__new__(Sample, (name, labels, value) + _TAIL).
_TAIL = (None,) * (len(Sample._fields) - 3)
_new = tuple.__new__


def _read_bytes(path: str) -> bytes | None:
    """A sysfs attribute's bytes, or None when missing, vanished, unreadable or a directory."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        return os.read(fd, 4096)
    except OSError:
        return None
    finally:
        os.close(fd)


def read_small(path: str) -> str | None:
    """A sysfs attribute's text, or None when missing, vanished, unreadable or a directory.

    Same contract as files.read_text, but with os.open/os.read: half the cost per file.
    """
    data = _read_bytes(path)
    return None if data is None else data.decode("utf-8", "replace")


class HeldFiles:
    """sysfs attribute files kept open between scrapes, up to a budget of descriptors.

    A file that fails to read (device removed: ENODEV; a directory) is closed and re-opened on the
    next read, so a driver reload costs one scrape of that device's data, never a stale value.
    """

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self._fds: dict[str, int] = {}

    def _miss(self, path: str) -> bytes | None:
        """Read a file not held yet: open and hold it while the budget allows, else open/read/close."""
        if len(self._fds) >= self.budget:
            return _read_bytes(path)
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            return None
        self._fds[path] = fd
        try:
            return os.pread(fd, 4096, 0)
        except OSError:
            self._drop(path)
            return None

    def _drop(self, path: str) -> None:
        os.close(self._fds.pop(path))

    def read(self, path: str) -> str | None:
        fd = self._fds.get(path)
        if fd is None:
            data = self._miss(path)
        else:
            try:
                data = os.pread(fd, 4096, 0)
            except OSError:
                self._drop(path)
                data = None
        return None if data is None else data.decode("utf-8", "replace")

    def counters(self, paths: list[str]) -> list[int | None]:
        """sysfs.parse_counter of each file's text (None: missing, unreadable, `N/A`, not a number).

        The hot loop of a scrape: one pread per held file and the parse on bytes, falling back to
        the text parser only for content that is not plain ASCII digits.
        """
        get = self._fds.get
        pread = os.pread
        out: list[int | None] = []
        append = out.append
        for path in paths:
            fd = get(path)
            if fd is None:
                data = self._miss(path)
            else:
                try:
                    data = pread(fd, 4096, 0)
                except OSError:
                    self._drop(path)
                    data = None
            if data is None:
                append(None)
                continue
            digits = data.strip()
            if digits.isdigit():  # bytes.isdigit: ASCII digits only, False when empty
                v = int(digits)
                append(v if v <= _U64_MAX else None)
            else:
                append(parse_counter(data.decode("utf-8", "replace")))
        return out

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


def _pinned_range(name: str, widened: bool, extended: bool) -> tuple[int, int] | None:
    """(lo, hi): the counter is pinned at its PortCounters maximum when lo <= value <= hi.

    The rule of sysfs.port_counters: a counter without a width, or one a PMA with
    PortCountersExtended widens to 64 bits, is never pinned; a widenable counter on a PMA without it
    is 64-bit when its value exceeds 32 bits (so only exactly 2^32-1 is pinned).
    """
    width = PORT_COUNTERS_WIDTH.get(name)
    if width is None or width >= 64 or (widened and extended):
        return None
    if widened:
        return _U32_MAX, _U32_MAX
    return (1 << width) - 1, _U64_MAX


@dataclasses.dataclass
class _PortPlan:
    """What one scrape of one port reads and where each value goes; built when the port is listed.

    `paths` is read in one HeldFiles.counters call and sliced: errors, traffic, wait, ext, hw.
    """

    dp: dict[str, str]  # {device, port}: shared by every per-port sample
    info: dict[str, str]  # the info family's labels
    state: str
    phys_state: str
    rate: str
    paths: list[str]
    errors: list[tuple[str, dict[str, str], tuple[int, int] | None]]  # ERROR_COUNTERS order
    traffic: list[tuple[str, tuple[int, int] | None]]
    wait: tuple[int, int] | None  # pinned range of port_xmit_wait
    has_wait: bool  # counters/port_xmit_wait exists (kernels since 4.5)
    ext: list[str]  # canonical names of the legacy counters_ext files read
    hw: list[tuple[bool, dict[str, str]]]  # (is a level, labels), sorted by counter name
    counter_labels: dict[str, dict[str, str]]  # {device, port, counter} for the saturated family


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
    hw: list[tuple[str, str]]  # device-level hw_counters/*
    ports: list[_PortLayout]
    listed_at: float
    hw_paths: list[str] = dataclasses.field(default_factory=list)  # sorted by counter name, no lifespan
    hw_plan: list[tuple[bool, dict[str, str]]] = dataclasses.field(default_factory=list)


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


def _hw_plan(files: list[tuple[str, str]], base: dict[str, str]) -> tuple[list[str], list[tuple[bool, dict[str, str]]]]:
    """hw_counters files in name order, `lifespan` (a setting) left out: paths and (is a level, labels)."""
    entries = sorted((n, p) for n, p in files if n != "lifespan")
    return [p for _, p in entries], [(is_hw_gauge(n), {**base, "counter": n}) for n, _ in entries]


def plan_port(layout: _PortLayout, ident: DeviceRecord) -> _PortPlan:
    """Compile a listed port into the plan a scrape follows (see sysfs.port_counters for the rules)."""
    dp = {"device": ident.device, "port": layout.port}
    counters = dict(layout.counters)
    extended = "unicast_xmit_packets" in counters
    labels = {n: {**dp, "counter": n} for n in PORT_COUNTERS_WIDTH}
    errors = [(n, labels[n], _pinned_range(n, False, extended)) for n in ERROR_COUNTERS if n in counters]
    traffic = [(n, _pinned_range(n, n in WIDENED, extended)) for n in counters if n in TRAFFIC_COUNTERS]
    has_wait = "port_xmit_wait" in counters
    ext = [(LEGACY_EXT_NAMES[n], p) for n, p in layout.counters_ext if n in LEGACY_EXT_NAMES]
    hw_paths, hw = _hw_plan(layout.hw, dp)
    paths = ([counters[n] for n, _, _ in errors] + [counters[n] for n, _ in traffic]
             + ([counters["port_xmit_wait"]] if has_wait else []) + [p for _, p in ext] + hw_paths)
    return _PortPlan(
        dp=dp,
        info={**dp, "hca_type": ident.hca_type, "firmware_version": ident.firmware_version,
              "board_id": ident.board_id, "node_guid": ident.node_guid, "link_layer": layout.link_layer,
              "netdev": layout.netdev},
        state=f"{layout.path}/state", phys_state=f"{layout.path}/phys_state", rate=f"{layout.path}/rate",
        paths=paths, errors=errors, traffic=traffic,
        wait=_pinned_range("port_xmit_wait", False, extended), has_wait=has_wait,
        ext=[n for n, _ in ext], hw=hw, counter_labels=labels)


def list_device(root: str, device: str, hw_counters: bool, now: float) -> _DeviceLayout:
    """List one device's identity, ports and counter files and compile their plans (the cached part)."""
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
    for p in ports:
        p.plan = plan_port(p, ident)
    hw = _files(f"{path}/hw_counters") if hw_counters else []
    hw_paths, hw_plan = _hw_plan(hw, {"device": device})
    return _DeviceLayout(identity=ident, hw=hw, ports=ports, listed_at=now, hw_paths=hw_paths, hw_plan=hw_plan)


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


# Sample name of each family key (counters get `_total`, as CounterMetricFamily.add_metric writes).
_SAMPLE_NAMES: dict[str, str] = {k: m.name + ("_total" if m.type == "counter" else "")
                                 for k, m in _families().items()}
# counters/ traffic name -> (family key, sample name, multiplier): data counters count 4-byte words.
_TRAFFIC_OUT: dict[str, tuple[str, str, int]] = {
    n: (suffix, _SAMPLE_NAMES[suffix], mult) for n, (suffix, mult) in TRAFFIC_COUNTERS.items()}


def emit_port(out: dict[str, list], plan: _PortPlan, files: HeldFiles) -> int:
    """One scrape of one port into the families' sample lists; returns the files skipped."""
    names = _SAMPLE_NAMES
    dp = plan.dp
    read = files.read
    out["info"].append(_new(Sample, (names["info"], plan.info, 1) + _TAIL))
    state = parse_state(read(plan.state))
    phys = parse_state(read(plan.phys_state))
    rate = parse_rate(read(plan.rate))
    if state is not None:
        out["state"].append(_new(Sample, (names["state"], dp, state[0]) + _TAIL))
    if phys is not None:
        out["phys"].append(_new(Sample, (names["phys"], dp, phys[0]) + _TAIL))
    if state is not None and phys is not None:
        up = 1 if state[0] == STATE_ACTIVE and phys[0] == PHYS_LINK_UP else 0
        out["up"].append(_new(Sample, (names["up"], dp, up) + _TAIL))
    if rate is not None:
        out["rate"].append(_new(Sample, (names["rate"], dp, rate) + _TAIL))

    values = files.counters(plan.paths)
    pinned: list[str] = []
    i = 0
    errors = out["errors"].append
    sample = names["errors"]
    for name, labels, pin in plan.errors:
        v = values[i]
        i += 1
        if v is not None:
            errors(_new(Sample, (sample, labels, v) + _TAIL))
            if pin is not None and pin[0] <= v <= pin[1]:
                pinned.append(name)
    traffic: dict[str, int] = {}
    for name, pin in plan.traffic:
        v = values[i]
        i += 1
        if v is not None:
            traffic[name] = v
            if pin is not None and pin[0] <= v <= pin[1]:
                pinned.append(name)
    wait = None
    if plan.has_wait:
        wait = values[i]
        i += 1
        pin = plan.wait
        if wait is not None and pin is not None and pin[0] <= wait <= pin[1]:
            pinned.append("port_xmit_wait")
    for name in plan.ext:  # pre-4.5 64-bit values replace the 32-bit ones, and are never pinned
        v = values[i]
        i += 1
        if v is not None:
            traffic[name] = v
            if name in pinned:
                pinned.remove(name)
    for name, v in traffic.items():
        key, sample, mult = _TRAFFIC_OUT[name]
        out[key].append(_new(Sample, (sample, dp, v * mult) + _TAIL))
    if wait is not None:
        out["wait"].append(_new(Sample, (names["wait"], dp, wait) + _TAIL))
    if pinned:
        sample = names["saturated"]
        out["saturated"].extend(_new(Sample, (sample, plan.counter_labels[n], 1) + _TAIL) for n in sorted(pinned))
    hw, level = out["hw"].append, out["hw_level"].append
    hw_name, level_name = names["hw"], names["hw_level"]
    for (gauge, labels), v in zip(plan.hw, values[i:]):
        if v is None:
            continue
        if gauge:
            level(_new(Sample, (level_name, labels, v) + _TAIL))
        else:
            hw(_new(Sample, (hw_name, labels, v) + _TAIL))
    return values.count(None)


def emit_device(out: dict[str, list], layout: _DeviceLayout, files: HeldFiles) -> int:
    """Device-level hw_counters into the families' sample lists; returns the files skipped."""
    values = files.counters(layout.hw_paths)
    hw, level = out["dev_hw"].append, out["dev_hw_level"].append
    hw_name, level_name = _SAMPLE_NAMES["dev_hw"], _SAMPLE_NAMES["dev_hw_level"]
    for (gauge, labels), v in zip(layout.hw_plan, values):
        if v is None:
            continue
        if gauge:
            level(_new(Sample, (level_name, labels, v) + _TAIL))
        else:
            hw(_new(Sample, (hw_name, labels, v) + _TAIL))
    return values.count(None)


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
                    skipped += emit_port(out, port.plan, self.files)
                except Exception as exc:  # noqa: BLE001 - one broken port never hides the others
                    log_once(log, f"port:{port.path}", "fabric: skipping %s: %s", port.path, exc)
                    record_parse_error(PARSE_SOURCE)
                    continue
            if skipped:
                log_once(log, f"skipped:{device}", "fabric: %s: %d counter files unreadable or not a number "
                         "(e.g. 'N/A (no PMA)'), skipped", f"{self.root}/{device}", skipped,
                         level=logging.DEBUG)
        return fams
