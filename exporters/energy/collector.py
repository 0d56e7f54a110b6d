"""The `energy` collector (node agent): the node's energy attributed to the jobs running on it.

A background loop samples every `interval` seconds: RAPL package and DRAM counters (node.rapl: the
powercap zones, made monotonic across wraps), the node power meter (hwmon `power_meter`, or IPMI DCMI
read on its own slower loop with a timeout), the GPUs' energy counters and GPU->job map (NVML, the
gpu package's reader), the node's busy CPU time (/proc/stat) and each job's CPU time and cpuset (the
jobs collector's cgroup reader). Each interval is split among the jobs (energy.attribution) and
added to running totals; scrapes serve the totals of the last sample.
"""

from __future__ import annotations

import logging
import os
import shutil
import time
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import CommandError
from hpcwatch.exporters.energy.families import FAMILIES
from hpcwatch.exporters.energy.ipmi import IpmiParseError, PowerReading, read_dcmi_power
from hpcwatch.exporters.energy.sampler import EnergyTotals, NodeSample
from hpcwatch.exporters.files import list_dir, log_once, read_text
from hpcwatch.exporters.jobcap import MAX_JOBS_OPTION, JobCap
from hpcwatch.exporters.jobs.collector import JobsCollector
from hpcwatch.exporters.node import rapl
from hpcwatch.exporters.node.stat import parse_stat
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.energy")

BUSY_MODES = (0, 1, 2, 5, 6, 7)   # user nice system irq softirq steal (idle and iowait are not busy)
METERS = ("auto", "hwmon", "ipmi", "none")


def busy_seconds(stat_text: str, ticks: int) -> tuple[float, int]:
    """(CPU seconds not idle, summed over CPUs; online CPUs) from /proc/stat text."""
    stats = parse_stat(stat_text)
    busy = sum(t[i] for t in stats.cpus.values() for i in BUSY_MODES if i < len(t))
    return busy / ticks, len(stats.cpus)


def hwmon_power_meter(sysfs_hwmon: str) -> str | None:
    """The hwmon directory of the ACPI power meter (name `power_meter`), if the node has one."""
    for entry in sorted(list_dir(sysfs_hwmon)):
        name = read_text(os.path.join(sysfs_hwmon, entry, "name"), 256)
        if name is not None and name.strip() == "power_meter":
            return os.path.join(sysfs_hwmon, entry)
    return None


def read_meter_watts(meter_dir: str) -> float | None:
    """The meter's power in watts (power1_average, else power1_input; sysfs gives microwatts)."""
    for f in ("power1_average", "power1_input"):
        text = read_text(os.path.join(meter_dir, f), 64)
        if text is not None and text.strip().isdigit():
            return int(text.strip()) / 1e6
    return None


