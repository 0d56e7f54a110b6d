"""Every fixed-name family the node collector exports, as one table: node_exporter's exact name, type
and labels where node_exporter has the family, `hpc_node_` only where it does not.

Families whose names come from the data (meminfo and vmstat fields, hwmon sensor properties, RAPL
zones, NUMA meminfo) are named by their own modules with node_exporter's rules; `FamilyBuilder`
builds both kinds in one pass.
"""

from __future__ import annotations

from collections.abc import Iterator

from hpcwatch.exporters.families import FamilySpec, FamilyTable
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, UnknownMetricFamily
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

DEV = ("device",)
FS = ("device", "mountpoint", "fstype", "device_error")
HWMON = ("chip", "sensor")


def _disk(name: str, kind: str, help_text: str) -> tuple[str, tuple[str, str, tuple[str, ...]]]:
    return f"node_disk_{name}", (kind, help_text, DEV)


# /proc/diskstats columns after the device name, in file order: (family, type, help, scale).
DISK_COLUMNS: tuple[tuple[str, str, str, float], ...] = (
    ("node_disk_reads_completed_total", "counter", "Reads completed successfully.", 1.0),
    ("node_disk_reads_merged_total", "counter", "Adjacent reads merged into one before being issued.", 1.0),
    ("node_disk_read_bytes_total", "counter", "Bytes read (512-byte sectors times 512).", 512.0),
    ("node_disk_read_time_seconds_total", "counter", "Seconds spent by all reads.", 0.001),
    ("node_disk_writes_completed_total", "counter", "Writes completed successfully.", 1.0),
    ("node_disk_writes_merged_total", "counter", "Adjacent writes merged into one before being issued.", 1.0),
    ("node_disk_written_bytes_total", "counter", "Bytes written (512-byte sectors times 512).", 512.0),
    ("node_disk_write_time_seconds_total", "counter", "Seconds spent by all writes.", 0.001),
    ("node_disk_io_now", "gauge", "I/Os in flight right now.", 1.0),
    ("node_disk_io_time_seconds_total", "counter", "Seconds the device had I/O in flight.", 0.001),
    ("node_disk_io_time_weighted_seconds_total", "counter",
     "Seconds spent doing I/O weighted by the number of I/Os in flight.", 0.001),
    ("node_disk_discards_completed_total", "counter", "Discards completed successfully.", 1.0),
    ("node_disk_discards_merged_total", "counter", "Adjacent discards merged into one before being issued.", 1.0),
    ("node_disk_discarded_sectors_total", "counter", "512-byte sectors discarded successfully.", 1.0),
    ("node_disk_discard_time_seconds_total", "counter", "Seconds spent by all discards.", 0.001),
    ("node_disk_flush_requests_total", "counter", "Flush requests completed successfully.", 1.0),
    ("node_disk_flush_requests_time_seconds_total", "counter", "Seconds spent by all flush requests.", 0.001),
)

# /proc/net/dev columns after the device name, in file order (receive 8, transmit 8).
NETDEV_COLUMNS: tuple[tuple[str, str], ...] = (
    ("node_network_receive_bytes_total", "Bytes received by the device."),
    ("node_network_receive_packets_total", "Packets received by the device."),
    ("node_network_receive_errs_total", "Receive errors the driver counted."),
    ("node_network_receive_drop_total", "Received packets dropped (no buffer, missed by the NIC)."),
    ("node_network_receive_fifo_total", "Receive FIFO overruns."),
    ("node_network_receive_frame_total", "Received frames with length, overrun, CRC or alignment errors."),
    ("node_network_receive_compressed_total", "Compressed packets received (CSLIP, PPP)."),
    ("node_network_receive_multicast_total", "Multicast packets received."),
    ("node_network_transmit_bytes_total", "Bytes transmitted by the device."),
    ("node_network_transmit_packets_total", "Packets transmitted by the device."),
    ("node_network_transmit_errs_total", "Transmit errors the driver counted."),
    ("node_network_transmit_drop_total", "Packets dropped before transmission."),
    ("node_network_transmit_fifo_total", "Transmit FIFO underruns."),
    ("node_network_transmit_colls_total", "Collisions detected while transmitting."),
    ("node_network_transmit_carrier_total", "Transmit carrier, aborted, heartbeat and window errors."),
    ("node_network_transmit_compressed_total", "Compressed packets transmitted (CSLIP, PPP)."),
)

