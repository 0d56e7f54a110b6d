"""GPU fleet: utilisation, memory, power, temperature, throttling, XID and ECC errors, row remapping."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    HIGH_BAD_RATIO,
    NODE,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    down_count,
    heatmap,
    instance_variable,
    row,
    stat,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-gpu"
RI = "$__rate_interval"
HOT = ((None, "green"), (80, "orange"), (87, "red"))


def build() -> Dashboard:
    s = NODE
    panels = [
        row("Fleet"),
        stat("GPUs", "GPUs the node agents report.", f"count({n.GPU_INFO}{{{s}}})", "none"),
        stat("GPUs lost", "GPUs that fell off the bus or stopped answering NVML.",
             down_count(f"{n.GPU_UP}{{{s}}}"), "none", ANY_BAD),
        stat("Mean utilisation", "Mean GPU utilisation over the selected GPUs.",
             f"avg({n.GPU_UTILIZATION}{{{s}}})", "percentunit", ((None, "orange"), (0.3, "green"))),
        stat("Power draw", "Power drawn by the selected GPUs.", f"sum({n.GPU_POWER}{{{s}}})", "watt"),
        heatmap("Utilisation spread", "How many GPUs sit at each utilisation level over time (Grafana "
                "buckets the per-GPU series).", f"{n.GPU_UTILIZATION}{{{s}}}", unit="percentunit", calculate=True),
        timeseries("Utilisation", "GPU (SM) utilisation per GPU.",
                   [Q(f"{n.GPU_UTILIZATION}{{{s}}}", "{{instance}} gpu{{gpu}}")], "percentunit", min_=0, max_=1),
        row("Memory, power and temperature"),
        timeseries("Memory used", "Framebuffer memory in use as a share of the total.",
                   [Q(f"{n.GPU_MEMORY_USED}{{{s}}} / {n.GPU_MEMORY_TOTAL}{{{s}}}", "{{instance}} gpu{{gpu}}")],
                   "percentunit", HIGH_BAD_RATIO, 0, 1),
        timeseries("Power", "Power drawn per GPU.", [Q(f"{n.GPU_POWER}{{{s}}}", "{{instance}} gpu{{gpu}}")],
                   "watt", min_=0),
        timeseries("Temperature", "GPU core temperature; most datacentre GPUs slow down near 85-90 °C.",
                   [Q(f"{n.GPU_TEMPERATURE}{{{s}}}", "{{instance}} gpu{{gpu}}")], "celsius", HOT),
        timeseries("Energy", "Energy used per GPU, as average power over the interval.",
                   [Q(f"rate({n.GPU_ENERGY}{{{s}}}[{RI}])", "{{instance}} gpu{{gpu}}")], "watt", min_=0),
        row("Throttling and errors"),
        timeseries("Clock event reasons", "GPUs held below their clocks, by reason (thermal, power, ...).",
                   [Q(f"sum by (reason) ({n.GPU_CLOCK_EVENT}{{{s}}})", "{{reason}}")], "none", ANY_BAD, 0,
                   stack=True),
        table("XID errors (range)", "XID errors each GPU reported over the dashboard's time range; "
              "48, 63, 64, 74, 79, 92, 94, 95 need action (see the GPU runbooks).",
              [Q(f"sum by (instance, gpu, xid) (increase({n.GPU_XID_ERRORS}{{{s}}}[$__range])) > 0", "errors")],
              "none", ANY_BAD, hide=("Time",), w=12),
        table("ECC errors (range)", "Corrected and uncorrected ECC errors per GPU over the time range.",
              [Q(f"max by (instance, gpu, type) (increase({n.GPU_ECC_ERRORS}{{{s}}}[$__range])) > 0", "errors")],
              "none", ANY_BAD, hide=("Time",), w=12),
        bargauge("Remapped rows pending or failed", "Rows waiting for a GPU reset to remap (pending) or that "
                 "could not be remapped (failure): drain the node.",
                 [Q(f'{n.GPU_REMAPPED_ROWS}{{state=~"pending|failure",{s}}}', "{{instance}} gpu{{gpu}} {{state}}",
                    instant=True)], "none", ANY_BAD, 0, None, w=24, h=6),
    ]
    return Dashboard(UID, "hpcwatch / GPU fleet", "Every GPU: utilisation, memory, power, temperature, "
                     "throttling, XID and ECC errors, row remapping.", "gpu", panels,
                     [cluster_variable(n.GPU_INFO), instance_variable(n.GPU_INFO)], ("gpu",))