@register
class EnergyCollector(Collector):
    name = "energy"
    help = "Node energy (RAPL, GPUs, a power meter) attributed to the jobs on the node, the rest unattributed"
    kind = "snapshot"
    default_agents = frozenset({"node"})
    families = FAMILIES
    clock = staticmethod(time.monotonic)   # when a sample is taken (the meter's power is integrated over it)
    options = (
        Option("interval", 5.0, "time between energy samples; each interval is split among the jobs of it",
               type=opt.duration),
        Option("power-meter", "auto", "node power meter: auto (hwmon power_meter, else IPMI where ipmitool and "
               "/dev/ipmi0 exist), hwmon, ipmi or none", choices=METERS),
        Option("ipmitool", "ipmitool", "ipmitool binary for `ipmitool dcmi power reading`"),
        Option("ipmi-interval", 30.0, "time between IPMI power readings (a BMC round trip each)", type=opt.duration),
        Option("ipmi-timeout", 10.0, "how long `ipmitool dcmi power reading` may take", type=opt.duration),
        Option("gpu", True, "GPU energy through NVML, split by the GPU->job map", type=bool),
        Option("job-map-dir", "/run/hpcwatch/gpu-jobs", "the Slurm prolog's GPU map (as the gpu collector's; "
               "under --path.rootfs; '' disables)"),
        Option("nodes", None, "regexp of slurmd node names whose job cgroups are read (as the jobs collector's)",
               type=opt.regexp),
        MAX_JOBS_OPTION,
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.powercap = ctx.paths.sys("class", "powercap")
        self.hwmon = ctx.paths.sys("class", "hwmon")
        self.stat_path = ctx.paths.proc("stat")
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        self.meter_mode = ctx.option("power-meter")  # one of METERS: argparse checked the choice
        self.ipmitool = ctx.option("ipmitool")
        self.ipmi_timeout = ctx.option("ipmi-timeout")
        self.use_gpu = ctx.option("gpu")
        map_dir = ctx.option("job-map-dir")
        self.job_map_dir = ctx.paths.root(map_dir) if map_dir else ""
        self.job_cap = JobCap(ctx.option("max-jobs"))  # series only: every job still gets its share of energy
        self.jobs = JobsCollector(CollectorContext.of(JobsCollector, ctx.paths, nodes=ctx.option("nodes")))
        self.counter = rapl.EnergyCounter()
        self.zones: list[rapl.RaplZone] = []
        self.meter_dir: str | None = None
        self.gpus = None
        self.totals = EnergyTotals()
        self.meter_source = ""
        self.meter_watts: float | None = None
        self.ipmi: SnapshotSource[PowerReading | None] | None = None
        self.source: SnapshotSource[dict] = SnapshotSource("energy", self.refresh, ctx.option("interval"))
        self.ipmi_interval = ctx.option("ipmi-interval")

    # --- start-up --------------------------------------------------------------------------------
    def available(self) -> str | None:
        why = self.jobs.available()
        if why is not None:
            return f"no jobs to attribute energy to: {why}"
        self.zones = [z for z in rapl.read_rapl_zones(self.powercap) if z.name in ("package", "dram")
                      and rapl.read_energy_uj(z) is not None]
        self._find_meter()
        if self.use_gpu:
            self._start_gpus()
        if not self.zones and self.meter_source == "" and self.gpus is None:
            return (f"no energy source: no readable RAPL zone under {self.powercap}, no power meter, no NVML GPU")
        return None

    def _find_meter(self) -> None:
        if self.meter_mode in ("auto", "hwmon"):
            self.meter_dir = hwmon_power_meter(self.hwmon)
            if self.meter_dir is not None:
                self.meter_source = "hwmon"
                return
        ipmi_dev = self.ctx.paths.root("/dev/ipmi0")
        if self.meter_mode == "ipmi" or (self.meter_mode == "auto" and os.path.exists(ipmi_dev)
                                         and shutil.which(self.ipmitool)):
            self.meter_source = "ipmi"
            self.ipmi = SnapshotSource("energy_ipmi", self._read_ipmi, self.ipmi_interval)

    def _read_ipmi(self) -> PowerReading | None:
        try:
            return read_dcmi_power(self.ipmitool, self.ipmi_timeout)
        except (CommandError, IpmiParseError) as exc:
            log_once(log, "ipmi", "ipmitool dcmi power reading: %s (no node meter until it answers)", exc)
            raise

    def _start_gpus(self) -> None:
        from hpcwatch.exporters.gpu.energy import GpuEnergyReader
        from hpcwatch.exporters.gpu.nvml import error_code

        reader = GpuEnergyReader(self.ctx.paths.procfs, self.job_map_dir)
        try:
            if reader.start():
                self.gpus = reader
                return
        except Exception as exc:  # NVML absent or broken: no GPU part, said once
            if error_code(exc) is None and not isinstance(exc, OSError):
                raise
            log.debug("energy: NVML not usable (%s); no GPU energy", exc)
        reader.close()

    def sources(self) -> list[SnapshotSource]:
        return [self.source] + ([self.ipmi] if self.ipmi is not None else [])

    # --- one sample (background thread) -------------------------------------------------------------
    def sample(self) -> NodeSample:
        pkg = dram = None
        for z in self.zones:
            total = self.counter.read(z)
            if total is None:
                continue
            if z.name == "package":
                pkg = (pkg or 0.0) + total / 1e6
            else:
                dram = (dram or 0.0) + total / 1e6
        self.meter_watts = None
        if self.meter_source == "hwmon" and self.meter_dir is not None:
            self.meter_watts = read_meter_watts(self.meter_dir)
        elif self.meter_source == "ipmi" and self.ipmi is not None and self.ipmi.value is not None:
            self.meter_watts = self.ipmi.value.watts
        stat = read_text(self.stat_path)
        busy, ncpus = busy_seconds(stat, self.ticks) if stat is not None else (0.0, 0)
        jobs_cpu, jobs_cpus = {}, {}
        for r in self.jobs.read_jobs():
            if r.cpu is not None:
                jobs_cpu[r.jobid] = r.cpu.user + r.cpu.system
            if r.cpus is not None:
                jobs_cpus[r.jobid] = r.cpus
        gpus = self.gpus.read() if self.gpus is not None else []
        return NodeSample(at=self.clock(), cpu_j_total=pkg, dram_j_total=dram, meter_w=self.meter_watts,
                          busy_s_total=busy, ncpus=ncpus, jobs_cpu_s_total=jobs_cpu, jobs_cpus=jobs_cpus, gpus=gpus)

    def refresh(self) -> dict:
        self.totals.feed(self.sample())
        t = self.totals
        return {"jobs": {j: dict(p) for j, p in t.jobs.items()}, "node": dict(t.node),
                "unattributed": dict(t.unattributed), "has": set(t.has), "meter": (self.meter_source, self.meter_watts)}

    # --- scrape path --------------------------------------------------------------------------------
    def collect(self) -> Iterator[Metric]:
        yield from self.job_cap.apply(self._families())

    def _families(self) -> Iterator[Metric]:
        """The last snapshot's families, every job's included."""
        snap = self.source.value
        if snap is None:
            return
        comps = [c for c in ("cpu", "dram", "gpu", "other") if c in snap["has"]]
        fams = {name: spec.new() for name, spec in FAMILIES.items()}
        for jobid, parts in sorted(snap["jobs"].items()):
            for c in comps:
                fams["hpc_job_energy_joules_total"].add_metric([jobid, c], parts[c])
        for c in comps:
            fams["hpc_energy_node_joules_total"].add_metric([c], snap["node"][c])
            fams["hpc_energy_unattributed_joules_total"].add_metric([c], snap["unattributed"][c])
        source, watts = snap["meter"]
        if source and watts is not None:
            fams["hpc_energy_node_power_watts"].add_metric([source], watts)
        yield from fams.values()

    def close(self) -> None:
        self.source.stop()
        if self.ipmi is not None:
            self.ipmi.stop()
        if self.gpus is not None:
            self.gpus.close()
