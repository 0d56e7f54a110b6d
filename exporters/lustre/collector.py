"""`lustre`: Lustre client counters per mount (llite stats) and per MDC/OSC, read live each scrape."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import CommandError
from hpcwatch.exporters.families import FamilyTable, counter
from hpcwatch.exporters.files import log_once, read_text
from hpcwatch.exporters.lustre.reader import Lctl, find_files
from hpcwatch.exporters.lustre.stats import fold_counters, param_device, parse_stats, split_get_param
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.lustre")

FAMILIES = FamilyTable([
    counter("hpc_lustre_client_operations_total",
            "Operations this Lustre client issued on a mount (llite stats samples).", "fs", "client", "operation"),
    counter("hpc_lustre_client_bytes_total",
            "Bytes this Lustre client read or wrote on a mount (llite *_bytes sum).", "fs", "client", "operation"),
    counter("hpc_lustre_client_operation_time_seconds_total",
            "Time this Lustre client spent in operations on a mount (llite usecs, 2.14+).",
            "fs", "client", "operation"),
    counter("hpc_lustre_client_target_operations_total",
            "Requests this Lustre client sent to one MDT (layer=mdc, md_stats) or OST (layer=osc, stats).",
            "layer", "target", "operation"),
    counter("hpc_lustre_client_target_bytes_total",
            "Bytes this Lustre client moved to or from one OST (osc stats).", "layer", "target", "operation"),
    counter("hpc_lustre_client_target_time_seconds_total",
            "Time this Lustre client's requests to one MDT/OST took (usec counters).",
            "layer", "target", "operation"),
    counter("hpc_lustre_client_reopens_total",
            "Opens of a file this Lustre client had opened and closed before (llite openclosetime samples, 2.15+).",
            "fs", "client"),
    counter("hpc_lustre_client_reopen_interval_seconds_total",
            "Time from closing a file to opening it again on this Lustre client, summed over reopens (llite "
            "openclosetime, 2.15+).", "fs", "client"),
    counter("hpc_lustre_client_xattr_cache_hits_total",
            "getxattr calls this Lustre client answered from its xattr cache (llite getxattr_hits; each is also "
            "counted as a getxattr operation).", "fs", "client"),
])

# (device type, stats file) the client reads; llite is per mount, mdc/osc per target connection.
CLIENT_FILES = (("llite", "stats"), ("mdc", "md_stats"), ("osc", "stats"))
LCTL_PARAMS = ("llite.*.stats", "mdc.*.md_stats", "osc.*.stats")
# llite counters that are not operations, so they stay out of the operation families:
# `getxattr_hits` counts getxattr calls the xattr cache answered, each already a `getxattr`;
# `opencount` (2.15+, LU-10948 open heat) repeats every `open` as a sample, its sum a per-inode
# repeat-open score (not exported); `openclosetime` times the gap between a close and the next open
# of the same file, not an operation.
NOT_OPERATIONS = frozenset({"getxattr_hits", "opencount", "openclosetime"})


def mount_fs(device: str) -> str:
    """'scratch' from the llite device 'scratch-ffff8d52c8d2e800' (fsname-superblock id)."""
    fs, sep, _ = device.rpartition("-")
    return fs if sep else device


@register
class LustreCollector(Collector):
    name = "lustre"
    help = "Lustre client operations, bytes and latency per mount (llite) and per MDC/OSC"
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option("lctl", "lctl", "lctl binary, used when the stats files are not readable (debugfs unmounted)"),
        Option("timeout", 5.0, "how long an lctl call may take", type=opt.duration),
        Option("per-target", True, "export MDC and OSC counters (one series set per OST/MDT connection)",
               type=bool),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.paths = ctx.paths
        self.lctl = Lctl(ctx.option("lctl"), ctx.option("timeout"))
        self.per_target = ctx.option("per-target")

    def available(self) -> str | None:
        if find_files(self.paths, "llite", "stats"):
            return None
        if self.lctl.path() is None:
            return "no llite stats under /proc/fs/lustre, /sys/fs/lustre or debugfs and no lctl (no Lustre mounts)"
        if not self.lctl.list_param("llite.*.stats"):
            return "lctl lists no llite.*.stats (no Lustre mounts)"
        return None

    def _read(self) -> dict[tuple[str, str], str]:
        """{(device type, device): stats text} from files, or from lctl when no llite file is readable."""
        texts: dict[tuple[str, str], str] = {}
        for dev_type, fname in CLIENT_FILES:
            if dev_type != "llite" and not self.per_target:
                continue
            for device, path in find_files(self.paths, dev_type, fname).items():
                text = read_text(path)
                if text is not None:
                    texts[(dev_type, device)] = text
        if any(t == "llite" for t, _ in texts):
            return texts
        for param in LCTL_PARAMS if self.per_target else LCTL_PARAMS[:1]:
            try:
                out = self.lctl.get_param(param)
            except CommandError as exc:
                if param == LCTL_PARAMS[0]:
                    raise
                log_once(log, f"lctl:{param}", "lctl get_param %s failed: %s", param, exc)
                continue
            for name, value in split_get_param(out):
                texts[param_device(name)] = value
        return texts

    def collect(self) -> Iterator[Metric]:
        ops = FAMILIES.new("hpc_lustre_client_operations_total")
        byt = FAMILIES.new("hpc_lustre_client_bytes_total")
        sec = FAMILIES.new("hpc_lustre_client_operation_time_seconds_total")
        rpcs = FAMILIES.new("hpc_lustre_client_target_operations_total")
        rbyt = FAMILIES.new("hpc_lustre_client_target_bytes_total")
        rsec = FAMILIES.new("hpc_lustre_client_target_time_seconds_total")
        reopens = FAMILIES.new("hpc_lustre_client_reopens_total")
        gap = FAMILIES.new("hpc_lustre_client_reopen_interval_seconds_total")
        hits = FAMILIES.new("hpc_lustre_client_xattr_cache_hits_total")
        for (dev_type, device), text in sorted(self._read().items()):
            o: dict[str, int] = {}
            b: dict[str, int] = {}
            s: dict[str, float] = {}
            counters = parse_stats(text, on_error=_stats_error)
            if dev_type == "llite":
                base, fams = [mount_fs(device), device], (ops, byt, sec)
                for c in counters:
                    if c.name == "openclosetime":
                        reopens.add_metric(base, c.samples)
                        if c.seconds is not None:
                            gap.add_metric(base, c.seconds)
                    elif c.name == "getxattr_hits":
                        hits.add_metric(base, c.samples)
                counters = [c for c in counters if c.name not in NOT_OPERATIONS]
            else:
                base, fams = [dev_type, device], (rpcs, rbyt, rsec)
            fold_counters(counters, o, b, s)
            for fam, values in zip(fams, (o, b, s)):
                for op, v in sorted(values.items()):
                    fam.add_metric(base + [op], v)
        yield from (ops, byt, sec, reopens, gap, hits)
        if self.per_target:
            yield from (rpcs, rbyt, rsec)


def _stats_error(reason: str) -> None:
    record_parse_error("lustre_stats")
    log_once(log, "stats_parse", "skipped a Lustre stats line: %s", reason)
