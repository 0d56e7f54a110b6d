"""`nfs`: NFS client statistics per mount and per operation from /proc/<pid>/mountstats (live)."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.families import FamilyTable, counter, gauge
from hpcwatch.exporters.files import log_once, read_text
from hpcwatch.exporters.nfs.mounts import exported_mounts, parse_mountinfo
from hpcwatch.exporters.nfs.mountstats import NfsMount, parse_mountstats
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.nfs")

# (family suffix, mountstats op field, help, scale) for the per-operation counters.
OP_FAMILIES = (
    ("requests", "requests", "RPC requests the NFS client completed, by operation.", 1),
    ("transmissions", "transmissions", "RPC transmissions (first sends plus retransmissions), by operation.", 1),
    ("major_timeouts", "major_timeouts", ("RPC major timeouts (the client gave up waiting and retried), "
                                         "by operation."), 1),
    ("sent_bytes", "bytes_sent", "Bytes the NFS client sent in RPC requests, headers included, by operation.", 1),
    ("received_bytes", "bytes_received", "Bytes the NFS client received in RPC replies, by operation.", 1),
    ("queue_time_seconds", "queue_ms", ("Time RPC requests waited in the client's queue before sending, "
                                       "by operation."), 1e-3),
    ("rtt_seconds", "rtt_ms", ("Round-trip time from sending an RPC to receiving its reply, summed, "
                              "by operation."), 1e-3),
    ("execute_time_seconds", "execute_ms", ("Time from RPC submission to completion (queue plus RTT plus "
                                           "client overhead), summed, by operation."), 1e-3),
    ("errors", "errors", "RPCs that completed with an error status, by operation (kernel 5.x and later).", 1),
)
XPRT_FAMILIES = (  # (mountstats xprt field, family suffix, help)
    ("sends", "sends", "RPC messages the client sent on the transport."),
    ("receives", "receives", "RPC replies the client received on the transport."),
    ("bad_xids", "bad_xids", "Replies whose XID matched no outstanding request."),
    ("connect_count", "connects", "Times the transport connected (tcp, rdma)."),
)
def _pid(text: str) -> str:
    """`self` or a process id: the /proc/<pid> whose mountstats are read."""
    if text != "self" and not (text.isascii() and text.isdigit()):
        raise ValueError(f"{text!r} is not a process id: use self or a number such as 1")
    return text


IO_BYTES = ("normal_read", "normal_write", "direct_read", "direct_write", "server_read", "server_write")

FAMILIES = FamilyTable([
    gauge("hpc_nfs_mount_info",
          "NFS mounts on this node: 1 per mount, with protocol version and transport.",
          "export", "mountpoint", "fstype", "version", "protocol"),
    gauge("hpc_nfs_mount_age_seconds", "Seconds since the NFS mount was made.", "export", "mountpoint"),
    counter("hpc_nfs_io_bytes_total",
            "Bytes moved through the NFS client, by kind (normal/direct read and write by applications, server read"
            " and write on the wire).", "export", "mountpoint", "kind"),
    counter("hpc_nfs_events_total",
            "NFS client VFS and cache events (revalidations, invalidations, short reads, jukebox delays...).",
            "export", "mountpoint", "event"),
    *(counter(f"hpc_nfs_{suffix}_total", doc, "export", "mountpoint", "operation")
      for suffix, _, doc, _ in OP_FAMILIES),
    *(counter(f"hpc_nfs_transport_{suffix}_total", doc, "export", "mountpoint", "protocol")
      for _, suffix, doc in XPRT_FAMILIES),
])


@register
class NfsCollector(Collector):
    name = "nfs"
    help = "NFS client per-mount, per-operation RPC statistics and transports from mountstats"
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option("pid", "self", "read /proc/<pid>/mountstats (use 1 for the host's mounts when the exporter "
                              "runs in a container with the host PID namespace)", type=_pid),
        Option("ignored-mountpoints", None, "regexp of mount points to skip", type=opt.regexp),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.path = ctx.paths.proc(ctx.option("pid"), "mountstats")
        self.mountinfo = ctx.paths.proc(ctx.option("pid"), "mountinfo")
        self.ignored = ctx.option("ignored-mountpoints")

    def available(self) -> str | None:
        text = read_text(self.path)
        if text is None:
            return f"{self.path} not readable"
        if not parse_mountstats(text):
            return f"no NFS mounts in {self.path}"
        return None

    def collect(self) -> Iterator[Metric]:
        text = read_text(self.path)
        if text is None:
            raise RuntimeError(f"{self.path} not readable")
        mounts = [m for m in parse_mountstats(text, on_error=_parse_error)
                  if self.ignored is None or not self.ignored.search(m.mountpoint)]
        # Hidden mounts dropped, bind mounts of one superblock once (mounts.py says how).
        yield from families(exported_mounts(mounts, parse_mountinfo(read_text(self.mountinfo) or "")))


def _parse_error(reason: str) -> None:
    record_parse_error("nfs_mountstats")
    log_once(log, "parse", "skipped a mountstats line: %s", reason)


def families(mounts: list[NfsMount]) -> Iterator[Metric]:
    info = FAMILIES.new("hpc_nfs_mount_info")
    age = FAMILIES.new("hpc_nfs_mount_age_seconds")
    op_fams = [(field, scale, FAMILIES.new(f"hpc_nfs_{suffix}_total")) for suffix, field, _, scale in OP_FAMILIES]
    xprt_fams = [(field, FAMILIES.new(f"hpc_nfs_transport_{suffix}_total")) for field, suffix, _ in XPRT_FAMILIES]
    io = FAMILIES.new("hpc_nfs_io_bytes_total")
    events = FAMILIES.new("hpc_nfs_events_total")
    for m in sorted(mounts, key=lambda m: (m.export, m.mountpoint)):
        base = [m.export, m.mountpoint]
        protocols = sorted({t.protocol for t in m.transports})
        info.add_metric(base + [m.fstype, m.version, ",".join(protocols)], 1)
        if m.age_seconds is not None:
            age.add_metric(base, m.age_seconds)
        for op, values in sorted(m.ops.items()):
            for field, scale, fam in op_fams:
                if field in values:
                    fam.add_metric(base + [op], values[field] * scale)
        for proto in protocols:
            for field, fam in xprt_fams:
                vals = [t.counters[field] for t in m.transports if t.protocol == proto and field in t.counters]
                if vals:  # nconnect opens several connections per mount: sum them
                    fam.add_metric(base + [proto], sum(vals))
        for kind in IO_BYTES:
            if kind in m.bytes:
                io.add_metric(base + [kind], m.bytes[kind])
        for event, n in m.events.items():
            events.add_metric(base + [event], n)
    yield from (info, age)
    yield from (fam for _, _, fam in op_fams)
    yield from (fam for _, fam in xprt_fams)
    yield from (io, events)
