"""Every family the node collector exports, as one table (`FAMILIES`): node_exporter's exact name, type
and labels where node_exporter has the family, `hpc_node_` only where it does not.

Families whose names come from the data (meminfo and vmstat fields, hwmon sensor properties, RAPL
zones, NUMA meminfo) are named by their own modules with node_exporter's rules and declared in the
table as templates (`node_memory_{field}`); `FamilyBuilder` builds every family of a scrape from its
row, a data-named one with the HELP its source gives for that field.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

from hpcwatch.exporters.families import FamilySpec, FamilyTable, counter, gauge
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

# Every fixed-name family, in the order the sources add them. Counter names carry `_total`.
FIXED = (
    # /proc/stat
    counter("node_cpu_seconds_total", "Seconds the CPU spent in each mode since boot.", "cpu", "mode"),
    counter("node_cpu_guest_seconds_total",
            "Seconds the CPU spent running virtual machines (already counted in user and nice).", "cpu", "mode"),
    counter("node_context_switches_total", "Context switches since boot."),
    counter("node_intr_total", "Interrupts serviced since boot."),
    counter("node_forks_total", "Processes and threads created since boot."),
    gauge("node_boot_time_seconds", "Unix time the node booted."),
    gauge("node_procs_running", "Tasks runnable right now."),
    gauge("node_procs_blocked", "Tasks blocked waiting for I/O right now."),
    # /proc/loadavg
    gauge("node_load1", "Load average over 1 minute: runnable plus uninterruptible tasks."),
    gauge("node_load5", "Load average over 5 minutes: runnable plus uninterruptible tasks."),
    gauge("node_load15", "Load average over 15 minutes: runnable plus uninterruptible tasks."),
    # /proc/pressure
    counter("node_pressure_cpu_waiting_seconds_total",
            "Seconds in which at least one task waited for a CPU (PSI cpu some)."),
    counter("node_pressure_io_waiting_seconds_total",
            "Seconds in which at least one task waited for I/O (PSI io some)."),
    counter("node_pressure_io_stalled_seconds_total",
            "Seconds in which every non-idle task stalled on I/O at once (PSI io full)."),
    counter("node_pressure_memory_waiting_seconds_total",
            "Seconds in which at least one task waited for memory (PSI memory some)."),
    counter("node_pressure_memory_stalled_seconds_total",
            "Seconds in which every non-idle task stalled on memory at once (PSI memory full)."),
    counter("node_pressure_irq_stalled_seconds_total",
            "Seconds in which a CPU ran only hard or soft interrupts (PSI irq full, kernel 6.1+)."),
    gauge("hpc_node_pressure_some_avg10_ratio",
          "Share of the last 10 s in which some task stalled on the resource (PSI some avg10).", "resource"),
    gauge("hpc_node_pressure_full_avg10_ratio",
          "Share of the last 10 s in which all non-idle tasks stalled on the resource (PSI full avg10).", "resource"),
    # /proc/diskstats and /proc/net/dev
    *(FamilySpec(name, kind, help_text, DEV) for name, kind, help_text, _ in DISK_COLUMNS),
    *(counter(name, help_text, *DEV) for name, help_text in NETDEV_COLUMNS),
    # /sys/class/net (netclass)
    gauge("node_network_up", "1 when the interface's operstate is up, else 0.", *DEV),
    gauge("node_network_info",
          "Always 1: the interface's address, broadcast address, duplex, operstate, admin state (from its flags) and "
          "alias.", "device", "address", "broadcast", "duplex", "operstate", "adminstate", "ifalias"),
    gauge("node_network_address_assign_type", "How the interface's address was assigned (addr_assign_type).", *DEV),
    gauge("node_network_carrier", "1 when the interface has a carrier (link detected), 0 when not.", *DEV),
    counter("node_network_carrier_changes_total", "Times the carrier went up or down.", *DEV),
    counter("node_network_carrier_up_changes_total", "Times the carrier came up.", *DEV),
    counter("node_network_carrier_down_changes_total", "Times the carrier went down (link flaps).", *DEV),
    gauge("node_network_device_id", "Network device property: dev_id.", *DEV),
    gauge("node_network_dormant", "1 when the interface is dormant (waiting for an external event).", *DEV),
    gauge("node_network_flags", "The interface's IFF_* flags as a number.", *DEV),
    gauge("node_network_iface_id", "The interface's index (ifindex).", *DEV),
    gauge("node_network_iface_link", "Index of the interface this one is linked to (iflink).", *DEV),
    gauge("node_network_iface_link_mode", "Network device property: link_mode.", *DEV),
    gauge("node_network_mtu_bytes", "Maximum transmission unit of the interface.", *DEV),
    gauge("node_network_name_assign_type", "How the interface got its name (name_assign_type).", *DEV),
    gauge("node_network_net_dev_group", "Network device property: netdev_group.", *DEV),
    gauge("node_network_speed_bytes", "Link speed in bytes per second (-125000 when the driver reports -1).", *DEV),
    gauge("node_network_transmit_queue_length", "Length of the transmit queue (tx_queue_len).", *DEV),
    gauge("node_network_protocol_type",
          "ARPHRD_* type of the interface (1 Ethernet, 32 InfiniBand, 772 loopback).", *DEV),
    # mounts and statvfs
    gauge("node_filesystem_size_bytes", "Filesystem size in bytes.", *FS),
    gauge("node_filesystem_free_bytes", "Free bytes, including those reserved for root.", *FS),
    gauge("node_filesystem_avail_bytes", "Bytes available to unprivileged users.", *FS),
    gauge("node_filesystem_files", "Inodes the filesystem has in total.", *FS),
    gauge("node_filesystem_files_free", "Inodes still free.", *FS),
    gauge("node_filesystem_readonly", "1 when the filesystem is mounted read-only.", *FS),
    gauge("node_filesystem_device_error",
          "1 when statvfs on the mount failed or hung (the reason is in the device_error label), so its sizes are "
          "missing.", *FS),
    counter("hpc_node_filesystem_stat_timeouts_total",
            "Times statvfs on the mount did not return within the mount timeout.", "device", "fstype", "mountpoint"),
    # /sys/class/hwmon (the per-sensor families are named by hwmon.py)
    gauge("node_hwmon_chip_names", "Always 1: the chip's driver name (the hwmon `name` file).", "chip", "chip_name"),
    gauge("node_hwmon_sensor_label", "Always 1: the sensor's label from the driver.", "chip", "sensor", "label"),
    # /sys/class/powercap (the per-zone families are named by rapl.py)
    counter("node_rapl_joules_total",
            "Energy the RAPL domain used, in joules (wraps of energy_uj accumulated).", "index", "path", "rapl_zone"),
    # /sys/devices/system/edac
    counter("node_edac_correctable_errors_total", "Corrected memory errors on the memory controller.", "controller"),
    counter("node_edac_uncorrectable_errors_total",
            "Uncorrected memory errors on the memory controller.", "controller"),
    counter("node_edac_csrow_correctable_errors_total",
            "Corrected memory errors on the csrow; csrow=\"unknown\" for errors the driver could not place "
            "(ce_noinfo_count).", "controller", "csrow"),
    counter("node_edac_csrow_uncorrectable_errors_total",
            "Uncorrected memory errors on the csrow; csrow=\"unknown\" for errors the driver could not place "
            "(ue_noinfo_count).", "controller", "csrow"),
    counter("node_edac_channel_correctable_errors_total",
            "Corrected memory errors on the csrow channel (one DIMM, named by dimm_label).",
            "controller", "csrow", "channel", "dimm_label"),
    counter("node_edac_channel_uncorrectable_errors_total",
            "Uncorrected memory errors on the csrow channel (one DIMM, named by dimm_label).",
            "controller", "csrow", "channel", "dimm_label"),

)


# Families named from the data (meminfo and NUMA fields, vmstat fields, hwmon sensors, RAPL zones) and
# the textfile collector's own: any name under these prefixes is the node collector's.
DATA_NAMED_PREFIXES = ("node_memory_", "node_vmstat_", "node_hwmon_", "node_rapl_", "node_textfile_")
OWN_PREFIXES = ("hpc_", "hpcwatch_")  # every other hpcwatch collector's families


# The table the registry, the docs, tests and FamilyBuilder use: the fixed families, then the data-named
# family sets as templates (most specific first: the first template that matches a name is its spec).
FAMILIES = FamilyTable([
    *FIXED,
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


@functools.lru_cache(maxsize=4096)  # data-named families repeat every scrape; their number is the hardware's
def _spec(name: str) -> tuple[FamilySpec, bool]:
    """The row of FAMILIES an exposed family belongs to, and whether that row is a template."""
    spec = FAMILIES.spec_of(name)
    if spec is None:
        raise KeyError(f"node family {name} has samples but no row in FAMILIES")
    return spec, bool(spec.fields)


class FamilyBuilder:
    """Collects samples of one scrape, then builds each family once from its row of FAMILIES, in the
    order the samples came; a data-named family takes the HELP its source `declare`d for it."""

    def __init__(self) -> None:
        self._rows: dict[str, list[tuple[tuple[str, ...], float]]] = {}
        self._help: dict[str, str] = {}

    def add(self, name: str, labels: tuple[str, ...], value: float) -> None:
        rows = self._rows.get(name)
        if rows is None:
            rows = self._rows[name] = []
        rows.append((labels, value))

    def declare(self, name: str, help_text: str) -> None:
        """The HELP of a data-named family (e.g. what this meminfo field is); the first declaration wins."""
        if name not in self._help:
            self._help[name] = help_text

    def families(self) -> Iterator[Metric]:
        for name, rows in self._rows.items():
            spec, templated = _spec(name)
            # A fixed family keeps its row's HELP; a template's generic one is replaced by the field's own.
            fam = spec.new_as(name, self._help.get(name) if templated else None)
            labels = spec.labels
            append = fam.samples.append
            seen: set[tuple[str, ...]] = set()
            for values, value in rows:
                if values in seen:  # one sample per label set: the first wins
                    continue
                seen.add(values)
                append(Sample(name, dict(zip(labels, values)), float(value), None, None))
            yield fam


def is_own_family(name: str) -> bool:
    """Whether hpcwatch exports a family of this name itself (so a textfile must not define it)."""
    return (name.startswith(OWN_PREFIXES + DATA_NAMED_PREFIXES) or name in FAMILIES or name + "_total" in FAMILIES
            or name.removesuffix("_total") in FAMILIES)
