"""Pure parsers for /sys/class/infiniband: file texts in, typed port and device records out, no I/O.

Every parser returns None (or skips the entry) for text it cannot read, e.g. `N/A (no PMA)`, which
kernels before 4.19 print for a PMA counter whose MAD failed. They never raise on any input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hpcwatch.exporters.fabric.pma import (
    ERROR_COUNTERS,
    LEGACY_EXT_NAMES,
    PORT_COUNTERS_WIDTH,
    TRAFFIC_COUNTERS,
    is_saturated,
)

_U64_MAX = (1 << 64) - 1
_U32_MAX = (1 << 32) - 1
# PortCounters fields that PortCountersExtended widens to 64 bits when the PMA has extended counters.
WIDENED = ("port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets")

STATE_ACTIVE = 4  # IB PortState: 1 Down, 2 Init, 3 Armed, 4 Active, 5 ActiveDefer
PHYS_LINK_UP = 5  # PortPhysicalState: 1 Sleep, 2 Polling, 3 Disabled, 4 PortConfigurationTraining, 5 LinkUp


@dataclasses.dataclass
class PortRecord:
    """One port of one RDMA device as read in one scrape."""

    device: str
    port: str
    state: tuple[int, str] | None = None
    phys_state: tuple[int, str] | None = None
    rate_bytes: float | None = None
    link_layer: str = ""
    netdev: str = ""
    traffic: dict[str, int] = dataclasses.field(default_factory=dict)  # canonical name -> value (data in bytes)
    errors: dict[str, int] = dataclasses.field(default_factory=dict)
    xmit_wait: int | None = None
    saturated: dict[str, bool] = dataclasses.field(default_factory=dict)  # counter -> pinned at its max
    hw_counters: dict[str, int] = dataclasses.field(default_factory=dict)
    hw_gauges: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: int = 0  # counter files present but unreadable or not a number


@dataclasses.dataclass
class DeviceRecord:
    """Device-level identity and hw_counters of one RDMA device."""

    device: str
    hca_type: str = ""
    firmware_version: str = ""
    board_id: str = ""
    node_guid: str = ""
    hw_counters: dict[str, int] = dataclasses.field(default_factory=dict)
    hw_gauges: dict[str, int] = dataclasses.field(default_factory=dict)
    skipped: int = 0


def parse_counter(text: str | None) -> int | None:
    """A counter file's value, or None for missing, `N/A (no PMA)`, negative or non-numeric text."""
    if text is None:
        return None
    s = text.strip()
    if not s.isdigit() or not s.isascii():
        return None
    v = int(s)
    return v if v <= _U64_MAX else None


def parse_state(text: str | None) -> tuple[int, str] | None:
    """`4: ACTIVE` / `5: LinkUp` -> (4, "ACTIVE"); None when the text is not `<id>: <name>`."""
    if text is None:
        return None
    num, sep, name = text.strip().partition(":")
    num = num.strip()
    if not sep or not num.isdigit() or not num.isascii() or len(num) > 3:
        return None
    return int(num), name.strip()


def parse_rate(text: str | None) -> float | None:
    """`200 Gb/sec (4X HDR)` or `2.5 Gb/sec (1X SDR)` -> bytes per second; None when unreadable."""
    if text is None:
        return None
    value, sep, _ = text.strip().partition(" Gb/sec")
    if not sep:
        return None
    try:
        gbps = float(value)
    except ValueError:
        return None
    if not (0 <= gbps < 1e6):  # also rejects nan and inf
        return None
    return gbps * 1e9 / 8


def clean_label(text: str | None, limit: int = 128) -> str:
    """A sysfs string as a label value: first line, stripped, length-capped."""
    if not text:
        return ""
    return text.strip().split("\n", 1)[0][:limit]


def is_hw_gauge(name: str) -> bool:
    """hw_counters that are levels, not event counts (bnxt_re `active_qps`, `watermark_*`)."""
    return name.startswith("active_") or "watermark" in name


def split_hw_counters(texts: Mapping[str, str | None]) -> tuple[dict[str, int], dict[str, int], int]:
    """hw_counters/<name> texts -> (counters, gauges, skipped); `lifespan` is a setting and is left out."""
    counters: dict[str, int] = {}
    gauges: dict[str, int] = {}
    skipped = 0
    for name, text in texts.items():
        if name == "lifespan":
            continue
        v = parse_counter(text)
        if v is None:
            skipped += 1
        elif is_hw_gauge(name):
            gauges[name] = v
        else:
            counters[name] = v
    return counters, gauges, skipped


def port_counters(rec: PortRecord, counters: Mapping[str, str | None],
                  counters_ext: Mapping[str, str | None] | None = None) -> None:
    """Fill `rec` from counters/ (and the pre-4.5 counters_ext/) texts, applying the width table."""
    # A kernel that found PortCountersExtended support lists unicast_* in counters/ and its
    # data/packet files are 64-bit; otherwise they are the 32-bit PortCounters fields.
    extended = "unicast_xmit_packets" in counters
    for name, text in counters.items():
        v = parse_counter(text)
        if v is None:
            rec.skipped += 1
            continue
        width = PORT_COUNTERS_WIDTH.get(name)
        if name in WIDENED and (extended or v > _U32_MAX):
            width = 64
        if name in TRAFFIC_COUNTERS:
            rec.traffic[name] = v
        elif name == "port_xmit_wait":
            rec.xmit_wait = v
        elif name in ERROR_COUNTERS:
            rec.errors[name] = v
        else:
            continue
        if width is not None and width < 64:
            rec.saturated[name] = is_saturated(name, v, width)
    for legacy, text in (counters_ext or {}).items():
        name = LEGACY_EXT_NAMES.get(legacy)
        if name is None:
            continue
        v = parse_counter(text)
        if v is None:
            rec.skipped += 1
            continue
        rec.traffic[name] = v
        rec.saturated.pop(name, None)  # the 64-bit value replaces the 32-bit one
    for name, (_, mult) in TRAFFIC_COUNTERS.items():
        if mult != 1 and name in rec.traffic:
            rec.traffic[name] *= mult
