"""RAPL energy counters from /sys/class/powercap (intel-rapl, intel-rapl-mmio; AMD uses the same tree).

Zones are named as prometheus/procfs names them for node_exporter: `package-0` is zone "package"
index 0, a zone whose name has no `-N` (core, dram, psys, uncore) is numbered by how often the name
was seen. `energy_uj` wraps to 0 after `max_energy_range_uj`; EnergyCounter turns the raw readings
into a monotonic per-zone total, so `node_rapl_*_joules_total` is a true counter across wraps.

Reusable: energy attribution to jobs reads zones with `read_rapl_zones` and keeps its own
EnergyCounter (or reads this collector's) rather than parsing powercap again.
"""

from __future__ import annotations

import os
import re
import threading
from typing import NamedTuple

from hpcwatch.exporters.files import list_dir, read_text

_SANITIZE = re.compile(r"_*[^0-9A-Za-z_]+_*")
_INDEX = re.compile(r"\+?[0-9]+")  # what Go's strconv.Atoi takes after the one `-` of `package-0`


class RaplZone(NamedTuple):
    """One powercap zone: procfs' name and index, its folder (the `path` label) and wrap point in µJ."""

    name: str
    index: int
    path: str
    max_energy_uj: int | None


def zone_names(raw_names: list[str]) -> list[tuple[str, int]]:
    """(name, index) for each zone's `name` file text, in folder order, with procfs' rule."""
    used: dict[str, int] = {}
    out = []
    for raw in raw_names:
        name = raw.strip()
        base, sep, num = name.partition("-")
        if sep and _INDEX.fullmatch(num):
            index, name = int(num), base
        else:
            index = used.get(name, 0)
        used[name] = index + 1
        out.append((name, index))
    return out


def family_name(zone: str) -> str:
    """`node_rapl_<zone>_joules_total`, the zone sanitized as node_exporter's SanitizeMetricName does."""
    return f"node_rapl_{_SANITIZE.sub('_', zone)}_joules_total"


def parse_uint(text: str | None) -> int | None:
    """A sysfs unsigned integer (`262143328850\\n`), or None."""
    if text is None:
        return None
    t = text.strip()
    return int(t) if t.isdigit() and t.isascii() else None


def read_rapl_zones(powercap_dir: str) -> list[RaplZone]:
    """Every zone folder with a readable `name` (the `intel-rapl` control-type folder has none)."""
    folders, raw_names = [], []
    for entry in list_dir(powercap_dir):
        name = read_text(os.path.join(powercap_dir, entry, "name"), 4096)
        if name is not None:
            folders.append(entry)
            raw_names.append(name)
    return [RaplZone(name, index, os.path.join(powercap_dir, folder),
                     parse_uint(read_text(os.path.join(powercap_dir, folder, "max_energy_range_uj"), 64)))
            for folder, (name, index) in zip(folders, zone_names(raw_names))]


def read_energy_uj(zone: RaplZone) -> int | None:
    """The zone's raw energy counter in µJ; None when unreadable (root-only since Linux 5.10)."""
    # quiet: EACCES is what an unprivileged agent gets on Linux 5.10+; the caller skips the zone, logged once.
    return parse_uint(read_text(os.path.join(zone.path, "energy_uj"), 64, quiet=True))


class EnergyCounter:
    """Monotonic energy per zone from raw readings that wrap at max_energy_range_uj.

    The first reading is taken as is (so the total equals node_exporter's raw value until the first
    wrap); a reading below the previous one is a wrap: the counter went through max and started over.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._last: dict[str, tuple[int, int]] = {}  # key -> (last raw µJ, total µJ)

    def update(self, key: str, raw_uj: int, max_uj: int | None) -> int:
        """Feed one reading; returns the zone's monotonic total in µJ."""
        with self._lock:
            return self._apply(key, raw_uj, max_uj)

    def _apply(self, key: str, raw_uj: int, max_uj: int | None) -> int:
        prev = self._last.get(key)
        if prev is None:
            total = raw_uj
        else:
            last, total = prev
            if raw_uj >= last:
                total += raw_uj - last
            elif max_uj and last <= max_uj:
                total += max_uj - last + raw_uj
            else:  # no known wrap point: count from the new reading, like a counter reset
                total += raw_uj
        self._last[key] = (raw_uj, total)
        return total

    def read(self, zone: RaplZone) -> int | None:
        """Read the zone and update its total under one lock, so concurrent scrapes never apply a
        newer reading before an older one (which would look like a wrap)."""
        with self._lock:
            raw = read_energy_uj(zone)
            return None if raw is None else self._apply(zone.path, raw, zone.max_energy_uj)

    def forget(self, keep: set[str]) -> None:
        """Drop the state of zones no longer present."""
        with self._lock:
            for key in set(self._last) - keep:
                del self._last[key]
