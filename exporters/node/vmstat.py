"""/proc/vmstat: the few virtual-memory counters worth a series (OOM kills, page faults, swapping)."""

from __future__ import annotations


def parse_vmstat(text: str, wanted: frozenset[str]) -> tuple[dict[str, int], int]:
    """({field: value} for the `wanted` fields present, number of wanted lines that were unreadable)."""
    out: dict[str, int] = {}
    errors = 0
    for line in text.splitlines():
        key, _, val = line.partition(" ")
        if key in wanted:
            try:
                out[key] = int(val)
            except ValueError:
                errors += 1
    return out, errors
