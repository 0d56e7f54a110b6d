"""Pure parser for /proc/self/mountstats (NFS client statistics per mount).

Per mount: `device SERVER:/export mounted on /mnt with fstype nfs4 statvers=1.1`, then `events:`,
`bytes:`, `RPC iostats version: 1.1  p/v: 100003/4 (nfs)`, one `xprt:` line per transport
(tcp, udp, rdma; field counts grow with the kernel), and `per-op statistics`: `OP: ops trans
timeouts bytes_sent bytes_recv queue_ms rtt_ms execute_ms [errors]` (errors since kernel 5.x).
Non-NFS mounts are skipped, but every `device` line counts for `position` (the mount's line in
mountinfo, which the kernel lists in the same order) and for `covered` (a later mount at the same
mount point sits on top of this one and hides it).
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

ErrorCallback = Callable[[str], None]

OP_FIELDS = ("requests", "transmissions", "major_timeouts", "bytes_sent", "bytes_received",
             "queue_ms", "rtt_ms", "execute_ms", "errors")
BYTES_FIELDS = ("normal_read", "normal_write", "direct_read", "direct_write", "server_read", "server_write",
                "read_pages", "write_pages")
EVENT_FIELDS = ("inode_revalidate", "dentry_revalidate", "data_invalidate", "attr_invalidate", "vfs_open",
                "vfs_lookup", "vfs_access", "vfs_update_page", "vfs_read_page", "vfs_read_pages",
                "vfs_write_page", "vfs_write_pages", "vfs_getdents", "vfs_setattr", "vfs_flush", "vfs_fsync",
                "vfs_lock", "vfs_release", "congestion_wait", "truncation", "write_extension",
                "silly_rename", "short_read", "short_write", "jukebox_delay", "pnfs_read", "pnfs_write")
# Transport fields in kernel order (xs_tcp_print_stats, xs_udp_print_stats, xprt_rdma_print_stats);
# older kernels print a prefix of each list.
XPRT_FIELDS = {
    "tcp": ("port", "bind_count", "connect_count", "connect_time", "idle_time", "sends", "receives",
            "bad_xids", "req_u", "backlog_u", "max_slots", "sending_u", "pending_u"),
    "udp": ("port", "bind_count", "sends", "receives", "bad_xids", "req_u", "backlog_u", "max_slots",
            "sending_u", "pending_u"),
    "rdma": ("port", "bind_count", "connect_count", "connect_time", "idle_time", "sends", "receives",
             "bad_xids", "req_u", "backlog_u", "read_chunks", "write_chunks", "reply_chunks",
             "total_rdma_request", "total_rdma_reply", "pullup_copy", "fixup_copy", "hardway_register",
             "failed_marshal", "bad_reply", "nomsg_call", "mrs_recycled", "mrs_orphaned", "mrs_allocated",
             "local_inv_needed", "empty_sendctx_q", "reply_waits_for_send"),
}
_DEVICE = re.compile(
    r"^device (?P<dev>\S+) mounted on (?P<mnt>\S+) with fstype (?P<fstype>\S+)(?: statvers=(?P<sv>\S+))?")
_PV = re.compile(r"p/v:\s*(\d+)/(\d+)")
_DIGITS = re.compile(r"^\d+$")


@dataclasses.dataclass
class Transport:
    protocol: str
    counters: dict[str, int]


@dataclasses.dataclass
class NfsMount:
    export: str
    mountpoint: str
    fstype: str
    statvers: str = ""
    version: str = ""          # NFS protocol version from p/v (3, 4)
    age_seconds: int | None = None
    events: dict[str, int] = dataclasses.field(default_factory=dict)
    bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    transports: list[Transport] = dataclasses.field(default_factory=list)
    ops: dict[str, dict[str, int]] = dataclasses.field(default_factory=dict)
    opts: str = ""             # superblock options (`opts:`): the same for every bind mount of one superblock
    position: int = 0          # index among all mounts of the file (NFS or not)
    covered: bool = False      # a later mount at the same mount point hides this one


def _ints(tokens: list[str]) -> list[int] | None:
    if not all(_DIGITS.match(t) for t in tokens):
        return None
    return [int(t) for t in tokens]


def parse_mountstats(text: str, on_error: ErrorCallback | None = None) -> list[NfsMount]:
    """NFS mounts in mountstats text; unreadable lines inside an NFS mount are skipped and reported."""
    mounts: list[NfsMount] = []
    cur: NfsMount | None = None
    in_ops = False
    position = -1
    at: dict[str, list[NfsMount]] = {}  # mount point -> NFS mounts there so far

    def bad(line: str) -> None:
        if on_error is not None:
            on_error(f"unreadable mountstats line: {line.strip()[:80]!r}")

    for line in text.splitlines():
        if line.startswith("device "):
            m = _DEVICE.match(line)
            in_ops = False
            cur = None
            position += 1
            if m is None:
                continue
            for below in at.pop(m.group("mnt"), ()):
                below.covered = True
            if m.group("fstype") in ("nfs", "nfs4"):
                cur = NfsMount(m.group("dev"), m.group("mnt"), m.group("fstype"), m.group("sv") or "",
                               position=position)
                mounts.append(cur)
                at[cur.mountpoint] = [cur]
            continue
        if cur is None or not line.strip():
            continue
        key, _, rest = line.strip().partition(":")
        tokens = rest.split()
        if in_ops:
            vals = _ints(tokens)
            if vals is None or len(vals) < 8 or not key or " " in key:
                bad(line)
                continue
            cur.ops[key] = dict(zip(OP_FIELDS, vals))
            continue
        if key == "opts":
            cur.opts = rest.strip()
        elif key == "age":
            vals = _ints(tokens)
            cur.age_seconds = vals[0] if vals and len(vals) == 1 else None
        elif key in ("events", "bytes"):
            names = EVENT_FIELDS if key == "events" else BYTES_FIELDS
            vals = _ints(tokens)
            if vals is None:
                bad(line)
                continue
            setattr(cur, key, dict(zip(names, vals)))
        elif key == "RPC iostats version":
            m = _PV.search(line)
            if m:
                cur.version = m.group(2)
        elif key == "xprt":
            if not tokens or tokens[0] not in XPRT_FIELDS:
                continue  # a transport we do not know (e.g. a future one): not an error
            vals = _ints(tokens[1:])
            if vals is None:
                bad(line)
                continue
            cur.transports.append(Transport(tokens[0], dict(zip(XPRT_FIELDS[tokens[0]], vals))))
        elif line.strip() == "per-op statistics":
            in_ops = True
    return mounts