# PSI file -> ((line kind, family), ...): node_exporter's names; `some` is "waiting", `full` "stalled".
PRESSURE: dict[str, tuple[tuple[str, str], ...]] = {
    "cpu": (("some", "node_pressure_cpu_waiting_seconds_total"),),
    "io": (("some", "node_pressure_io_waiting_seconds_total"), ("full", "node_pressure_io_stalled_seconds_total")),
    "memory": (("some", "node_pressure_memory_waiting_seconds_total"),
               ("full", "node_pressure_memory_stalled_seconds_total")),
    "irq": (("full", "node_pressure_irq_stalled_seconds_total"),),  # kernel 6.1+, only a `full` line
}

# name -> (type, help, labels). Counter names carry `_total`.
SPECS: dict[str, tuple[str, str, tuple[str, ...]]] = {
    # /proc/stat
    "node_cpu_seconds_total": ("counter", "Seconds the CPU spent in each mode since boot.", ("cpu", "mode")),
    "node_cpu_guest_seconds_total": (
        "counter", "Seconds the CPU spent running virtual machines (already counted in user and nice).",
        ("cpu", "mode")),
    "node_context_switches_total": ("counter", "Context switches since boot.", ()),
    "node_intr_total": ("counter", "Interrupts serviced since boot.", ()),
    "node_forks_total": ("counter", "Processes and threads created since boot.", ()),
    "node_boot_time_seconds": ("gauge", "Unix time the node booted.", ()),
    "node_procs_running": ("gauge", "Tasks runnable right now.", ()),
    "node_procs_blocked": ("gauge", "Tasks blocked waiting for I/O right now.", ()),
    # /proc/loadavg
    "node_load1": ("gauge", "Load average over 1 minute: runnable plus uninterruptible tasks.", ()),
    "node_load5": ("gauge", "Load average over 5 minutes: runnable plus uninterruptible tasks.", ()),
    "node_load15": ("gauge", "Load average over 15 minutes: runnable plus uninterruptible tasks.", ()),
    # /proc/pressure
    "node_pressure_cpu_waiting_seconds_total": (
        "counter", "Seconds in which at least one task waited for a CPU (PSI cpu some).", ()),
    "node_pressure_io_waiting_seconds_total": (
        "counter", "Seconds in which at least one task waited for I/O (PSI io some).", ()),
    "node_pressure_io_stalled_seconds_total": (
        "counter", "Seconds in which every non-idle task stalled on I/O at once (PSI io full).", ()),
    "node_pressure_memory_waiting_seconds_total": (
        "counter", "Seconds in which at least one task waited for memory (PSI memory some).", ()),
    "node_pressure_memory_stalled_seconds_total": (
        "counter", "Seconds in which every non-idle task stalled on memory at once (PSI memory full).", ()),
    "node_pressure_irq_stalled_seconds_total": (
        "counter", "Seconds in which a CPU ran only hard or soft interrupts (PSI irq full, kernel 6.1+).", ()),
    "hpc_node_pressure_some_avg10_ratio": (
        "gauge", "Share of the last 10 s in which some task stalled on the resource (PSI some avg10).",
        ("resource",)),
    "hpc_node_pressure_full_avg10_ratio": (
        "gauge", "Share of the last 10 s in which all non-idle tasks stalled on the resource (PSI full avg10).",
        ("resource",)),
    # /proc/diskstats and /proc/net/dev
    **{name: (kind, help_text, DEV) for name, kind, help_text, _ in DISK_COLUMNS},
    **{name: ("counter", help_text, DEV) for name, help_text in NETDEV_COLUMNS},
    # /sys/class/net (netclass)
    "node_network_up": ("gauge", "1 when the interface's operstate is up, else 0.", DEV),
    "node_network_info": (
        "gauge", "Always 1: the interface's address, broadcast address, duplex, operstate, admin state (from "
        "its flags) and alias.", ("device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias")),
    "node_network_address_assign_type": ("gauge", "How the interface's address was assigned (addr_assign_type).",
                                         DEV),
    "node_network_carrier": ("gauge", "1 when the interface has a carrier (link detected), 0 when not.", DEV),
    "node_network_carrier_changes_total": ("counter", "Times the carrier went up or down.", DEV),
    "node_network_carrier_up_changes_total": ("counter", "Times the carrier came up.", DEV),
    "node_network_carrier_down_changes_total": ("counter", "Times the carrier went down (link flaps).", DEV),
    "node_network_device_id": ("gauge", "Network device property: dev_id.", DEV),
    "node_network_dormant": ("gauge", "1 when the interface is dormant (waiting for an external event).", DEV),
    "node_network_flags": ("gauge", "The interface's IFF_* flags as a number.", DEV),
    "node_network_iface_id": ("gauge", "The interface's index (ifindex).", DEV),
    "node_network_iface_link": ("gauge", "Index of the interface this one is linked to (iflink).", DEV),
    "node_network_iface_link_mode": ("gauge", "Network device property: link_mode.", DEV),
    "node_network_mtu_bytes": ("gauge", "Maximum transmission unit of the interface.", DEV),
    "node_network_name_assign_type": ("gauge", "How the interface got its name (name_assign_type).", DEV),
    "node_network_net_dev_group": ("gauge", "Network device property: netdev_group.", DEV),
    "node_network_speed_bytes": ("gauge", "Link speed in bytes per second (-125000 when the driver reports -1).",
                                 DEV),
    "node_network_transmit_queue_length": ("gauge", "Length of the transmit queue (tx_queue_len).", DEV),
    "node_network_protocol_type": ("gauge", "ARPHRD_* type of the interface (1 Ethernet, 32 InfiniBand, 772 "
                                   "loopback).", DEV),
    # mounts and statvfs
    "node_filesystem_size_bytes": ("gauge", "Filesystem size in bytes.", FS),
    "node_filesystem_free_bytes": ("gauge", "Free bytes, including those reserved for root.", FS),
    "node_filesystem_avail_bytes": ("gauge", "Bytes available to unprivileged users.", FS),
    "node_filesystem_files": ("gauge", "Inodes the filesystem has in total.", FS),
    "node_filesystem_files_free": ("gauge", "Inodes still free.", FS),
    "node_filesystem_readonly": ("gauge", "1 when the filesystem is mounted read-only.", FS),
    "node_filesystem_device_error": (
        "gauge", "1 when statvfs on the mount failed or hung (the reason is in the device_error label), so its "
        "sizes are missing.", FS),
    "hpc_node_filesystem_stat_timeouts_total": (
        "counter", "Times statvfs on the mount did not return within the mount timeout.",
        ("device", "fstype", "mountpoint")),
    # /sys/class/hwmon (the per-sensor families are named by hwmon.py)
    "node_hwmon_chip_names": ("gauge", "Always 1: the chip's driver name (the hwmon `name` file).",
                              ("chip", "chip_name")),
    "node_hwmon_sensor_label": ("gauge", "Always 1: the sensor's label from the driver.", ("chip", "sensor", "label")),
    # /sys/class/powercap (the per-zone families are named by rapl.py)
    "node_rapl_joules_total": (
        "counter", "Energy the RAPL domain used, in joules (wraps of energy_uj accumulated).",
        ("index", "path", "rapl_zone")),
    # /sys/devices/system/edac
    "node_edac_correctable_errors_total": (
        "counter", "Corrected memory errors on the memory controller.", ("controller",)),
    "node_edac_uncorrectable_errors_total": (
        "counter", "Uncorrected memory errors on the memory controller.", ("controller",)),
    "node_edac_csrow_correctable_errors_total": (
        "counter", "Corrected memory errors on the csrow; csrow=\"unknown\" for errors the driver could not "
        "place (ce_noinfo_count).", ("controller", "csrow")),
    "node_edac_csrow_uncorrectable_errors_total": (
        "counter", "Uncorrected memory errors on the csrow; csrow=\"unknown\" for errors the driver could not "
        "place (ue_noinfo_count).", ("controller", "csrow")),
    "node_edac_channel_correctable_errors_total": (
        "counter", "Corrected memory errors on the csrow channel (one DIMM, named by dimm_label).",
        ("controller", "csrow", "channel", "dimm_label")),
    "node_edac_channel_uncorrectable_errors_total": (
        "counter", "Uncorrected memory errors on the csrow channel (one DIMM, named by dimm_label).",
        ("controller", "csrow", "channel", "dimm_label")),
}


