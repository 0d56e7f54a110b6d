"""The `node` collector: CPU, load, memory (and per NUMA node), PSI, disks, filesystems, network and
links, hwmon sensors, EDAC and RAPL read straight from /proc and /sys (honouring
--path.procfs/sysfs/rootfs), each file once per scrape.

Families are node_exporter's (exact names, types, labels and units, see docs/node-exporter-compat.md),
so node_exporter dashboards and alerts work on this collector and ours work on plain node_exporter.
Each source is skipped on its own when its file is missing (no PSI on old kernels, no EDAC in a VM)
or unreadable, with one log line; one bad file never hides the others or fails the scrape.
"""

from __future__ import annotations

import errno
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.files import list_dir, log_once, read_text
from hpcwatch.exporters.node.diskstats import parse_diskstats
from hpcwatch.exporters.node.edac import numbered, read_edac
from hpcwatch.exporters.node.families import DISK_COLUMNS, FAMILIES, NETDEV_COLUMNS, PRESSURE, FamilyBuilder
from hpcwatch.exporters.node.filesystem import filesystem_stats, parse_mounts
from hpcwatch.exporters.node.hwmon import HwmonReader, sensor_samples
from hpcwatch.exporters.node.loadavg import parse_loadavg
from hpcwatch.exporters.node.meminfo import parse_meminfo, parse_meminfo_numa, parse_numastat
from hpcwatch.exporters.node.mountstat import MountStatter
from hpcwatch.exporters.node.netclass import NetClassReader, link_samples
from hpcwatch.exporters.node.netdev import parse_netdev
from hpcwatch.exporters.node.pressure import RESOURCES, parse_pressure
from hpcwatch.exporters.node.rapl import EnergyCounter, RaplZone, family_name, read_rapl_zones
from hpcwatch.exporters.node.stat import CPU_MODES, GUEST_MODES, parse_stat
from hpcwatch.exporters.node.vmstat import DEFAULT_FIELDS, parse_vmstat
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.node")

USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Defaults as in node_exporter 1.6+, so the same disks and filesystems show up.
DISK_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p)\d+$"
FS_TYPES_EXCLUDE = (r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|erofs|fusectl|"
                    r"hugetlbfs|iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|"
                    r"squashfs|sysfs|tracefs)$")
MOUNT_POINTS_EXCLUDE = r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"

# (stat attribute, family): the scalar lines of /proc/stat.
KERNEL_SCALARS = (("context_switches", "node_context_switches_total"), ("interrupts", "node_intr_total"),
                  ("forks", "node_forks_total"), ("boot_time", "node_boot_time_seconds"),
                  ("procs_running", "node_procs_running"), ("procs_blocked", "node_procs_blocked"))

MEMINFO_HELP = {
    "MemTotal": "Usable RAM: physical memory less reserved memory and the kernel image.",
    "MemFree": "RAM not used for anything at all.",
    "MemAvailable": "Estimate of memory available to start new applications without swapping.",
    "Buffers": "Memory in block device buffers.",
    "Cached": "Memory in the page cache (file contents), excluding swap cache.",
    "SwapCached": "Memory that was swapped out and is back in RAM but still in the swap file.",
    "SwapTotal": "Total swap space.",
    "SwapFree": "Unused swap space.",
    "Dirty": "Memory waiting to be written back to disk.",
    "Writeback": "Memory being written back to disk right now.",
    "AnonPages": "Anonymous (not file-backed) memory mapped into user page tables.",
    "Mapped": "Files mapped into memory, such as libraries.",
    "Shmem": "Shared memory and tmpfs contents.",
    "Slab": "Kernel slab allocator memory.",
    "SReclaimable": "Slab memory the kernel can reclaim, such as caches.",
    "SUnreclaim": "Slab memory the kernel cannot reclaim under pressure.",
    "Committed_AS": "Memory the system has committed to allocations (may exceed RAM).",
    "HugePages_Total": "Size of the huge page pool, in pages.",
    "HugePages_Free": "Huge pages in the pool not yet allocated.",
    "Hugepagesize": "Size of one default huge page.",
}
_METRIC_NAME = re.compile(r"[a-zA-Z_:][a-zA-Z0-9_:]*")
STATIC_TTL_SECONDS = 60.0  # how long the RAPL zone list is kept before powercap is listed again
# Go's text for the errno values statfs fails with, where it differs from strerror(3) beyond the case.
_GO_ERRNO_TEXT = {errno.ESTALE: "stale NFS file handle"}


