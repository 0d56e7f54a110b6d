"""Pure parser for `beegfs-ctl --clientstats --nodetype=meta|storage --interval=0` output.

Each line is a client (IP or name) or `Sum:` followed by `value [name]` pairs, e.g.
`Sum:   61957 [sum]  0 [ack]  20 [sChDrct] ... 22385 [ops-rd]  313.54 [MiB-rd] ...`. The storage node
type reports data volume as `[MiB-rd]`/`[MiB-wr]` (or `[B-rd]`/`[B-wr]` with --rwunit=B). Values may be
printed in exponent notation. We read the `Sum:` line: totals over every client.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable

ErrorCallback = Callable[[str], None]

_PAIR = re.compile(r"(\S+)\s+\[([^\]\s]+)\]")
# Data volume columns: name -> (direction, bytes per unit).
VOLUME_COLUMNS = {"MiB-rd": ("read", 1 << 20), "MiB-wr": ("write", 1 << 20),
                  "B-rd": ("read", 1), "B-wr": ("write", 1)}


class ClientStatsError(ValueError):
    """Output with no usable `Sum:` line (for example an error message instead of statistics)."""


@dataclasses.dataclass
class ClientStatsSum:
    """The `Sum:` line: total requests, requests per operation, and bytes read and written."""

    requests: float | None
    operations: dict[str, float]
    bytes: dict[str, float]


def _number(token: str) -> float | None:
    try:
        v = float(token)
    except ValueError:
        return None
    return v if math.isfinite(v) and v >= 0 else None


def parse_clientstats(text: str, on_error: ErrorCallback | None = None) -> ClientStatsSum:
    """The last `Sum:` line of the output; raise ClientStatsError when there is none."""
    sum_line = None
    for line in text.splitlines():
        if line.lstrip().startswith("Sum:"):
            sum_line = line.split("Sum:", 1)[1]
    if sum_line is None:
        raise ClientStatsError("no Sum: line in beegfs-ctl --clientstats output")
    stats = ClientStatsSum(None, {}, {})
    rest = _PAIR.sub("", sum_line).strip()
    if rest and on_error is not None:
        on_error(f"unreadable part of the Sum: line: {rest[:60]!r}")
    for value, name in _PAIR.findall(sum_line):
        v = _number(value)
        if v is None:
            if on_error is not None:
                on_error(f"not a count: {value[:20]!r} [{name[:20]}]")
            continue
        if name == "sum":
            stats.requests = v
        elif name in VOLUME_COLUMNS:
            direction, scale = VOLUME_COLUMNS[name]
            stats.bytes[direction] = stats.bytes.get(direction, 0.0) + v * scale
        else:
            stats.operations[name] = v
    return stats
