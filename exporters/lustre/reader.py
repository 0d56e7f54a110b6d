"""Where Lustre keeps its parameters on this host, and `lctl` as the fallback when files are hidden.

Parameters moved between releases: 2.10 keeps nearly everything under /proc/fs/lustre; 2.12+ moves
single values to /sys/fs/lustre and stats files to /sys/kernel/debug/lustre. We search all three
(honouring --path.procfs/--path.sysfs) and take the first root that has a given device's file.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator

from hpcwatch.exporters.command import CommandError, run_command
from hpcwatch.exporters.files import list_dir, read_text
from hpcwatch.exporters.registry import Paths


def lustre_roots(paths: Paths) -> list[str]:
    return [paths.proc("fs", "lustre"), paths.sys("fs", "lustre"), paths.sys("kernel", "debug", "lustre")]


def find_files(paths: Paths, device_type: str, filename: str) -> dict[str, str]:
    """{device: path} of `<root>/<device_type>/<device>/<filename>`, first root wins per device.

    `device_type` may end in `*` (e.g. `osd-*`) to match every OSD flavour.
    """
    found: dict[str, str] = {}
    for root in lustre_roots(paths):
        if device_type.endswith("*"):
            types = [t for t in list_dir(root) if t.startswith(device_type[:-1])]
        else:
            types = [device_type]
        for t in types:
            base = os.path.join(root, t)
            for device in list_dir(base):
                path = os.path.join(base, device, filename)
                if device not in found and os.path.isfile(path):
                    found[device] = path
    return found


def read_blocks(path: str, size: int = 1 << 18) -> Iterator[str]:
    """A file's text in blocks, so a 100 MB job_stats file never sits in memory whole."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        while True:
            block = fh.read(size)
            if not block:
                return
            yield block


def first_readable(paths: list[str]) -> tuple[str, str] | None:
    """(path, text) of the first readable file."""
    for p in paths:
        text = read_text(p)
        if text is not None:
            return p, text
    return None


def verdict_paths(paths: Paths) -> list[str]:
    return [paths.sys("fs", "lustre", "health_check"), paths.proc("fs", "lustre", "health_check")]


def lnet_paths(paths: Paths, name: str) -> list[str]:
    """An LNet/libcfs parameter file: debugfs from 2.12, /proc/sys/lnet before."""
    return [paths.sys("kernel", "debug", "lnet", name), paths.proc("sys", "lnet", name)]


class Lctl:
    """`lctl get_param` / `list_param` through run_command (argument lists, timeout, pinned env)."""

    def __init__(self, binary: str = "lctl", timeout: float = 30.0) -> None:
        self.binary = binary
        self.timeout = timeout

    def path(self) -> str | None:
        return shutil.which(self.binary)

    def get_param(self, *params: str, values_only: bool = False) -> str:
        argv = [self.binary, "get_param"] + (["-n"] if values_only else []) + list(params)
        return run_command(argv, self.timeout)

    def list_param(self, *params: str) -> list[str]:
        try:
            out = run_command([self.binary, "list_param", *params], self.timeout)
        except CommandError:
            return []
        return [line.strip() for line in out.splitlines() if line.strip()]
