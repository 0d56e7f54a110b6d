"""Pure parsers for IBM Storage Scale (GPFS) command output.

- `mmpmon -p` replies: `_fs_io_s_ _n_ 10.0.0.1 _nn_ node1 _rc_ 0 _t_ 1700000000 _tu_ 1 _cl_ c1 _fs_ gpfs1
  _d_ 2 _br_ 6291456 _bw_ 314572800 _oc_ 10 _cc_ 16 _rdc_ 101 _wc_ 300 _dir_ 7 _iu_ 2`
- the `-Y` machine format of mm* commands: `cmd:section:HEADER:version:reserved:reserved:col:...` names
  the columns of the data rows `cmd:section:0:1:::value:...`; values are URL-encoded (%3A is ':').
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable
from urllib.parse import unquote

ErrorCallback = Callable[[str], None]

_KEY = re.compile(r"^_[a-z0-9_]+_$")
# mmpmon fs_io_s counters: key -> operation label (bytes are separate families).
FS_IO_OPS = {"_oc_": "open", "_cc_": "close", "_rdc_": "read", "_wc_": "write", "_dir_": "readdir",
             "_iu_": "inode_update"}
KIB = 1024  # mmdf -Y reports sizes in KiB


def parse_key_values(text: str, on_error: ErrorCallback | None = None) -> list[tuple[str, dict[str, str]]]:
    """[(request, {key: value})] from `mmpmon -p` output; lines not in `_req_ _k_ v ...` form are reported."""
    out: list[tuple[str, dict[str, str]]] = []
    for line in text.splitlines():
        tokens = line.split()
        if not tokens:
            continue
        if not _KEY.match(tokens[0]) or len(tokens) % 2 != 1 \
                or not all(_KEY.match(k) for k in tokens[1::2]):
            if on_error is not None:
                on_error(f"unreadable mmpmon line: {line[:80]!r}")
            continue
        out.append((tokens[0], dict(zip(tokens[1::2], tokens[2::2]))))
    return out


@dataclasses.dataclass(frozen=True)
class FsIo:
    """One filesystem's I/O counters on this node, from fs_io_s."""

    cluster: str
    filesystem: str
    disks: int
    bytes_read: int
    bytes_written: int
    operations: dict[str, int]


def parse_fs_io_s(text: str, on_error: ErrorCallback | None = None) -> list[FsIo]:
    """fs_io_s replies with _rc_ 0; _rc_ 1 (no filesystem mounted) is not an error and yields nothing."""
    out: list[FsIo] = []
    for req, kv in parse_key_values(text, on_error):
        if req != "_fs_io_s_" or kv.get("_rc_") != "0":
            continue
        try:
            out.append(FsIo(kv["_cl_"], kv["_fs_"], int(kv.get("_d_", "0")), int(kv["_br_"]), int(kv["_bw_"]),
                            {op: int(kv[k]) for k, op in FS_IO_OPS.items() if k in kv}))
        except (KeyError, ValueError) as exc:
            if on_error is not None:
                on_error(f"fs_io_s reply without a usable field: {exc}")
    return out


def parse_y(text: str, on_error: ErrorCallback | None = None) -> dict[str, list[dict[str, str]]]:
    """{section: [row as {column: decoded value}]} from `-Y` output; rows without a HEADER are reported."""
    headers: dict[tuple[str, str], list[str]] = {}
    out: dict[str, list[dict[str, str]]] = {}
    for line in text.splitlines():
        if not line.strip():
            continue
        fields = line.split(":")
        if len(fields) < 3:
            if on_error is not None:
                on_error(f"unreadable -Y line: {line[:80]!r}")
            continue
        key = (fields[0], fields[1])
        if fields[2] == "HEADER":
            headers[key] = fields
            continue
        cols = headers.get(key)
        if cols is None:
            if on_error is not None:
                on_error(f"-Y row before its HEADER: {line[:80]!r}")
            continue
        if len(fields) > len(cols):
            fields = _rejoin_times(fields)
        row = {c: unquote(v) for c, v in zip(cols, fields) if c and c not in ("reserved",)}
        out.setdefault(fields[1], []).append(row)
    return out


