"""Pure parsers for /sys/class/infiniband: file contents in, typed port and device records out, no I/O.

These are the counter rules of the `fabric` collector, in one place: the collector reads the files
and hands their bytes to `port_counters` and `split_hw_counters` on every scrape. Every parser
returns None (or skips the entry) for content it cannot read, e.g. `N/A (no PMA)`, which kernels
before 4.19 print for a PMA counter whose MAD failed. They never raise on any input.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hpcwatch.exporters.fabric.pma import (
    ERROR_COUNTERS,
    LEGACY_EXT_NAMES,
    PORT_COUNTERS_WIDTH,
    TRAFFIC_COUNTERS,
    counter_max,
)

_U64_MAX = (1 << 64) - 1
_ASCII_SPACE = " \t\n\r\x0b\x0c"  # what bytes.strip() strips; str.strip() would also take \x1c-\x1f, \x85...
_U32_MAX = (1 << 32) - 1
# PortCounters fields that PortCountersExtended widens to 64 bits when the PMA has extended counters.
WIDENED = frozenset({"port_xmit_data", "port_rcv_data", "port_xmit_packets", "port_rcv_packets"})
_SCALED = {name: mult for name, (_, mult) in TRAFFIC_COUNTERS.items() if mult != 1}

# counters/<name> -> (where its value goes, the maximum it stops at (None: never pinned), widened),
# derived from the pma tables once so a scrape does one lookup per file.
_TRAFFIC, _WAIT, _ERROR = "traffic", "wait", "error"


def _rules() -> dict[str, tuple[str, int | None, bool]]:
    rules: dict[str, tuple[str, int | None, bool]] = {}
    for name in (*TRAFFIC_COUNTERS, "port_xmit_wait", *ERROR_COUNTERS):
        slot = _TRAFFIC if name in TRAFFIC_COUNTERS else _WAIT if name == "port_xmit_wait" else _ERROR
        width = PORT_COUNTERS_WIDTH.get(name)
        rules[name] = (slot, counter_max(width) if width is not None and width < 64 else None, name in WIDENED)
    return rules


_RULES = _rules()

STATE_ACTIVE = 4  # IB PortState: 1 Down, 2 Init, 3 Armed, 4 Active, 5 ActiveDefer
PHYS_LINK_UP = 5  # PortPhysicalState: 1 Sleep, 2 Polling, 3 Disabled, 4 PortConfigurationTraining, 5 LinkUp


@dataclasses.dataclass(slots=True)
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


def parse_counter(text: str | bytes | None) -> int | None:
    """A counter file's value, or None for missing, `N/A (no PMA)`, negative or non-numeric content."""
    if text is None:
        return None
    # Only ASCII whitespace is stripped and only ASCII digits read, whether the content is bytes (as
    # read) or text: bytes.isdigit() is ASCII-only, str.isdigit() also takes other scripts' digits.
    s = text.strip(_ASCII_SPACE if type(text) is str else None)
    if s.isdigit() and (type(s) is bytes or s.isascii()):
        v = int(s)
        return v if v <= _U64_MAX else None
    return None


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


def is_hw_gauge(name: str) -> bool:
    """hw_counters that are levels, not event counts (bnxt_re `active_qps`, `watermark_*`)."""
    known = _HW_GAUGE.get(name)
    if known is None:
        known = name.startswith("active_") or "watermark" in name
        if len(_HW_GAUGE) < 4096:  # driver vocabularies are small; the bound only guards odd trees
            _HW_GAUGE[name] = known
    return known


_HW_GAUGE: dict[str, bool] = {}


def split_hw_counters(texts: Mapping[str, str | bytes | None]) -> tuple[dict[str, int], dict[str, int], int]:
    """hw_counters/<name> texts -> (counters, gauges, skipped); `lifespan` is a setting and is left out."""
    counters: dict[str, int] = {}
    gauges: dict[str, int] = {}
    skipped = 0
    for name, text in texts.items():
        if name == "lifespan":
            continue
        s = text.strip(_ASCII_SPACE if type(text) is str else None) if text is not None else ""
        # parse_counter, inlined: this and port_counters are the hot loops of a scrape.
        if not (s.isdigit() and (type(s) is bytes or s.isascii())) or (v := int(s)) > _U64_MAX:
            skipped += 1
            continue
        level = _HW_GAUGE.get(name)  # the cached answer first: no call per file
        if level is None:
            level = is_hw_gauge(name)
        (gauges if level else counters)[name] = v
    return counters, gauges, skipped


def port_counters(rec: PortRecord, counters: Mapping[str, str | bytes | None],
                  counters_ext: Mapping[str, str | bytes | None] | None = None) -> None:
    """Fill `rec` from counters/ (and the pre-4.5 counters_ext/) texts, applying the width table."""
    # A kernel that found PortCountersExtended support lists unicast_* in counters/ and its
    # data/packet files are 64-bit; otherwise they are the 32-bit PortCounters fields.
    extended = "unicast_xmit_packets" in counters
    traffic, errors, saturated = rec.traffic, rec.errors, rec.saturated
    for name, text in counters.items():
        s = text.strip(_ASCII_SPACE if type(text) is str else None) if text is not None else ""
        if not (s.isdigit() and (type(s) is bytes or s.isascii())) or (v := int(s)) > _U64_MAX:  # parse_counter
            rec.skipped += 1
            continue
        rule = _RULES.get(name)
        if rule is None:
            continue
        slot, top, widened = rule
        if slot is _TRAFFIC:
            traffic[name] = v
        elif slot is _WAIT:
            rec.xmit_wait = v
        else:
            errors[name] = v
        # A widened counter is 64-bit on a PMA with extended counters, or once it has passed 32 bits.
        if top is not None and not (widened and (extended or v > _U32_MAX)):
            saturated[name] = v >= top
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
    for name, mult in _SCALED.items():
        if name in rec.traffic:
            rec.traffic[name] *= mult
