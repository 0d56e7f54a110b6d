"""/sys/devices/system/edac/mc: corrected and uncorrected memory error counts per memory controller."""

from __future__ import annotations

import os
from typing import NamedTuple

from hpcwatch.exporters.files import list_dir, read_int


class EdacCounts(NamedTuple):
    """Error counts of one memory controller (`controller` "0" for mc0), or of one of its csrows."""

    controller: str
    csrow: str | None
    correctable: int | None
    uncorrectable: int | None


def numbered(entries: list[str], prefix: str) -> list[str]:
    """The numbers N of entries named `<prefix>N`, in numeric order (`mc0`, `mc1` -> `0`, `1`)."""
    nums = [e[len(prefix):] for e in entries if e.startswith(prefix)]
    return sorted((n for n in nums if n.isdigit() and n.isascii()), key=int)


def read_edac(mc_dir: str, csrows: bool = False) -> list[EdacCounts]:
    """Per-controller counts (and per-csrow counts when asked); unreadable counts are None."""
    out = []
    for n in numbered(list_dir(mc_dir), "mc"):
        ctrl = os.path.join(mc_dir, f"mc{n}")
        out.append(EdacCounts(n, None, read_int(os.path.join(ctrl, "ce_count")),
                              read_int(os.path.join(ctrl, "ue_count"))))
        if csrows:
            for r in numbered(list_dir(ctrl), "csrow"):
                row = os.path.join(ctrl, f"csrow{r}")
                out.append(EdacCounts(n, r, read_int(os.path.join(row, "ce_count")),
                                      read_int(os.path.join(row, "ue_count"))))
    return out