def statfs_error_text(exc: BaseException) -> str:
    """The `device_error` label node_exporter would write for a failed statfs (Go's errno text)."""
    code = getattr(exc, "errno", None)
    if isinstance(code, int):
        text = _GO_ERRNO_TEXT.get(code) or os.strerror(code)
        return text[:1].lower() + text[1:]
    return str(exc) or type(exc).__name__


class _Exclusions:
    """Cached regexp decisions: each name is matched once, not on every scrape."""

    def __init__(self, pattern: re.Pattern[str] | None) -> None:
        self.pattern = pattern
        self._seen: dict[str, bool] = {}

    def __call__(self, name: str) -> bool:
        hit = self._seen.get(name)
        if hit is None:
            if len(self._seen) > 10000:  # names churn (loop devices, containers): keep the cache bounded
                self._seen.clear()
            hit = self._seen[name] = bool(self.pattern and self.pattern.search(name))
        return hit


class _Filter(_Exclusions):
    """node_exporter's device filter: a name is ignored when it matches `exclude` or misses `include`."""

    def __init__(self, include: re.Pattern[str] | None, exclude: re.Pattern[str] | None) -> None:
        super().__init__(exclude)
        self.include = include

    def __call__(self, name: str) -> bool:
        hit = self._seen.get(name)
        if hit is None:
            hit = super().__call__(name) or bool(self.include and not self.include.search(name))
            self._seen[name] = hit
        return hit


