"""/sys/devices/system/edac/mc: memory errors per controller, per csrow and per csrow channel (DIMM).

As node_exporter: errors a driver could not tie to a csrow (`ce_noinfo_count`, `ue_noinfo_count`)
are csrow "unknown"; a channel carries its DIMM label with `#` dropped.
"""

from __future__ import annotations

import os
import re
from typing import NamedTuple

from hpcwatch.exporters.files import list_dir, read_int, read_text

_CHANNEL = re.compile(r"ch([0-9]+)_ce_count")


class EdacCounts(NamedTuple):
    """Error counts of one memory controller (`controller` "0" for mc0), one of its csrows (csrow
    "unknown" for the noinfo counts) or one csrow channel; unreadable counts are None."""

    controller: str
    csrow: str | None
    correctable: int | None
    uncorrectable: int | None
    channel: str | None = None
    dimm_label: str | None = None


def numbered(entries: list[str], prefix: str) -> list[str]:
    """The numbers N of entries named `<prefix>N`, in numeric order (`mc0`, `mc1` -> `0`, `1`)."""
    nums = [e[len(prefix):] for e in entries if e.startswith(prefix)]
    return sorted((n for n in nums if n.isdigit() and n.isascii()), key=int)


def dimm_label(text: str | None) -> str:
    """node_exporter's DIMM label: `#` dropped, `csrow`/`channel` set off by `_`; "unknown" if absent."""
    if text is None:
        return "unknown"
    return text.strip().replace("#", "").replace("csrow", "_csrow").replace("channel", "_channel")


def read_edac(mc_dir: str, csrows: bool = True) -> list[EdacCounts]:
    """Per-controller counts, and with `csrows` the noinfo, per-csrow and per-channel counts."""
    out = []
    for n in numbered(list_dir(mc_dir), "mc"):
        ctrl = os.path.join(mc_dir, f"mc{n}")
        out.append(EdacCounts(n, None, read_int(os.path.join(ctrl, "ce_count")),
                              read_int(os.path.join(ctrl, "ue_count"))))
        if not csrows:
            continue
        if os.path.exists(os.path.join(ctrl, "ce_noinfo_count")) or os.path.exists(
                os.path.join(ctrl, "ue_noinfo_count")):
            out.append(EdacCounts(n, "unknown", read_int(os.path.join(ctrl, "ce_noinfo_count")),
                                  read_int(os.path.join(ctrl, "ue_noinfo_count"))))
        for r in numbered(list_dir(ctrl), "csrow"):
            row = os.path.join(ctrl, f"csrow{r}")
            entries = list_dir(row)
            out.append(EdacCounts(n, r, read_int(os.path.join(row, "ce_count")),
                                  read_int(os.path.join(row, "ue_count"))))
            for e in entries:
                m = _CHANNEL.fullmatch(e)
                if m is None:
                    continue
                ch = m.group(1)
                ue = read_int(os.path.join(row, f"ch{ch}_ue_count")) if f"ch{ch}_ue_count" in entries else None
                out.append(EdacCounts(n, r, read_int(os.path.join(row, e)), ue, ch,
                                      dimm_label(read_text(os.path.join(row, f"ch{ch}_dimm_label"), 4096))))
    return out
