"""/proc/1/mounts (or /proc/mounts): which filesystems are mounted where, and their statvfs figures."""

from __future__ import annotations

from typing import Any, NamedTuple


class Mount(NamedTuple):
    """One mount table line: source device, mount point (host path, escapes decoded), type, read-only flag."""

    device: str
    mountpoint: str
    fstype: str
    readonly: bool


class FilesystemStats(NamedTuple):
    """Capacity of one filesystem from statvfs: bytes and inodes."""

    size_bytes: int
    free_bytes: int
    avail_bytes: int
    files: int
    files_free: int


def unescape_mount_field(field: str) -> str:
    r"""Undo the kernel's octal escapes in mount tables (`\040` space, `\011` tab, `\012` newline, `\134` \)."""
    if "\\" not in field:
        return field
    out = []
    i, n = 0, len(field)
    while i < n:
        c = field[i]
        octal = field[i + 1:i + 4]
        if c == "\\" and len(octal) == 3 and all(ch in "01234567" for ch in octal):
            out.append(chr(int(octal, 8)))
            i += 4
        else:
            out.append(c)
            i += 1
    return "".join(out)


def parse_mounts(text: str) -> tuple[list[Mount], int]:
    """(mounts, one per mount point: the last line wins as it is the one visible there; lines skipped). Never raises."""
    by_point: dict[str, Mount] = {}
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) < 4:
            errors += 1
            continue
        mountpoint = unescape_mount_field(parts[1])
        readonly = "ro" in parts[3].split(",")
        by_point.pop(mountpoint, None)  # keep file order of the visible mount
        by_point[mountpoint] = Mount(unescape_mount_field(parts[0]), mountpoint, parts[2], readonly)
    return list(by_point.values()), errors


def filesystem_stats(st: Any) -> FilesystemStats:
    """Capacity from an os.statvfs_result (or anything with the same f_* fields)."""
    frsize = st.f_frsize or st.f_bsize
    return FilesystemStats(st.f_blocks * frsize, st.f_bfree * frsize, st.f_bavail * frsize, st.f_files, st.f_ffree)
