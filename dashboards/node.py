"""Node: one compute node's CPU, memory, pressure, disks, network, sensors and the jobs on it."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    HIGH_BAD_RATIO,
    NODE,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    instance_variable,
    row,
    stat,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-node"
RI = "$__rate_interval"


def build() -> Dashboard:
    s = NODE
    mem_used = f"{n.NODE_MEMORY_TOTAL}{{{s}}} - {n.NODE_MEMORY_AVAILABLE}{{{s}}}"
    panels = [
        row("CPU and memory"),
        timeseries("CPU by mode", "Share of all CPUs spent in each mode (idle left out).",
                   [Q(f'avg by (instance, mode) (rate({n.NODE_CPU_SECONDS}{{mode!="idle",{s}}}[{RI}]))',
                      "{{instance}} {{mode}}")], "percentunit", HIGH_BAD_RATIO, 0, 1, stack=True),
        timeseries("Load (1m)", "Run-queue length averaged over one minute.",
                   [Q(f"{n.NODE_LOAD1}{{{s}}}", "{{instance}}")], "short"),
        timeseries("Memory used", "Memory in use (total minus available) against the total.",
                   [Q(mem_used, "{{instance}} used"), Q(f"{n.NODE_MEMORY_TOTAL}{{{s}}}", "{{instance}} total")],
                   "bytes", min_=0),
        timeseries("Pressure stall", "Share of wall time tasks waited for a CPU (some), stalled on memory and "
                   "I/O (full), and CPUs ran only interrupts (irq full, kernel 6.1+), from /proc/pressure.",
                   [Q(f"rate({n.NODE_PRESSURE_CPU_WAITING}{{{s}}}[{RI}])", "{{instance}} cpu some"),
                    Q(f"rate({n.NODE_PRESSURE_MEMORY_STALLED}{{{s}}}[{RI}])", "{{instance}} memory full"),
                    Q(f"rate({n.NODE_PRESSURE_IO_STALLED}{{{s}}}[{RI}])", "{{instance}} io full"),
                    Q(f"rate({n.NODE_PRESSURE_IRQ_STALLED}{{{s}}}[{RI}])", "{{instance}} irq full")],
                   "percentunit", ((None, "green"), (0.1, "orange"), (0.3, "red")), 0, 1),
        stat("OOM kills (1h)", "Processes the kernel killed for lack of memory in the last hour.",
             f"sum(increase({n.NODE_OOM_KILLS}{{{s}}}[1h]))", "none", ANY_BAD),
        stat("Uncorrectable memory errors (24h)", "EDAC uncorrectable errors: the DIMM needs replacing.",
             f"sum(increase({n.NODE_EDAC_UNCORRECTABLE}{{{s}}}[24h]))", "none", ANY_BAD),
        stat("Correctable memory errors (24h)", "EDAC correctable errors; a rising count predicts a failing DIMM.",
             f"sum(increase({n.NODE_EDAC_CORRECTABLE}{{{s}}}[24h]))", "none", ((None, "green"), (100, "orange"))),
        stat("Uptime", "Time since the node booted.",
             f"time() - max({n.NODE_BOOT_TIME}{{{s}}})", "s", ((None, "orange"), (3600, "green"))),
        row("Storage, network and sensors"),
        bargauge("Filesystem used", "Share of each local filesystem in use (size minus available to users).",
                 [Q(f"1 - {n.NODE_FILESYSTEM_AVAIL}{{{s}}} / {n.NODE_FILESYSTEM_SIZE}{{{s}}}",
                    "{{instance}} {{mountpoint}}", instant=True)]),
        timeseries("Disk throughput", "Bytes read and written per second per block device.",
                   [Q(f"rate({n.NODE_DISK_READ}{{{s}}}[{RI}])", "{{instance}} {{device}} read"),
                    Q(f"rate({n.NODE_DISK_WRITTEN}{{{s}}}[{RI}])", "{{instance}} {{device}} write")], "Bps"),
        timeseries("Network throughput", "Bytes received and sent per second per interface.",
                   [Q(f"rate({n.NODE_NETWORK_RECEIVE}{{{s}}}[{RI}])", "{{instance}} {{device}} rx"),
                    Q(f"rate({n.NODE_NETWORK_TRANSMIT}{{{s}}}[{RI}])", "{{instance}} {{device}} tx")], "Bps"),
        timeseries("Temperatures", "hwmon sensor temperatures.",
                   [Q(f"{n.NODE_HWMON_TEMP}{{{s}}}", "{{instance}} {{chip}} {{sensor}}")], "celsius",
                   ((None, "green"), (80, "orange"), (90, "red"))),
        timeseries("Fan speeds", "hwmon fan speeds; a fan at 0 RPM that should turn has failed.",
                   [Q(f"{n.NODE_HWMON_FAN}{{{s}}}", "{{instance}} {{chip}} {{sensor}}")], "rotrpm", min_=0),
        timeseries("Power", "CPU package and DRAM power from the RAPL energy counters, and the node's power as "
                   "the BMC or power supply reports it through hwmon.",
                   [Q(f"rate({n.NODE_RAPL_PACKAGE}{{{s}}}[{RI}])", "{{instance}} package {{index}}"),
                    Q(f"rate({n.NODE_RAPL_DRAM}{{{s}}}[{RI}])", "{{instance}} dram {{index}}"),
                    Q(f"{n.NODE_HWMON_POWER}{{{s}}}", "{{instance}} {{chip}} {{sensor}}")], "watt", min_=0),
        timeseries("Memory used per NUMA node", "Memory in use on each NUMA node (total minus free): a job "
                   "bound to one socket can run out there while the node has memory left.",
                   [Q(f"{n.NODE_NUMA_MEM_TOTAL}{{{s}}} - {n.NODE_NUMA_MEM_FREE}{{{s}}}",
                      "{{node}} NUMA {{numa_node}}")], "bytes", min_=0),
        timeseries("NUMA misses", "Pages allocated on a node other than the one the task wanted, per second.",
                   [Q(f"rate({n.NODE_NUMA_MISS}{{{s}}}[{RI}])", "{{node}} NUMA {{numa_node}}")], "short", min_=0),
        table("Network links", "Each interface: operstate up, link speed, and carrier changes (link flaps) "
              "in the last hour.",
              [Q(f"{n.NODE_NETWORK_UP}{{{s}}}", "up"), Q(f"{n.NODE_NETWORK_SPEED}{{{s}}}", "speed"),
               Q(f"increase({n.NODE_NETWORK_CARRIER_CHANGES}{{{s}}}[1h])", "flaps")], "none",
              hide=("Time", "__name__", "job")),
        table("Textfile metrics", "The *.prom files the textfile collector read, and how long ago each "
              "was written; an old file means its script (prolog, epilog, cron) stopped running.",
              [Q(f"time() - {n.NODE_TEXTFILE_MTIME}{{{s}}}", "age")], "s",
              ((None, "green"), (3600, "orange"), (86400, "red")), hide=("Time", "__name__", "job")),
        row("Jobs and exporter"),
        table("Jobs on this node", "Slurm jobs with a cgroup on the node now.",
              [Q(f"{n.JOB_INFO}{{{s}}}", "")], "none", hide=("Time", "__name__", "Value", "job")),
        table("Collectors", "Each collector's last scrape: success and wall time.",
              [Q(f"{n.COLLECTOR_SUCCESS}{{{s}}}", "success"), Q(f"{n.COLLECTOR_DURATION}{{{s}}}", "seconds")],
              "none", ((None, "red"), (1, "green")), hide=("Time", "__name__", "job")),
    ]
    return Dashboard(UID, "hpcwatch / Node", "One compute node: CPU, memory, pressure, storage, network, "
                     "sensors, its jobs and the exporter's own health.", "node", panels,
                     [cluster_variable(n.NODE_BOOT_TIME), instance_variable(n.NODE_BOOT_TIME, multi=False)],
                     ("node",))
