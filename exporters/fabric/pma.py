"""The InfiniBand Performance Management Agent (PMA) counters: names, widths and what saturation means.

IBA PortCounters (attribute 0x12) holds fixed-width counters that stop at their maximum instead of
wrapping (IBA 1.3 §16.1.3.5), so a pinned counter reads as a flat line that looks healthy. The widths
below are the PortCounters field widths, the same table the kernel's `PORT_PMA_ATTR(name, counter,
width, offset)` lines in drivers/infiniband/core/sysfs.c encode. PortCountersExtended (0x1D) carries
64-bit data and packet counters, and on PMAs with AdditionalPortCountersExtended 64-bit error
counters too; 64-bit counters are never reported as saturated.
"""

from __future__ import annotations

# sysfs file name (counters/<name>) -> PortCounters width in bits.
PORT_COUNTERS_WIDTH: dict[str, int] = {
    "symbol_error": 16,
    "link_error_recovery": 8,
    "link_downed": 8,
    "port_rcv_errors": 16,
    "port_rcv_remote_physical_errors": 16,
    "port_rcv_switch_relay_errors": 16,
    "port_xmit_discards": 16,
    "port_xmit_constraint_errors": 8,
    "port_rcv_constraint_errors": 8,
    "local_link_integrity_errors": 4,
    "excessive_buffer_overrun_errors": 4,
    "VL15_dropped": 16,
    "port_xmit_data": 32,
    "port_rcv_data": 32,
    "port_xmit_packets": 32,
    "port_rcv_packets": 32,
    "port_xmit_wait": 32,
}

# The standard error counters, exported as hpc_fabric_*_errors_total{counter=<sysfs name>}.
ERROR_COUNTERS: tuple[str, ...] = (
    "symbol_error",
    "link_error_recovery",
    "link_downed",
    "port_rcv_errors",
    "port_rcv_remote_physical_errors",
    "port_rcv_switch_relay_errors",
    "port_xmit_discards",
    "port_xmit_constraint_errors",
    "port_rcv_constraint_errors",
    "local_link_integrity_errors",
    "excessive_buffer_overrun_errors",
    "VL15_dropped",
)

# Traffic counters: canonical name -> (family suffix, multiplier). Data counters count 4-byte words.
TRAFFIC_COUNTERS: dict[str, tuple[str, int]] = {
    "port_xmit_data": ("transmit_bytes", 4),
    "port_rcv_data": ("receive_bytes", 4),
    "port_xmit_packets": ("transmit_packets", 1),
    "port_rcv_packets": ("receive_packets", 1),
    "unicast_xmit_packets": ("unicast_transmit_packets", 1),
    "unicast_rcv_packets": ("unicast_receive_packets", 1),
    "multicast_xmit_packets": ("multicast_transmit_packets", 1),
    "multicast_rcv_packets": ("multicast_receive_packets", 1),
}

TRAFFIC_HELP: dict[str, str] = {
    "transmit_bytes": "Bytes transmitted on the port, all VLs (PMA PortXmitData, 4-byte words times 4).",
    "receive_bytes": "Bytes received on the port, all VLs (PMA PortRcvData, 4-byte words times 4).",
    "transmit_packets": "Packets transmitted on the port, all VLs (PMA PortXmitPkts).",
    "receive_packets": "Packets received on the port, all VLs (PMA PortRcvPkts).",
    "unicast_transmit_packets": "Unicast packets transmitted on the port (PMA PortUnicastXmitPkts).",
    "unicast_receive_packets": "Unicast packets received on the port (PMA PortUnicastRcvPkts).",
    "multicast_transmit_packets": "Multicast packets transmitted on the port (PMA PortMulticastXmitPkts).",
    "multicast_receive_packets": "Multicast packets received on the port (PMA PortMulticastRcvPkts).",
}

# Pre-4.5 kernels (and MLNX_OFED of that era) expose 64-bit PortCountersExtended values in a separate
# counters_ext/ directory under these names; they win over the 32-bit counters/ files.
LEGACY_EXT_NAMES: dict[str, str] = {
    "port_xmit_data_64": "port_xmit_data",
    "port_rcv_data_64": "port_rcv_data",
    "port_xmit_packets_64": "port_xmit_packets",
    "port_rcv_packets_64": "port_rcv_packets",
    "port_unicast_xmit_packets": "unicast_xmit_packets",
    "port_unicast_rcv_packets": "unicast_rcv_packets",
    "port_multicast_xmit_packets": "multicast_xmit_packets",
    "port_multicast_rcv_packets": "multicast_rcv_packets",
}

# perfquery (libibmad) field name -> canonical (sysfs) counter name.
PERFQUERY_FIELDS: dict[str, str] = {
    "SymbolErrorCounter": "symbol_error",
    "LinkErrorRecoveryCounter": "link_error_recovery",
    "LinkDownedCounter": "link_downed",
    "PortRcvErrors": "port_rcv_errors",
    "PortRcvRemotePhysicalErrors": "port_rcv_remote_physical_errors",
    "PortRcvSwitchRelayErrors": "port_rcv_switch_relay_errors",
    "PortXmitDiscards": "port_xmit_discards",
    "PortXmitConstraintErrors": "port_xmit_constraint_errors",
    "PortRcvConstraintErrors": "port_rcv_constraint_errors",
    "LocalLinkIntegrityErrors": "local_link_integrity_errors",
    "ExcessiveBufferOverrunErrors": "excessive_buffer_overrun_errors",
    "VL15Dropped": "VL15_dropped",
    "PortXmitData": "port_xmit_data",
    "PortRcvData": "port_rcv_data",
    "PortXmitPkts": "port_xmit_packets",
    "PortRcvPkts": "port_rcv_packets",
    "PortXmitWait": "port_xmit_wait",
    "PortUnicastXmitPkts": "unicast_xmit_packets",
    "PortUnicastRcvPkts": "unicast_rcv_packets",
    "PortMulticastXmitPkts": "multicast_xmit_packets",
    "PortMulticastRcvPkts": "multicast_rcv_packets",
}


def counter_max(width: int) -> int:
    return (1 << width) - 1


def is_saturated(name: str, value: int, width: int | None = None) -> bool:
    """True when `value` sits at the maximum of the counter's PortCounters width (never for 64-bit)."""
    w = PORT_COUNTERS_WIDTH.get(name) if width is None else width
    return w is not None and w < 64 and value >= counter_max(w)


# IB link speeds as ibnetdiscover and the kernel's `rate` file name them -> nominal Gb/s per lane
# (the kernel's ib_rate convention: 4X HDR = 200 Gb/sec).
LANE_GBPS: dict[str, float] = {
    "SDR": 2.5, "DDR": 5.0, "QDR": 10.0, "FDR10": 10.0, "FDR": 14.0,
    "EDR": 25.0, "HDR": 50.0, "NDR": 100.0, "XDR": 200.0,
}