@register
class NodeCollector(Collector):
    name = "node"
    help = ("node_exporter's CPU, load, memory (and per NUMA node), PSI, disk, filesystem, network and link, "
            "hwmon, EDAC and RAPL families from /proc and /sys")
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option("diskstats-device-exclude", opt.regexp(DISK_EXCLUDE), "regexp of /proc/diskstats devices to skip",
               type=opt.regexp),
        Option("netdev-device-exclude", None, "regexp of network devices to skip", type=opt.regexp),
        Option("netclass-device-exclude", None, "regexp of /sys/class/net interfaces to skip", type=opt.regexp),
        Option("netclass-ignore-invalid-speed", False,
               "leave out node_network_speed_bytes when the driver reports a negative speed", type=bool),
        Option("vmstat-fields", opt.regexp(DEFAULT_FIELDS), "regexp of /proc/vmstat fields to export (empty: all)",
               type=opt.regexp),
        Option("filesystem-fs-types-exclude", opt.regexp(FS_TYPES_EXCLUDE), "regexp of filesystem types to skip",
               type=opt.regexp),
        Option("filesystem-mount-points-exclude", opt.regexp(MOUNT_POINTS_EXCLUDE),
               "regexp of mount points to skip", type=opt.regexp),
        Option("filesystem-mount-timeout", 1.0,
               "how long a statvfs may take before its mount is skipped as hung (until the call returns)",
               type=opt.duration),
        Option("hwmon-chip-include", None, "regexp of hwmon chip labels to read (none: all)", type=opt.regexp),
        Option("hwmon-chip-exclude", None, "regexp of hwmon chip labels to skip", type=opt.regexp),
        Option("hwmon-sensor-include", None, "regexp of `<chip>;<sensor>` hwmon sensors to read (none: all)",
               type=opt.regexp),
        Option("hwmon-sensor-exclude", None, "regexp of `<chip>;<sensor>` hwmon sensors to skip", type=opt.regexp),
        Option("meminfo-numa", True, "export per-NUMA-node memory (node_memory_numa_*, off by default in "
               "node_exporter)", type=bool),
        Option("rapl-zone-label", False, "one node_rapl_joules_total family with a rapl_zone label instead of "
               "one family per zone (node_exporter's --collector.rapl.enable-zone-label)", type=bool),
        Option("pressure-avg10", False, "also export the PSI 10 s averages", type=bool),
        Option("edac-csrows", True, "also export EDAC error counts per csrow and channel (as node_exporter)",
               type=bool),
    )

    def __init__(self, ctx: CollectorContext, stat: Callable[[str], Any] = os.statvfs) -> None:
        super().__init__(ctx)
        p = ctx.paths
        self.paths = p
        self.disk_excluded = _Exclusions(ctx.option("diskstats-device-exclude"))
        self.netdev_excluded = _Exclusions(ctx.option("netdev-device-exclude"))
        self.fstype_excluded = _Exclusions(ctx.option("filesystem-fs-types-exclude"))
        self.mountpoint_excluded = _Exclusions(ctx.option("filesystem-mount-points-exclude"))
        self.netclass_excluded = _Exclusions(ctx.option("netclass-device-exclude"))
        self.netclass_ignore_invalid_speed = ctx.option("netclass-ignore-invalid-speed")
        self.netclass = NetClassReader(p.sys("class", "net"))
        self.vmstat_fields = ctx.option("vmstat-fields") or re.compile("")
        self.pressure_avg10 = ctx.option("pressure-avg10")
        self.edac_csrows = ctx.option("edac-csrows")
        self.statter = MountStatter(stat, ctx.option("filesystem-mount-timeout"))
        self.hwmon = HwmonReader(p.sys("class", "hwmon"))
        self.hwmon_chip_ignored = _Filter(ctx.option("hwmon-chip-include"), ctx.option("hwmon-chip-exclude"))
        self.hwmon_sensor_ignored = _Filter(ctx.option("hwmon-sensor-include"), ctx.option("hwmon-sensor-exclude"))
        self.edac_dir = p.sys("devices", "system", "edac", "mc")
        self.numa_dir = p.sys("devices", "system", "node") if ctx.option("meminfo-numa") else None
        self.powercap_dir = p.sys("class", "powercap")
        self.rapl_zone_label = ctx.option("rapl-zone-label")
        self.rapl_energy = EnergyCounter()
        self._rapl_zones: tuple[float, list[RaplZone]] | None = None
        self._stat_timeouts: dict[tuple[str, str, str], int] = {}
        self._sources: list[tuple[str, Callable[[FamilyBuilder], None]]] = [
            ("stat", self._cpu_and_kernel), ("loadavg", self._loadavg), ("meminfo", self._meminfo),
            ("pressure", self._pressure), ("vmstat", self._vmstat), ("diskstats", self._diskstats),
            ("netdev", self._netdev), ("netclass", self._netclass), ("filesystem", self._filesystem),
            ("hwmon", self._hwmon), ("edac", self._edac), ("meminfo_numa", self._meminfo_numa),
            ("rapl", self._rapl),
        ]

    def available(self) -> str | None:
        procfs = self.paths.procfs
        return None if os.path.isdir(procfs) else f"{procfs} not found"

    def close(self) -> None:
        self.statter.close()

    def collect(self) -> Iterator[Metric]:
        for source, read in self._sources:
            out = FamilyBuilder()
            try:
                read(out)
            except Exception as exc:  # noqa: BLE001 - one broken source must not hide the others
                log_once(log, f"crash:{source}:{type(exc).__name__}", "node source %s skipped: %s: %s",
                         source, type(exc).__name__, exc)
                record_parse_error(f"node_{source}")
                continue
            yield from out.families()

    # --- helpers -------------------------------------------------------------------------------------

    def _read(self, path: str, source: str) -> str | None:
        text = read_text(path)
        if text is None:
            log_once(log, f"missing:{path}", "%s is missing or unreadable; node source %s skipped", path, source,
                     level=logging.INFO)
        elif not text.strip():
            self._bad(path, source, 1, "is empty")
            return None
        return text

    @staticmethod
    def _bad(path: str, source: str, errors: int, why: str = "has lines that could not be parsed") -> None:
        if errors:
            log_once(log, f"bad:{path}", "%s %s; those lines are skipped (node source %s)", path, why, source)
            record_parse_error(f"node_{source}", errors)


    # --- sources: each adds its samples to `out` ------------------------------------------------------

    def _cpu_and_kernel(self, out: FamilyBuilder) -> None:
        path = self.paths.proc("stat")
        text = self._read(path, "stat")
        if text is None:
            return
        st = parse_stat(text)
        self._bad(path, "stat", st.errors)
        hz = float(USER_HZ)
        add = out.add
        for num, ticks in st.cpus.items():
            for mode, t in zip(CPU_MODES, ticks):
                add("node_cpu_seconds_total", (num, mode), t / hz)
            for mode, t in zip(GUEST_MODES, ticks[8:]):
                add("node_cpu_guest_seconds_total", (num, mode), t / hz)
        for attr, name in KERNEL_SCALARS:
            value = getattr(st, attr)
            if value is not None:
                add(name, (), value)

    def _loadavg(self, out: FamilyBuilder) -> None:
        path = self.paths.proc("loadavg")
        text = self._read(path, "loadavg")
        if text is None:
            return
        loads = parse_loadavg(text)
        if loads is None:
            self._bad(path, "loadavg", 1, "does not start with three load averages")
            return
        for m, v in zip((1, 5, 15), loads):
            out.add(f"node_load{m}", (), v)

    def _meminfo(self, out: FamilyBuilder) -> None:
        path = self.paths.proc("meminfo")
        text = self._read(path, "meminfo")
        if text is None:
            return
        fields, errors = parse_meminfo(text)
        self._bad(path, "meminfo", errors)
        for f in fields:
            name = "node_memory_" + f.key
            out.declare(name, MEMINFO_HELP.get(f.field) or f"Memory information field {f.key}.")
            out.add(name, (), f.value)

    def _pressure(self, out: FamilyBuilder) -> None:
        for res in RESOURCES:
            path = self.paths.proc("pressure", res)
            text = self._read(path, "pressure")
            if text is None:
                continue
            lines, errors = parse_pressure(text)
            self._bad(path, "pressure", errors)
            wanted = dict(PRESSURE[res])
            for line in lines:
                family = wanted.get(line.kind)
                if family is not None:
                    out.add(family, (), line.stalled_seconds)
                if self.pressure_avg10:
                    out.add(f"hpc_node_pressure_{line.kind}_avg10_ratio", (res,), line.avg10_ratio)

    def _vmstat(self, out: FamilyBuilder) -> None:
        path = self.paths.proc("vmstat")
        text = self._read(path, "vmstat")
        if text is None:
            return
        values, errors = parse_vmstat(text, self.vmstat_fields)
        self._bad(path, "vmstat", errors)
        for field, value in values.items():
            name = "node_vmstat_" + field
            if not _METRIC_NAME.fullmatch(name):
                self._bad(path, "vmstat", 1, f"has a field that cannot be a metric name ({field!r})")
                continue
            out.declare(name, f"/proc/vmstat information field {field}.")
            out.add(name, (), value)

    def _diskstats(self, out: FamilyBuilder) -> None:
        path = self.paths.proc("diskstats")
        text = self._read(path, "diskstats")
        if text is None:
            return
        disks, errors = parse_diskstats(text)
        self._bad(path, "diskstats", errors)
        excluded = self.disk_excluded
        add = out.add
        for d in disks:
            if excluded(d.device):
                continue
            lv = (d.device,)
            for (name, _kind, _help, scale), value in zip(DISK_COLUMNS, d.stats):
                add(name, lv, value * scale if scale != 1.0 else value)

    def _netdev(self, out: FamilyBuilder) -> None:
        path = self.paths.proc("net", "dev")
        text = self._read(path, "netdev")
        if text is None:
            return
        devices, errors = parse_netdev(text)
        self._bad(path, "netdev", errors)
        excluded = self.netdev_excluded
        add = out.add
        for dev in devices:
            if excluded(dev.device):
                continue
            lv = (dev.device,)
            for (name, _help), value in zip(NETDEV_COLUMNS, dev.counters):
                add(name, lv, value)

    def _netclass(self, out: FamilyBuilder) -> None:
        if not self.netclass.present():
            log_once(log, "missing:netclass", "%s not found; node source netclass skipped", self.netclass.class_dir,
                     level=logging.INFO)
            return
        excluded = self.netclass_excluded
        for device, attrs in self.netclass.interfaces():
            if excluded(device):
                continue
            for s in link_samples(device, attrs, self.netclass_ignore_invalid_speed):
                out.add(s.family, s.labels, s.value)

    def _mounts(self) -> list:
        for path in (self.paths.proc("1", "mounts"), self.paths.proc("mounts")):
            text = read_text(path)
            if text is not None:
                mounts, errors = parse_mounts(text)
                self._bad(path, "filesystem", errors)
                return mounts
        log_once(log, "missing:mounts", "no mount table under %s; node source filesystem skipped",
                 self.paths.procfs, level=logging.INFO)
        return []

    def _filesystem(self, out: FamilyBuilder) -> None:
        wanted = {}
        for m in self._mounts():
            if not self.fstype_excluded(m.fstype) and not self.mountpoint_excluded(m.mountpoint):
                wanted[self.paths.root(m.mountpoint)] = m
        outcome = self.statter.stat_all(list(wanted)) if wanted else None
        for path in outcome.timed_out if outcome else ():
            m = wanted[path]
            key = (m.device, m.fstype, m.mountpoint)
            self._stat_timeouts[key] = self._stat_timeouts.get(key, 0) + 1
            log.warning("statvfs on %s (%s) did not return within %gs; skipped until it does",
                        path, m.fstype, self.statter.timeout)
        add = out.add
        for path, m in wanted.items():
            res = outcome.results.get(path) if outcome else None
            try:
                fs = None if res is None or isinstance(res, BaseException) else filesystem_stats(res)
            except (AttributeError, TypeError, ValueError) as exc:
                res, fs = exc, None
            readonly = 1 if m.readonly else 0
            if fs is None:
                if isinstance(res, BaseException):
                    log_once(log, f"statvfs:{path}:{type(res).__name__}", "statvfs on %s failed: %s", path, res)
                    why = statfs_error_text(res)
                else:
                    why = "mountpoint timeout"  # node_exporter's words for a hung mount
                lv = (m.device, m.mountpoint, m.fstype, why)
                add("node_filesystem_device_error", lv, 1)
                add("node_filesystem_readonly", lv, readonly)
                continue
            lv = (m.device, m.mountpoint, m.fstype, "")
            add("node_filesystem_device_error", lv, 0)
            add("node_filesystem_readonly", lv, readonly)
            add("node_filesystem_size_bytes", lv, fs.size_bytes)
            add("node_filesystem_free_bytes", lv, fs.free_bytes)
            add("node_filesystem_avail_bytes", lv, fs.avail_bytes)
            add("node_filesystem_files", lv, fs.files)
            add("node_filesystem_files_free", lv, fs.files_free)
        for key, n in self._stat_timeouts.items():
            add("hpc_node_filesystem_stat_timeouts_total", key, n)

    def _hwmon(self, out: FamilyBuilder) -> None:
        if not self.hwmon.present():
            log_once(log, "missing:hwmon", "%s not found; node source hwmon skipped", self.hwmon.class_dir,
                     level=logging.INFO)
            return
        chip_ignored, sensor_ignored = self.hwmon_chip_ignored, self.hwmon_sensor_ignored
        for chip in self.hwmon.chips():
            if chip_ignored(chip.chip):
                continue
            if chip.chip_name:
                out.add("node_hwmon_chip_names", (chip.chip, chip.chip_name), 1)
            for sensor, data in chip.sensors.items():
                if sensor_ignored(f"{chip.chip};{sensor}"):
                    continue
                label = data.get("label")
                if label is not None:
                    out.add("node_hwmon_sensor_label", (chip.chip, sensor, label), 1)
                for s in sensor_samples(chip.chip, sensor, data):
                    out.declare(s.family, s.help)
                    out.add(s.family, s.labels, s.value)

    def _edac(self, out: FamilyBuilder) -> None:
        if not os.path.isdir(self.edac_dir):
            log_once(log, "missing:edac", "%s not found (no EDAC driver); node source edac skipped", self.edac_dir,
                     level=logging.INFO)
            return
        for c in read_edac(self.edac_dir, self.edac_csrows):
            for value, kind in ((c.correctable, "correctable"), (c.uncorrectable, "uncorrectable")):
                if c.channel is not None:
                    if value is not None and value >= 0:  # chN_ue_count is optional
                        out.add(f"node_edac_channel_{kind}_errors_total",
                                (c.controller, c.csrow or "", c.channel, c.dimm_label or "unknown"), value)
                    continue
                if value is None or value < 0:
                    log_once(log, f"bad:edac:{c.controller}:{c.csrow}:{kind}", "EDAC mc%s%s has an unreadable %s count",
                             c.controller, f" csrow{c.csrow}" if c.csrow else "", kind)
                    continue
                if c.csrow is None:
                    out.add(f"node_edac_{kind}_errors_total", (c.controller,), value)
                else:
                    out.add(f"node_edac_csrow_{kind}_errors_total", (c.controller, c.csrow), value)

    def _meminfo_numa(self, out: FamilyBuilder) -> None:
        if self.numa_dir is None:
            return
        nodes = numbered(list_dir(self.numa_dir), "node")
        if not nodes:
            log_once(log, "missing:numa", "no NUMA nodes under %s; node source meminfo_numa skipped", self.numa_dir,
                     level=logging.INFO)
            return
        for n in nodes:
            path = os.path.join(self.numa_dir, f"node{n}", "meminfo")
            text = self._read(path, "meminfo_numa")
            if text is not None:
                fields, errors = parse_meminfo_numa(text)
                self._bad(path, "meminfo_numa", errors)
                for f in fields:
                    name = "node_memory_numa_" + f.key
                    out.declare(name, f"Memory information field {f.key} of the NUMA node.")
                    out.add(name, (f.node,), f.value)
            path = os.path.join(self.numa_dir, f"node{n}", "numastat")
            text = self._read(path, "meminfo_numa")
            if text is not None:
                stats, errors = parse_numastat(text)
                self._bad(path, "meminfo_numa", errors)
                for field, value in stats.items():
                    name = f"node_memory_numa_{field}_total"
                    out.declare(name, f"Pages of the NUMA node counted as {field} (numastat).")
                    out.add(name, (n,), value)

    def _rapl(self, out: FamilyBuilder) -> None:
        now = time.monotonic()
        if self._rapl_zones is None or now - self._rapl_zones[0] > STATIC_TTL_SECONDS:
            self._rapl_zones = (now, read_rapl_zones(self.powercap_dir) if os.path.isdir(self.powercap_dir) else [])
        zones = self._rapl_zones[1]
        if not zones:
            log_once(log, "missing:rapl", "no RAPL zones under %s; node source rapl skipped", self.powercap_dir,
                     level=logging.INFO)
            return
        self.rapl_energy.forget({z.path for z in zones})
        for z in zones:
            total = self.rapl_energy.read(z)
            if total is None:
                log_once(log, f"bad:rapl:{z.path}", "%s/energy_uj is unreadable (root only since Linux 5.10); "
                         "zone skipped", z.path)
                continue
            if self.rapl_zone_label:
                out.add("node_rapl_joules_total", (str(z.index), z.path, z.name), total / 1e6)
            else:
                name = family_name(z.name)
                out.declare(name, f"Energy the RAPL {z.name} domain used, in joules (wraps of energy_uj "
                            "accumulated).")
                out.add(name, (str(z.index), z.path), total / 1e6)