class FamilyBuilder:
    """Collects samples of one scrape, then builds each family once: fixed families from SPECS and
    data-named ones declared on the fly with `declare`."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        self._dynamic: dict[str, tuple[str, str, tuple[str, ...]]] = {}

    def add(self, name: str, labels: tuple[str, ...], value: float) -> None:
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = []
        rows.append((labels, value))

    def declare(self, name: str, kind: str, help_text: str, labels: tuple[str, ...] = ()) -> None:
        """A family named from the data (`kind` counter, gauge or untyped); the first declaration wins."""
        if name not in SPECS and name not in self._dynamic:
            self._dynamic[name] = (kind, help_text, labels)

    def families(self) -> Iterator[Metric]:
        for name, rows in self._rows.items():
            spec = SPECS.get(name) or self._dynamic.get(name)
            if spec is None:
                raise KeyError(f"node family {name} has samples but no spec")
            yield _build(name, spec, rows)


def _build(name: str, spec: tuple[str, str, tuple[str, ...]], rows: list[tuple[tuple[str, ...], float]]) -> Metric:
    kind, help_text, labels = spec
    fam: Metric
    if kind == "counter" and name.endswith("_total"):
        fam = CounterMetricFamily(name[:-6], help_text, labels=list(labels))
    elif kind == "untyped":
        fam = UnknownMetricFamily(name, help_text, labels=list(labels))
    else:
        fam = GaugeMetricFamily(name, help_text, labels=list(labels))
    append = fam.samples.append
    seen: set[tuple[str, ...]] = set()
    for values, value in rows:
        if values in seen:  # one sample per label set: the first wins
            continue
        seen.add(values)
        append(Sample(name, dict(zip(labels, values)), float(value), None, None))
    return fam


# Families named from the data (meminfo and NUMA fields, vmstat fields, hwmon sensors, RAPL zones) and
# the textfile collector's own: any name under these prefixes is the node collector's.
DATA_NAMED_PREFIXES = ("node_memory_", "node_vmstat_", "node_hwmon_", "node_rapl_", "node_textfile_")
OWN_PREFIXES = ("hpc_", "hpcwatch_")  # every other hpcwatch collector's families


# The table the registry, the docs and tests see: SPECS, plus the data-named family sets as templates
# (most specific first: the first template that matches a name is its spec).
FAMILIES = FamilyTable([
    *(FamilySpec(name, "unknown" if kind == "untyped" else kind, help_text, labels)
      for name, (kind, help_text, labels) in SPECS.items()),
    FamilySpec("node_memory_numa_{field}_total", "counter", "Pages of the NUMA node counted as a numastat field.",
               ("node",)),
    FamilySpec("node_memory_numa_{field}", "gauge", "A meminfo field of the NUMA node.", ("node",)),
    FamilySpec("node_memory_{field}", "gauge", "A /proc/meminfo field, node_exporter's name."),
    FamilySpec("node_vmstat_{field}", "unknown", "A /proc/vmstat field, node_exporter's name."),
    FamilySpec("node_hwmon_{field}_total", "counter", "A counting hwmon sensor property.", HWMON),
    FamilySpec("node_hwmon_{field}", "gauge", "A hwmon sensor property.", HWMON),
    FamilySpec("node_rapl_{field}_joules_total", "counter", "Energy a RAPL domain used, in joules.",
               ("index", "path")),
])


def is_own_family(name: str) -> bool:
    """Whether hpcwatch exports a family of this name itself (so a textfile must not define it)."""
    return (name.startswith(OWN_PREFIXES + DATA_NAMED_PREFIXES) or name in SPECS or name + "_total" in SPECS
            or name.removesuffix("_total") in SPECS)
