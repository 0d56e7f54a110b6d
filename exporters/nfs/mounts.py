"""Which NFS mounts to export: the visible one at each mount point, once per superblock.

mountstats lists every mount of the namespace in mount order, so a later mount at the same mount
point sits on top of an earlier one (an NFSv3/UDP mount over an NFSv4/TCP one): the lower one is
hidden and exported no longer, whatever its export. Bind mounts repeat one superblock, and with it
the same counters, under other (or the same) mount points: those are exported once, under the
first visible mount point. A superblock is known by mountinfo's `major:minor` (the kernel lists
mountinfo in the same order as mountstats, so the two are paired by position and checked by mount
point, fstype and source); without mountinfo, by export, fstype and superblock options, which the kernel shares a
superblock on unless `nosharecache` is set.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable

from hpcwatch.exporters.nfs.mountstats import NfsMount


@dataclasses.dataclass(frozen=True)
class MountInfoLine:
    """The fields of one /proc/<pid>/mountinfo line this module needs."""

    device: str      # major:minor of the superblock
    mountpoint: str  # escaped as mountstats escapes it (octal \\040 for a space)
    fstype: str = ""
    source: str = ""


def parse_mountinfo(text: str) -> list[MountInfoLine]:
    """`36 35 98:0 /mnt1 /mnt2 rw,noatime master:1 - ext3 /dev/root rw` -> (98:0, /mnt2, ext3, /dev/root).

    A line too short to hold the fields yields a placeholder, so positions still line up with mountstats.
    """
    out = []
    for line in text.splitlines():
        fields = line.split()
        try:
            sep = fields.index("-", 6)
            out.append(MountInfoLine(fields[2], fields[4], fields[sep + 1], fields[sep + 2]))
        except (ValueError, IndexError):
            out.append(MountInfoLine("", ""))
    return out


def superblock_key(mount: NfsMount, info: list[MountInfoLine]) -> tuple[str, ...]:
    """What identifies the superblock behind a mountstats entry."""
    if mount.position < len(info):
        row = info[mount.position]
        if row.device and (row.mountpoint, row.fstype, row.source) == (mount.mountpoint, mount.fstype, mount.export):
            return ("dev", row.device)
    if "nosharecache" in mount.opts.split(","):
        return ("entry", str(mount.position))
    return ("opts", mount.export, mount.fstype, mount.opts)


def exported_mounts(mounts: Iterable[NfsMount], info: list[MountInfoLine] | None = None) -> list[NfsMount]:
    """Visible mounts only, the first visible mount point of each superblock."""
    out: dict[tuple[str, ...], NfsMount] = {}
    for m in mounts:
        if not m.covered:
            out.setdefault(superblock_key(m, info or []), m)
    return list(out.values())
