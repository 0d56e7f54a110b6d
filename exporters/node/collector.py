"""The `node` collector: CPU, load, memory, PSI, disks, filesystems, network, temperatures and EDAC
read straight from /proc and /sys (honouring --path.procfs/sysfs/rootfs), each file once per scrape.

Each source is skipped on its own when its file is missing (no PSI on old kernels, no EDAC in a VM)
or unreadable, with one log line; one bad file never hides the others or fails the scrape.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.node import diskstats as ds
from hpcwatch.exporters.node.diskstats import parse_diskstats
from hpcwatch.exporters.node.edac import read_edac
from hpcwatch.exporters.node.filesystem import filesystem_stats, parse_mounts
from hpcwatch.exporters.node.hwmon import HwmonReader
from hpcwatch.exporters.node.loadavg import parse_loadavg
from hpcwatch.exporters.node.meminfo import parse_meminfo
from hpcwatch.exporters.node.mountstat import MountStatter
from hpcwatch.exporters.node.netdev import parse_netdev
from hpcwatch.exporters.node.pressure import RESOURCES, parse_pressure
from hpcwatch.exporters.node.procfile import read_proc_text
from hpcwatch.exporters.node.stat import CPU_MODES, parse_stat
from hpcwatch.exporters.node.vmstat import parse_vmstat
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, Paths, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.node")

USER_HZ = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100

# Defaults as in node_exporter 1.6+, so the same disks and filesystems show up.
DISK_EXCLUDE = r"^(z?ram|loop|fd|(h|s|v|xv)d[a-z]|nvme\d+n\d+p|mmcblk\d+p)\d+$"
FS_TYPES_EXCLUDE = (r"^(autofs|binfmt_misc|bpf|cgroup2?|configfs|debugfs|devpts|devtmpfs|fusectl|hugetlbfs|"
                    r"iso9660|mqueue|nsfs|overlay|proc|procfs|pstore|rpc_pipefs|securityfs|selinuxfs|squashfs|"
                    r"sysfs|tracefs)$")
MOUNT_POINTS_EXCLUDE = r"^/(dev|proc|run/credentials/.+|sys|var/lib/docker/.+|var/lib/containers/storage/.+)($|/)"

_FS_LABELS = ["device", "fstype", "mountpoint"]

# vmstat field -> (family name without _total, HELP)
VMSTAT_COUNTERS = {
    "oom_kill": ("hpc_node_oom_kills", "Processes killed by the kernel's out-of-memory killer since boot."),
    "pgfault": ("hpc_node_page_faults", "Page faults (minor and major) since boot."),
    "pgmajfault": ("hpc_node_major_page_faults", "Major page faults (ones that needed I/O) since boot."),
    "pswpin": ("hpc_node_swap_in_pages", "Pages swapped in from swap space since boot."),
    "pswpout": ("hpc_node_swap_out_pages", "Pages swapped out to swap space since boot."),
}
_VMSTAT_WANTED = frozenset(VMSTAT_COUNTERS)

# KernelStats field -> (family class, name (counters without _total), HELP)
KERNEL_SCALARS = (
    ("context_switches", CounterMetricFamily, "hpc_node_context_switches", "Context switches since boot."),
    ("interrupts", CounterMetricFamily, "hpc_node_interrupts", "Interrupts serviced since boot."),
    ("forks", CounterMetricFamily, "hpc_node_forks", "Processes and threads created since boot."),
    ("boot_time", GaugeMetricFamily, "hpc_node_boot_time_seconds", "Unix time the node booted."),
    ("procs_running", GaugeMetricFamily, "hpc_node_procs_running", "Tasks runnable right now."),
    ("procs_blocked", GaugeMetricFamily, "hpc_node_procs_blocked", "Tasks blocked waiting for I/O right now."),
)

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


def _regexp(pattern: str) -> re.Pattern[str] | None:
    return re.compile(pattern) if pattern else None


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


def _counter(name: str, doc: str, labels: list[str]) -> CounterMetricFamily:
    return CounterMetricFamily(name, doc, labels=labels)


def _gauge(name: str, doc: str, labels: list[str] | None = None) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, doc, labels=labels)


@register
class NodeCollector(Collector):
    name = "node"
    help = "CPU, load, memory, PSI, disks, filesystems, network, temperatures and EDAC from /proc and /sys"
    kind = "live"
    default_agents = frozenset({"node"})
    options = (
        Option("diskstats-device-exclude", DISK_EXCLUDE, "regexp of /proc/diskstats devices to skip"),
        Option("netdev-device-exclude", "", "regexp of network devices to skip"),
        Option("filesystem-fs-types-exclude", FS_TYPES_EXCLUDE, "regexp of filesystem types to skip"),
        Option("filesystem-mount-points-exclude", MOUNT_POINTS_EXCLUDE, "regexp of mount points to skip"),
        Option("filesystem-mount-timeout", 1.0,
               "seconds a statvfs may take before its mount is skipped as hung (until the call returns)",
               type=float),
        Option("pressure-avg10", False, "also export the PSI 10 s averages", type=bool),
        Option("edac-csrows", False, "also export EDAC error counts per csrow", type=bool),
    )

    def __init__(self, ctx: CollectorContext, stat: Callable[[str], Any] = os.statvfs) -> None:
        super().__init__(ctx)
        p = ctx.paths
        self.paths = p
        self.disk_excluded = _Exclusions(_regexp(ctx.option("diskstats-device-exclude")))
        self.netdev_excluded = _Exclusions(_regexp(ctx.option("netdev-device-exclude")))
        self.fstype_excluded = _Exclusions(_regexp(ctx.option("filesystem-fs-types-exclude")))
        self.mountpoint_excluded = _Exclusions(_regexp(ctx.option("filesystem-mount-points-exclude")))
        self.pressure_avg10 = bool(ctx.option("pressure-avg10"))
        self.edac_csrows = bool(ctx.option("edac-csrows"))
        self.statter = MountStatter(stat, float(ctx.option("filesystem-mount-timeout")))
        self.hwmon = HwmonReader(p.sys("class", "hwmon"))
        self.edac_dir = p.sys("devices", "system", "edac", "mc")
        self._meminfo_names: dict[tuple[str, str, bool], tuple[str, str]] = {}
        self._stat_timeouts: dict[tuple[str, str, str], int] = {}
        self._sources: list[tuple[str, Callable[[], list[Metric]]]] = [
            ("stat", self._cpu_and_kernel), ("loadavg", self._loadavg), ("meminfo", self._meminfo),
            ("pressure", self._pressure), ("vmstat", self._vmstat), ("diskstats", self._diskstats),
            ("netdev", self._netdev), ("filesystem", self._filesystem), ("hwmon", self._hwmon),
            ("edac", self._edac),
        ]

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """The kernel 6 fixture tree with every optional family on, and fixed statvfs answers."""
        root = os.path.join(repo, "tests", "fixtures", "node", "real")
        opts = {o.name: o.default for o in cls.options} | {"pressure-avg10": True, "edac-csrows": True}
        ctx = CollectorContext(paths=Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys")),
                               options=opts)
        example = os.statvfs_result((4096, 4096, 1 << 20, 1 << 19, 1 << 18, 1 << 16, 1 << 15, 1 << 15, 0, 255))
        return [cls(ctx, stat=lambda _path: example)]

    def available(self) -> str | None:
        procfs = self.paths.procfs
        return None if os.path.isdir(procfs) else f"{procfs} not found"

    def close(self) -> None:
        self.statter.close()

    def collect(self) -> Iterator[Metric]:
        for source, read in self._sources:
            try:
                families = read()
            except Exception as exc:  # noqa: BLE001 - one broken source must not hide the others
                log_once(log, f"crash:{source}:{type(exc).__name__}", "node source %s skipped: %s: %s",
                         source, type(exc).__name__, exc)
                record_parse_error(f"node_{source}")
                continue
            yield from families

    # --- helpers -------------------------------------------------------------------------------------

    def _read(self, path: str, source: str) -> str | None:
        text = read_proc_text(path)
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

    # --- sources -------------------------------------------------------------------------------------

    def _cpu_and_kernel(self) -> list[Metric]:
        path = self.paths.proc("stat")
        text = self._read(path, "stat")
        if text is None:
            return []
        st = parse_stat(text)
        self._bad(path, "stat", st.errors)
        out: list[Metric] = []
        cpu = _counter("hpc_node_cpu_seconds", "Seconds each CPU spent in each mode since boot.", ["cpu", "mode"])
        hz = float(USER_HZ)
        for num, ticks in st.cpus.items():
            for mode, t in zip(CPU_MODES, ticks):
                cpu.add_metric([num, mode], t / hz)
        out.append(cpu)
        for attr, family, name, doc in KERNEL_SCALARS:
            value = getattr(st, attr)
            if value is not None:
                out.append(family(name, doc, value=value))
        return out

    def _loadavg(self) -> list[Metric]:
        path = self.paths.proc("loadavg")
        text = self._read(path, "loadavg")
        if text is None:
            return []
        loads = parse_loadavg(text)
        if loads is None:
            self._bad(path, "loadavg", 1, "does not start with three load averages")
            return []
        return [GaugeMetricFamily(f"hpc_node_load{m}", f"Load average over {m} minute{'s' if m > 1 else ''}: "
                                  "runnable plus uninterruptible tasks.", value=v)
                for m, v in zip((1, 5, 15), loads)]

    def _meminfo(self) -> list[Metric]:
        path = self.paths.proc("meminfo")
        text = self._read(path, "meminfo")
        if text is None:
            return []
        fields, errors = parse_meminfo(text)
        self._bad(path, "meminfo", errors)
        return [GaugeMetricFamily(*self._meminfo_family(f.field, f.name, f.is_bytes), value=f.value)
                for f in fields]

    def _meminfo_family(self, field: str, snake: str, is_bytes: bool) -> tuple[str, str]:
        """(family name, HELP) of a meminfo field, worked out once per field."""
        key = (field, snake, is_bytes)
        known = self._meminfo_names.get(key)
        if known is None:
            name = f"hpc_node_memory_{snake}"
            if is_bytes:
                name += "_bytes"
            elif name.endswith("_total"):  # HugePages_Total is a gauge; `_total` is for counters
                name = name[:-6]
            doc = MEMINFO_HELP.get(field) or f"The {field} line of /proc/meminfo" + (
                ", in bytes." if is_bytes else ".")
            if len(self._meminfo_names) < 4096:
                self._meminfo_names[key] = (name, doc)
            known = (name, doc)
        return known

    def _pressure(self) -> list[Metric]:
        some = _counter("hpc_node_pressure_some_seconds",
                        "Seconds in which at least one task stalled waiting for the resource (PSI some).",
                        ["resource"])
        full = _counter("hpc_node_pressure_full_seconds",
                        "Seconds in which all non-idle tasks stalled on the resource at once (PSI full).",
                        ["resource"])
        avg_some = _gauge("hpc_node_pressure_some_avg10_ratio",
                          "Share of the last 10 s in which some task stalled on the resource (PSI some avg10).",
                          ["resource"])
        avg_full = _gauge("hpc_node_pressure_full_avg10_ratio",
                          "Share of the last 10 s in which all non-idle tasks stalled on the resource "
                          "(PSI full avg10).", ["resource"])
        found = False
        for res in RESOURCES:
            path = self.paths.proc("pressure", res)
            text = self._read(path, "pressure")
            if text is None:
                continue
            lines, errors = parse_pressure(text)
            self._bad(path, "pressure", errors)
            for line in lines:
                found = True
                is_some = line.kind == "some"
                (some if is_some else full).add_metric([res], line.stalled_seconds)
                (avg_some if is_some else avg_full).add_metric([res], line.avg10_ratio)
        if not found:
            return []
        return [some, full, avg_some, avg_full] if self.pressure_avg10 else [some, full]

    def _vmstat(self) -> list[Metric]:
        path = self.paths.proc("vmstat")
        text = self._read(path, "vmstat")
        if text is None:
            return []
        values, errors = parse_vmstat(text, _VMSTAT_WANTED)
        self._bad(path, "vmstat", errors)
        out: list[Metric] = []
        for field, value in values.items():
            name, doc = VMSTAT_COUNTERS[field]
            out.append(CounterMetricFamily(name, doc, value=value))
        return out

    def _diskstats(self) -> list[Metric]:
        path = self.paths.proc("diskstats")
        text = self._read(path, "diskstats")
        if text is None:
            return []
        disks, errors = parse_diskstats(text)
        self._bad(path, "diskstats", errors)
        lab = ["device"]
        reads = _counter("hpc_node_disk_reads_completed", "Reads completed successfully.", lab)
        writes = _counter("hpc_node_disk_writes_completed", "Writes completed successfully.", lab)
        rbytes = _counter("hpc_node_disk_read_bytes", "Bytes read (512-byte sectors times 512).", lab)
        wbytes = _counter("hpc_node_disk_written_bytes", "Bytes written (512-byte sectors times 512).", lab)
        rtime = _counter("hpc_node_disk_read_time_seconds", "Seconds spent by all reads.", lab)
        wtime = _counter("hpc_node_disk_write_time_seconds", "Seconds spent by all writes.", lab)
        iotime = _counter("hpc_node_disk_io_time_seconds", "Seconds the device had I/O in flight.", lab)
        weighted = _counter("hpc_node_disk_io_time_weighted_seconds",
                            "Seconds spent doing I/O weighted by the number of I/Os in flight.", lab)
        inflight = _gauge("hpc_node_disk_io_now", "I/Os in flight right now.", lab)
        discards = _counter("hpc_node_disk_discards_completed", "Discards completed successfully.", lab)
        dbytes = _counter("hpc_node_disk_discarded_bytes", "Bytes discarded (512-byte sectors times 512).", lab)
        dtime = _counter("hpc_node_disk_discard_time_seconds", "Seconds spent by all discards.", lab)
        flushes = _counter("hpc_node_disk_flush_requests", "Flush requests completed successfully.", lab)
        ftime = _counter("hpc_node_disk_flush_requests_time_seconds", "Seconds spent by all flush requests.", lab)
        excluded = self.disk_excluded
        for d in disks:
            if excluded(d.device):
                continue
            s, lv = d.stats, [d.device]
            reads.add_metric(lv, s[ds.READS])
            writes.add_metric(lv, s[ds.WRITES])
            rbytes.add_metric(lv, s[ds.READ_SECTORS] * ds.SECTOR_BYTES)
            wbytes.add_metric(lv, s[ds.WRITE_SECTORS] * ds.SECTOR_BYTES)
            rtime.add_metric(lv, s[ds.READ_MS] / 1000.0)
            wtime.add_metric(lv, s[ds.WRITE_MS] / 1000.0)
            inflight.add_metric(lv, s[ds.IO_NOW])
            iotime.add_metric(lv, s[ds.IO_MS] / 1000.0)
            weighted.add_metric(lv, s[ds.IO_WEIGHTED_MS] / 1000.0)
            if len(s) > ds.DISCARD_MS:
                discards.add_metric(lv, s[ds.DISCARDS])
                dbytes.add_metric(lv, s[ds.DISCARD_SECTORS] * ds.SECTOR_BYTES)
                dtime.add_metric(lv, s[ds.DISCARD_MS] / 1000.0)
            if len(s) > ds.FLUSH_MS:
                flushes.add_metric(lv, s[ds.FLUSHES])
                ftime.add_metric(lv, s[ds.FLUSH_MS] / 1000.0)
        fams = [reads, writes, rbytes, wbytes, rtime, wtime, iotime, weighted, inflight,
                discards, dbytes, dtime, flushes, ftime]
        return [f for f in fams if f.samples]

    def _netdev(self) -> list[Metric]:
        path = self.paths.proc("net", "dev")
        text = self._read(path, "netdev")
        if text is None:
            return []
        devices, errors = parse_netdev(text)
        self._bad(path, "netdev", errors)
        fams = [_counter(f"hpc_node_network_{d}_{what}", doc, ["device"])
                for d, verb in (("receive", "received"), ("transmit", "transmitted"))
                for what, doc in (("bytes", f"Bytes {verb} by the device."),
                                  ("packets", f"Packets {verb} by the device."),
                                  ("errs", f"Errors the device counted on packets {verb}."),
                                  ("drop", f"Packets {verb} that the device or driver dropped."))]
        excluded = self.netdev_excluded
        for dev in devices:
            if excluded(dev.device):
                continue
            lv = [dev.device]
            for fam, value in zip(fams, dev.counters):
                fam.add_metric(lv, value)
        return fams if devices else []

    def _mounts(self) -> list:
        for path in (self.paths.proc("1", "mounts"), self.paths.proc("mounts")):
            text = read_proc_text(path)
            if text is not None:
                mounts, errors = parse_mounts(text)
                self._bad(path, "filesystem", errors)
                return mounts
        log_once(log, "missing:mounts", "no mount table under %s; node source filesystem skipped",
                 self.paths.procfs, level=logging.INFO)
        return []

    def _filesystem(self) -> list[Metric]:
        wanted = {}
        for m in self._mounts():
            if not self.fstype_excluded(m.fstype) and not self.mountpoint_excluded(m.mountpoint):
                wanted[self.paths.root(m.mountpoint)] = m
        if not wanted:
            return [self._timeouts_family()] if self._stat_timeouts else []
        outcome = self.statter.stat_all(list(wanted))
        size = _gauge("hpc_node_filesystem_size_bytes", "Filesystem size in bytes.", _FS_LABELS)
        free = _gauge("hpc_node_filesystem_free_bytes", "Free bytes, including those reserved for root.",
                      _FS_LABELS)
        avail = _gauge("hpc_node_filesystem_avail_bytes", "Bytes available to unprivileged users.", _FS_LABELS)
        files = _gauge("hpc_node_filesystem_files", "Inodes the filesystem has in total.", _FS_LABELS)
        files_free = _gauge("hpc_node_filesystem_files_free", "Inodes still free.", _FS_LABELS)
        readonly = _gauge("hpc_node_filesystem_readonly", "1 when the filesystem is mounted read-only.",
                          _FS_LABELS)
        error = _gauge("hpc_node_filesystem_device_error",
                       "1 when statvfs on the mount failed or hung, so its sizes are missing.", _FS_LABELS)
        for path in outcome.timed_out:
            m = wanted[path]
            key = (m.device, m.fstype, m.mountpoint)
            self._stat_timeouts[key] = self._stat_timeouts.get(key, 0) + 1
            log.warning("statvfs on %s (%s) did not return within %gs; skipped until it does",
                        path, m.fstype, self.statter.timeout)
        for path, m in wanted.items():
            lv = [m.device, m.fstype, m.mountpoint]
            res = outcome.results.get(path)
            try:
                fs = None if res is None or isinstance(res, BaseException) else filesystem_stats(res)
            except (AttributeError, TypeError, ValueError) as exc:
                res, fs = exc, None
            if fs is None:
                if isinstance(res, BaseException):
                    log_once(log, f"statvfs:{path}:{type(res).__name__}", "statvfs on %s failed: %s", path, res)
                error.add_metric(lv, 1)
                continue
            error.add_metric(lv, 0)
            readonly.add_metric(lv, 1 if m.readonly else 0)
            size.add_metric(lv, fs.size_bytes)
            free.add_metric(lv, fs.free_bytes)
            avail.add_metric(lv, fs.avail_bytes)
            files.add_metric(lv, fs.files)
            files_free.add_metric(lv, fs.files_free)
        return [size, free, avail, files, files_free, readonly, error, self._timeouts_family()]

    def _timeouts_family(self) -> Metric:
        timeouts = _counter("hpc_node_filesystem_stat_timeouts",
                            "Times statvfs on the mount did not return within the mount timeout.", _FS_LABELS)
        for key, n in self._stat_timeouts.items():
            timeouts.add_metric(list(key), n)
        return timeouts

    def _hwmon(self) -> list[Metric]:
        if not self.hwmon.present():
            log_once(log, "missing:hwmon", "%s not found; node source hwmon skipped", self.hwmon.class_dir,
                     level=logging.INFO)
            return []
        lab = ["chip", "sensor"]
        temp = _gauge("hpc_node_hwmon_temperature_celsius", "Current temperature of the sensor.", lab)
        tmax = _gauge("hpc_node_hwmon_temperature_max_celsius", "Temperature the sensor's chip calls high.", lab)
        crit = _gauge("hpc_node_hwmon_temperature_crit_celsius", "Temperature the sensor's chip calls critical.",
                      lab)
        chip_info = _gauge("hpc_node_hwmon_chip_info", "The chip's driver name, as a label; always 1.",
                           ["chip", "chip_name"])
        sensor_info = _gauge("hpc_node_hwmon_sensor_info", "The sensor's label from the driver; always 1.",
                             ["chip", "sensor", "label"])
        seen: set[tuple[str, str]] = set()
        for chip in self.hwmon.chips():
            if chip.chip_name:
                chip_info.add_metric([chip.chip, chip.chip_name], 1)
            for s in chip.sensors:
                if (chip.chip, s.sensor) in seen:
                    continue  # two hwmon folders for one device: keep the first
                value = self.hwmon.temperature(s)
                if value is None:
                    log_once(log, f"bad:{s.input_path}", "%s is missing or not an integer; sensor skipped",
                             s.input_path)
                    continue
                seen.add((chip.chip, s.sensor))
                lv = [chip.chip, s.sensor]
                temp.add_metric(lv, value)
                if s.max_celsius is not None:
                    tmax.add_metric(lv, s.max_celsius)
                if s.crit_celsius is not None:
                    crit.add_metric(lv, s.crit_celsius)
                if s.label:
                    sensor_info.add_metric([chip.chip, s.sensor, s.label], 1)
        return [f for f in (temp, tmax, crit, chip_info, sensor_info) if f.samples]

    def _edac(self) -> list[Metric]:
        if not os.path.isdir(self.edac_dir):
            log_once(log, "missing:edac", "%s not found (no EDAC driver); node source edac skipped", self.edac_dir,
                     level=logging.INFO)
            return []
        ce = _counter("hpc_node_edac_correctable_errors", "Corrected memory errors on the memory controller.",
                      ["controller"])
        ue = _counter("hpc_node_edac_uncorrectable_errors", "Uncorrected memory errors on the memory controller.",
                      ["controller"])
        row_ce = _counter("hpc_node_edac_csrow_correctable_errors", "Corrected memory errors on the csrow.",
                          ["controller", "csrow"])
        row_ue = _counter("hpc_node_edac_csrow_uncorrectable_errors", "Uncorrected memory errors on the csrow.",
                          ["controller", "csrow"])
        for c in read_edac(self.edac_dir, self.edac_csrows):
            pairs = ((c.correctable, ce, row_ce), (c.uncorrectable, ue, row_ue))
            for value, per_ctrl, per_row in pairs:
                if value is None or value < 0:
                    log_once(log, f"bad:edac:{c.controller}:{c.csrow}", "EDAC mc%s%s has an unreadable count",
                             c.controller, f" csrow{c.csrow}" if c.csrow else "")
                    continue
                if c.csrow is None:
                    per_ctrl.add_metric([c.controller], value)
                else:
                    per_row.add_metric([c.controller, c.csrow], value)
        return [f for f in (ce, ue, row_ce, row_ue) if f.samples]
