"""/proc/meminfo (and the per-NUMA-node meminfo files): every field, named as node_exporter names it.

node_exporter's rule: `Active(anon)` becomes `Active_anon`; a value with a unit (always kB) is
multiplied by 1024 and gets `_bytes`; a count (HugePages_Total) keeps the bare field name.
So MemTotal is `node_memory_MemTotal_bytes` and HugePages_Total `node_memory_HugePages_Total`.
"""

from __future__ import annotations

import functools
import re
from typing import NamedTuple


class MemField(NamedTuple):
    """One meminfo line: kernel field name, node_exporter's key (`Active_anon_bytes`), value in bytes
    when `is_bytes`, else a count."""

    field: str
    key: str
    value: float
    is_bytes: bool


_PARENS = re.compile(r"\((.*)\)")
_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")


@functools.lru_cache(maxsize=1024)
def field_key(field: str, is_bytes: bool) -> str | None:
    """node_exporter's key for a field: `Active(anon)` -> `Active_anon[_bytes]`; None when the result
    cannot be part of a metric name."""
    key = _PARENS.sub(r"_\1", field) + ("_bytes" if is_bytes else "")
    return key if _NAME.fullmatch(key) else None


def parse_meminfo(text: str) -> tuple[list[MemField], int]:
    """(fields in file order, one per key; number of lines skipped as unreadable). Never raises."""
    fields: dict[str, MemField] = {}
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3) or not parts[0].endswith(":") or (len(parts) == 3 and parts[2] != "kB"):
            errors += 1
            continue
        field = parts[0][:-1]
        key = field_key(field, len(parts) == 3)
        try:
            value = int(parts[1])
        except ValueError:
            key = None
        if key is None:
            errors += 1
            continue
        fields[key] = MemField(field, key, float(value * 1024 if len(parts) == 3 else value), len(parts) == 3)
    return list(fields.values()), errors


class NumaField(NamedTuple):
    """One line of /sys/devices/system/node/nodeN/meminfo: NUMA node (from the line), key, value."""

    node: str
    key: str
    value: float


def parse_meminfo_numa(text: str) -> tuple[list[NumaField], int]:
    """(`Node 0 MemTotal: 16384 kB` lines as node_exporter keys them, lines skipped). Keys get no
    `_bytes` even for kB values (node_exporter's node_memory_numa_MemTotal is in bytes). Never raises."""
    out: list[NumaField] = []
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if (len(parts) not in (4, 5) or parts[0] != "Node" or not parts[1].isdigit() or not parts[1].isascii()
                or not parts[2].endswith(":") or (len(parts) == 5 and parts[4] != "kB")):
            errors += 1
            continue
        key = field_key(parts[2].rstrip(":"), False)
        try:
            value = int(parts[3])
        except ValueError:
            key = None
        if key is None:
            errors += 1
            continue
        out.append(NumaField(parts[1], key, float(value * 1024 if len(parts) == 5 else value)))
    return out, errors


def parse_numastat(text: str) -> tuple[dict[str, int], int]:
    """(`numa_hit 123` lines of nodeN/numastat, lines skipped). Never raises."""
    out: dict[str, int] = {}
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not _NAME.fullmatch(parts[0]):
            errors += 1
            continue
        try:
            out[parts[0]] = int(parts[1])
        except ValueError:
            errors += 1
    return out, errors
