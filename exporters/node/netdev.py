"""/proc/net/dev: bytes, packets, errors and drops per network device, received and transmitted."""

from __future__ import annotations

from typing import NamedTuple


class NetDevStats(NamedTuple):
    """One device's counters: rx bytes, packets, errs, drop, then tx bytes, packets, errs, drop."""

    device: str
    counters: tuple[int, int, int, int, int, int, int, int]


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
            counters = tuple(map(int, fields[0:4] + fields[8:12]))
        except ValueError:
            errors += 1
            continue
        if min(counters) < 0:
            errors += 1
            continue
        out.append(NetDevStats(device, counters))  # type: ignore[arg-type]
    return out, errors
