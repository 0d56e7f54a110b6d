"""/proc/net/dev: the 16 counters per network device (8 received, 8 transmitted)."""

from __future__ import annotations

from typing import NamedTuple


class NetDevStats(NamedTuple):
    """One device's counters in file order: rx bytes, packets, errs, drop, fifo, frame, compressed,
    multicast, then tx bytes, packets, errs, drop, fifo, colls, carrier, compressed."""

    device: str
    counters: tuple[int, ...]


def parse_netdev(text: str) -> tuple[list[NetDevStats], int]:
    """(devices in file order, number of lines skipped as unreadable). Never raises."""
    out: list[NetDevStats] = []
    errors = 0
    for line in text.splitlines():
        if "|" in line or not line.strip():
            continue  # the two header lines
        name, sep, rest = line.partition(":")
        device = name.strip()
        fields = rest.split()
        if not sep or not device or len(fields) < 16:
            errors += 1
            continue
        try:
            counters = tuple(map(int, fields[:16]))
        except ValueError:
            errors += 1
            continue
        if min(counters) < 0:
            errors += 1
            continue
        out.append(NetDevStats(device, counters))
    return out, errors