_HOUR = re.compile(r"^\d{4}-\d{2}-\d{2}[ _]\d{2}$")
_MINUTE = re.compile(r"^\d{2}$")
_SECOND = re.compile(r"^\d{2}(?:\.\d+)?(?:\s*[A-Za-z]+|[+-]\d{4})?$")


def _rejoin_times(fields: list[str]) -> list[str]:
    """Glue `2025-07-21 08`, `58`, `15` back into one field: Scale 5.2 mmhealth prints some timestamps
    with raw colons instead of %3A, which shifts every later column of the row."""
    out: list[str] = []
    i = 0
    while i < len(fields):
        f = fields[i]
        if _HOUR.match(f) and i + 2 < len(fields) and _MINUTE.match(fields[i + 1]) and _SECOND.match(fields[i + 2]):
            out.append(":".join(fields[i:i + 3]))
            i += 3
            continue
        out.append(f)
        i += 1
    return out


@dataclasses.dataclass
class FsUsage:
    """mmdf -Y for one filesystem, in bytes and inodes; None where the section was absent."""

    size: int | None = None
    free: int | None = None
    free_fragments: int | None = None
    data_size: int | None = None
    data_free: int | None = None
    metadata_size: int | None = None
    metadata_free: int | None = None
    pools: dict[str, tuple[int, int]] = dataclasses.field(default_factory=dict)  # pool -> (size, free)
    inodes: dict[str, int] = dataclasses.field(default_factory=dict)  # used, free, allocated, max


def _kib(row: dict[str, str], col: str) -> int | None:
    v = row.get(col, "")
    return int(v) * KIB if v.isdigit() else None


def parse_mmdf(text: str, on_error: ErrorCallback | None = None) -> FsUsage:
    sections = parse_y(text, on_error)
    u = FsUsage()
    for row in sections.get("fsTotal", [])[:1]:
        u.size, u.free, u.free_fragments = _kib(row, "fsSize"), _kib(row, "freeBlocks"), _kib(row, "freeFragments")
    for row in sections.get("data", [])[:1]:
        u.data_size, u.data_free = _kib(row, "totalData"), _kib(row, "freeBlocks")
    for row in sections.get("metadata", [])[:1]:
        u.metadata_size, u.metadata_free = _kib(row, "totalMetadata"), _kib(row, "freeBlocks")
    for row in sections.get("poolTotal", []):
        size, free = _kib(row, "poolSize"), _kib(row, "freeBlocks")
        if row.get("poolName") and size is not None and free is not None:
            u.pools[row["poolName"]] = (size, free)
    for row in sections.get("inode", [])[:1]:
        for col, name in (("usedInodes", "used"), ("freeInodes", "free"), ("allocatedInodes", "allocated"),
                          ("maxInodes", "max")):
            if row.get(col, "").isdigit():
                u.inodes[name] = int(row[col])
    return u


@dataclasses.dataclass(frozen=True)
class HealthState:
    node: str
    component: str
    entity: str
    entity_type: str
    status: str


def parse_mmhealth(text: str, on_error: ErrorCallback | None = None) -> list[HealthState]:
    """The State rows of `mmhealth node show -Y` (one per component and entity)."""
    out: list[HealthState] = []
    for row in parse_y(text, on_error).get("State", []):
        status = row.get("status", "")
        if not status:
            if on_error is not None:
                on_error("mmhealth State row without a status")
            continue
        out.append(HealthState(row.get("node", ""), row.get("component", ""), row.get("entityname", ""),
                               row.get("entitytype", ""), status))
    return out


@dataclasses.dataclass(frozen=True)
class HealthEvent:
    """An active event of `mmhealth node show -Y` (severity is printed from Scale 5.1 on; '' before)."""

    component: str
    entity: str
    entity_type: str
    event: str
    severity: str


def parse_mmhealth_events(text: str, on_error: ErrorCallback | None = None) -> list[HealthEvent]:
    """The Event rows of `mmhealth node show -Y`, without events an administrator hid (`ishidden: yes`)."""
    out: list[HealthEvent] = []
    for row in parse_y(text, on_error).get("Event", []):
        if not row.get("event"):
            if on_error is not None:
                on_error("mmhealth Event row without an event name")
            continue
        if row.get("ishidden", "").lower() == "yes":
            continue
        out.append(HealthEvent(row.get("component", ""), row.get("entityname", ""), row.get("entitytype", ""),
                               row["event"], row.get("severity", "")))
    return out
