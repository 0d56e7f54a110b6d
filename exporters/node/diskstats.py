"""/proc/diskstats: per-device I/O counters (14 fields before 4.18, 18 with discards, 20 with flushes)."""

from __future__ import annotations

from typing import NamedTuple

SECTOR_BYTES = 512  # diskstats counts 512-byte sectors whatever the device's block size


class DiskStats(NamedTuple):
    """One device's counters after the name, as ints: 11, 15 or 17 of them (see Documentation/admin-guide/iostats)."""

    device: str
    stats: tuple[int, ...]


# Index into DiskStats.stats.
READS, READ_SECTORS, READ_MS = 0, 2, 3
WRITES, WRITE_SECTORS, WRITE_MS = 4, 6, 7
IO_NOW, IO_MS, IO_WEIGHTED_MS = 8, 9, 10
DISCARDS, DISCARD_SECTORS, DISCARD_MS = 11, 13, 14
FLUSHES, FLUSH_MS = 15, 16


def parse_diskstats(text: str) -> tuple[list[DiskStats], int]:
    """(devices in file order, number of lines skipped as unreadable). Never raises."""
    out: list[DiskStats] = []
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 14:
            errors += 1
            continue
        try:
            stats = tuple(map(int, parts[3:20]))
        except ValueError:
            errors += 1
            continue
        if min(stats) < 0:
            errors += 1
            continue
        out.append(DiskStats(parts[2], stats))
    return out, errors
