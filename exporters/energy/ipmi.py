"""Node power from the BMC: `ipmitool dcmi power reading` (DCMI 1.1+), parsed purely; read as a snapshot.

    Instantaneous power reading:                   220 Watts
    Minimum during sampling period:                 40 Watts
    Maximum during sampling period:                460 Watts
    Average power reading over sample period:      213 Watts
    IPMI timestamp:                           Thu Jan  1 00:00:00 2024
    Sampling period:                          00000001 Seconds.
    Power reading state is:                   activated

A BMC whose power reading is "deactivated" (or that answers with no instantaneous reading) gives
no figure: the node then has no meter from IPMI. ipmitool is slow (a BMC round trip, seconds on a
busy BMC), so it runs on its own interval with a timeout and the sampler uses its last reading.
"""

from __future__ import annotations

import dataclasses
import re

from hpcwatch.exporters.command import run_command

_LINE = re.compile(r"^\s*([A-Za-z][A-Za-z ]*?)\s*:\s*(.*?)\s*$")
_WATTS = re.compile(r"^(\d+(?:\.\d+)?)\s*Watts?$", re.IGNORECASE)


class IpmiParseError(ValueError):
    """ipmitool printed something that is not a DCMI power reading (the message says what)."""


@dataclasses.dataclass(frozen=True)
class PowerReading:
    watts: float                  # instantaneous
    average_watts: float | None   # over the BMC's sampling period
    active: bool                  # "Power reading state is: activated"


def parse_dcmi_power(text: str) -> PowerReading | None:
    """The reading, or None when the BMC's power reading is deactivated; IpmiParseError when the text is
    not a DCMI power reading at all."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        m = _LINE.match(line)
        if m:
            fields[m.group(1).strip().lower()] = m.group(2)
    inst = fields.get("instantaneous power reading")
    if inst is None:
        raise IpmiParseError("no 'Instantaneous power reading' line (not `ipmitool dcmi power reading` output)")
    state = fields.get("power reading state is", "activated").strip().lower()
    watts = _WATTS.match(inst.strip())
    if watts is None:
        raise IpmiParseError(f"instantaneous power reading {inst[:40]!r}: expected '<number> Watts'")
    if state != "activated":
        return None
    avg = _WATTS.match(fields.get("average power reading over sample period", "").strip())
    return PowerReading(float(watts.group(1)), float(avg.group(1)) if avg else None, True)


def read_dcmi_power(ipmitool: str, timeout: float) -> PowerReading | None:
    """The reader: one `ipmitool dcmi power reading` (argument list, timeout, pinned environment)."""
    return parse_dcmi_power(run_command([ipmitool, "dcmi", "power", "reading"], timeout=timeout))
