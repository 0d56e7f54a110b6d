"""Pure parsers for Lustre lprocfs `stats` files and for `lctl get_param` output.

A stats file (llite.*.stats, mdc.*.md_stats, osc.*.stats, obdfilter.*.stats, mdt.*.md_stats) has one
counter per line: `name N samples [unit] [min max sum [sumsq]]`, after a header of `snapshot_time`
(2.10: `secs.usecs`) and, from 2.14, `start_time` and `elapsed_time` (`secs.nsecs`).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

ErrorCallback = Callable[[str], None]

_COUNTER = re.compile(
    r"^(?P<name>[A-Za-z_][\w]*)\s+(?P<n>\d+)\s+samples\s+\[(?P<unit>[^\]\s]*)\]"
    r"(?:\s+(?P<min>\d+)\s+(?P<max>\d+)\s+(?P<sum>\d+)(?:\s+(?P<sumsq>\d+))?)?\s*$"
)
_HEADER = re.compile(r"^(?:snapshot_time|start_time|elapsed_time):?\s+\d+(?:\.\d+)?(?:\s+secs\.[nu]secs)?\s*$")
# `lctl get_param` starts each parameter with `<path>=`; a value on the same line means a one-line value.
_PARAM = re.compile(r"^(?P<param>[A-Za-z_][\w\-]*(?:\.[\w\-*:@]+)+)=(?P<value>.*)$")

# Units whose `sum` is a time in microseconds (osc/mdc print `usec`, llite and targets `usecs`).
TIME_UNITS = frozenset({"usec", "usecs"})
BYTE_UNITS = frozenset({"bytes"})


class StatsCounter(NamedTuple):
    """One counter line of a stats file; `total` is the sum column (None when the counter has none)."""

    name: str
    samples: int
    unit: str
    total: int | None = None

    @property
    def is_bytes(self) -> bool:
        return self.unit in BYTE_UNITS

    @property
    def seconds(self) -> float | None:
        """The summed time in seconds when the unit is microseconds."""
        if self.unit in TIME_UNITS and self.total is not None:
            return self.total / 1e6
        return None


def parse_stats(text: str, on_error: ErrorCallback | None = None) -> list[StatsCounter]:
    """Counters of one stats file; lines that fit neither the header nor the counter shape are skipped
    and reported through `on_error`.

    A name printed twice keeps its first line. Lustre 2.10 OSTs register two counter sets in one
    `stats` file: the OFD request counters first (`statfs` counts OST_STATFS RPCs from clients), then
    the generic obd-method counters, whose `statfs` local calls also bump (each read of kbytesfree is
    one); the sum of the two is neither number. The request counter is the one 2.12+ keeps.
    """
    out: list[StatsCounter] = []
    seen: set[str] = set()
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _HEADER.match(line):
            continue
        m = _COUNTER.match(line)
        if m is None:
            if on_error is not None:
                on_error(f"unreadable stats line: {line[:80]!r}")
            continue
        name = m.group("name")
        if name in seen:
            continue
        seen.add(name)
        total = m.group("sum")
        out.append(StatsCounter(name, int(m.group("n")), m.group("unit"),
                                int(total) if total is not None else None))
    return out


def split_get_param(text: str) -> Iterator[tuple[str, str]]:
    """(parameter, value) pairs from `lctl get_param a.*.x b.*.y` output.

    A multi-line value follows its `param=` line; a one-line value sits after the `=`.
    """
    param: str | None = None
    body: list[str] = []
    for line in text.splitlines():
        m = _PARAM.match(line)
        if m is not None:
            if param is not None:
                yield param, "\n".join(body)
            param, value = m.group("param"), m.group("value")
            body = [value] if value else []
            continue
        if param is not None:
            body.append(line)
    if param is not None:
        yield param, "\n".join(body)


def param_device(param: str) -> tuple[str, str]:
    """('llite', 'lustre-ffff88') from 'llite.lustre-ffff88.stats' (type, device)."""
    head, _, rest = param.partition(".")
    device, _, _ = rest.rpartition(".")
    return head, device


def fold_counters(counters, ops: dict[str, int], byte_totals: dict[str, int],
                  seconds: dict[str, float]) -> None:
    """Add counters ((name, samples, unit, total) tuples) into operation, byte and time totals.

    A bytes counter `read_bytes` adds its sum to bytes["read"]; its samples count reads only when the
    same stats have no `read` counter of their own (2.12+ targets and 2.14+ llite have both), so an
    operation is never counted twice.
    """
    for name, samples, unit, total in counters:
        if unit in BYTE_UNITS:
            op = name.removesuffix("_bytes")
            byte_totals[op] = byte_totals.get(op, 0) + (total or 0)
            for other in counters:
                if other[0] == op:
                    break
            else:
                ops[op] = ops.get(op, 0) + samples
            continue
        ops[name] = ops.get(name, 0) + samples
        if total is not None and unit in TIME_UNITS:
            seconds[name] = seconds.get(name, 0.0) + total / 1e6
