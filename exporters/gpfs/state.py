"""Pure parsers for the GPFS daemon's own view: `mmgetstate -Y` (daemon state, quorum) and
`mmdiag --waiters` (threads waiting now), in the `-Y` form (Scale 5.0+) and the text form before it.

    mmgetstate::HEADER:version:reserved:reserved:nodeName:nodeNumber:state:quorum:nodesUp:totalNodes:remarks:cnfsState:
    mmgetstate::0:1:::nsd05.example.org:11:active:4:7:1122::(undefined):

    mmdiag:waiters:HEADER:version:reserved:reserved:threadId:threadAddr:threadName:waitStartTime:waitTime:...
    mmdiag:waiters:0:1:::101445:00000000F57FC500:RebuildWorkThread:2021-09-23_15%3A31%3A33-0400:64.3:...

    === mmdiag: waiters ===
    Waiting 64.3000 sec since 15:31:33, monitored, thread 101445 RebuildWorkThread: for I/O completion
    0x7F1A6C008D90 waiting 0.000363000 seconds, NSDThread: for I/O completion on disk sdb   (3.5)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

from hpcwatch.exporters.gpfs.parse import parse_y

ErrorCallback = Callable[[str], None]

# States `mmgetstate` documents; the current one is 1, the others 0 (an unlisted one is kept as read).
GPFS_STATES = ("active", "arbitrating", "down", "unknown")


@dataclasses.dataclass(frozen=True)
class DaemonState:
    """This node's GPFS daemon state and the quorum view it reports (None where the field is empty)."""

    node: str
    state: str
    quorum: int | None
    nodes_up: int | None
    total_nodes: int | None


def _int(value: str) -> int | None:
    return int(value) if value.isdigit() else None


def parse_mmgetstate(text: str, on_error: ErrorCallback | None = None) -> DaemonState | None:
    """The first data row of `mmgetstate -Y` (this node); None when there is none."""
    for row in parse_y(text, on_error).get("", []):
        state = row.get("state", "").strip()
        if not state:
            if on_error is not None:
                on_error("mmgetstate row without a state")
            continue
        return DaemonState(row.get("nodeName", ""), state, _int(row.get("quorum", "")),
                           _int(row.get("nodesUp", "")), _int(row.get("totalNodes", "")))
    return None


@dataclasses.dataclass(frozen=True)
class Waiter:
    """A thread waiting now: its name and for how long."""

    thread: str
    seconds: float


# 4.x/5.x text: `Waiting 0.0096 sec since 10:05:53, monitored, thread 24589 NSDThread: for I/O completion`;
# 3.5: `0x7F1A6C008D90 waiting 0.000363000 seconds, NSDThread: for I/O completion on disk sdb`.
_TEXT_WAITER = re.compile(
    r"^\s*(?:Waiting\s+(?P<secs>\d+(?:\.\d+)?)\s+sec\b.*?\bthread\s+\d+\s+(?P<name>[^:\s]+):"
    r"|0x[0-9A-Fa-f]+\s+waiting\s+(?P<secs35>\d+(?:\.\d+)?)\s+seconds,\s+(?P<name35>[^:\s]+):)")
_FLOAT = re.compile(r"^\d+(?:\.\d+)?$")


def parse_waiters(text: str, on_error: ErrorCallback | None = None) -> list[Waiter]:
    """Waiters from `mmdiag --waiters -Y`, or from the text form when no `-Y` header is present."""
    if "mmdiag:waiters:HEADER:" in text:
        out = []
        for row in parse_y(text, on_error).get("waiters", []):
            name, secs = row.get("threadName", ""), row.get("waitTime", "")
            if not name or not _FLOAT.match(secs):
                if on_error is not None:
                    on_error(f"waiter row without a thread name or wait time ({name[:30]!r}, {secs[:30]!r})")
                continue
            out.append(Waiter(name, float(secs)))
        return out
    out = []
    for line in text.splitlines():
        if not line.strip() or line.startswith("==="):
            continue
        m = _TEXT_WAITER.match(line)
        if m is None:
            if on_error is not None:
                on_error(f"unreadable waiter line: {line[:80]!r}")
            continue
        out.append(Waiter(m.group("name") or m.group("name35"), float(m.group("secs") or m.group("secs35"))))
    return out
