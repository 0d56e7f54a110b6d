"""/proc/meminfo: every field, in bytes where the kernel gives kB (HugePages_* are page counts)."""

from __future__ import annotations

import functools
from typing import NamedTuple


class MemField(NamedTuple):
    """One meminfo line: kernel field name, its snake_case form (`Active(anon)` -> `active_anon`), value
    (bytes when `is_bytes`, else a count)."""

    field: str
    name: str
    value: float
    is_bytes: bool


_UNITS = {"kB": 1024}

# Fields whose mechanical snake_case would read as a unit to promtool (`s_reclaimable`) or is cryptic.
_RENAMES = {
    "SReclaimable": "slab_reclaimable",
    "SUnreclaim": "slab_unreclaimable",
    "KReclaimable": "kernel_reclaimable",
    "SecPageTables": "secondary_page_tables",
    "HugePages_Rsvd": "huge_pages_reserved",
    "HugePages_Surp": "huge_pages_surplus",
}
# promtool's unit abbreviations: a name part equal to one of these is glued to its neighbour.
_ABBREVIATIONS = frozenset({"s", "ms", "us", "ns", "sec", "b", "kb", "mb", "gb", "tb", "pb", "m", "h", "d"})


@functools.lru_cache(maxsize=1024)
def snake_case(field: str) -> str | None:
    """`MemTotal` -> `mem_total`, `SReclaimable` -> `s_reclaimable`, `Active(anon)` -> `active_anon`;
    None for a field that cannot be part of a metric name."""
    if field in _RENAMES:
        return _RENAMES[field]
    s = field.replace("(", "_").replace(")", "")
    if not s or not s.isascii() or not s.replace("_", "").isalnum():
        return None
    out = []
    for i, c in enumerate(s):
        if c.isupper() and i > 0:
            prev, nxt = s[i - 1], s[i + 1:i + 2]
            if prev.islower() or (prev.isupper() and nxt.islower()):
                out.append("_")
        out.append(c.lower())
    parts = [part for part in "".join(out).split("_") if part]
    glued: list[str] = []
    for part in parts:
        if glued and (part in _ABBREVIATIONS or glued[-1] in _ABBREVIATIONS):
            glued[-1] += part
        else:
            glued.append(part)
    name = "_".join(glued)
    return name if name and name not in _ABBREVIATIONS else None


def parse_meminfo(text: str) -> tuple[list[MemField], int]:
    """(fields in file order, one per snake_case name; number of lines skipped as unreadable). Never raises."""
    fields: dict[str, MemField] = {}
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) not in (2, 3) or not parts[0].endswith(":"):
            errors += 1
            continue
        field = parts[0][:-1]
        name = snake_case(field)
        try:
            value = int(parts[1])
        except ValueError:
            name = None
        scale = _UNITS.get(parts[2]) if len(parts) == 3 else 1
        if name is None or scale is None:
            errors += 1
            continue
        fields[name] = MemField(field, name, float(value * scale), len(parts) == 3)
    return list(fields.values()), errors
