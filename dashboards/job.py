"""Job: one Slurm job in depth — identity, CPU, memory against its limit, GPU utilisation and SM active,
filesystem I/O, energy, and the notes `hpcwatch job report` would give it now.

The link `hpcwatch job report` prints opens this dashboard on the job's cluster, id and run time.
Notes are the report's rule table (accounting/rules.py) in PromQL, thresholds included, for the
rules Prometheus can judge while a job runs; the finished job's report adds those that need its end
(time limit, outcome).
"""

from __future__ import annotations

from hpcwatch.accounting import rules
from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    CLUSTER,
    LOW_BAD_RATIO,
    Dashboard,
    Q,
    cluster_variable,
    query_variable,
    row,
    stat,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-job"
RI = "$__rate_interval"
J = f'{CLUSTER},jobid=~"$jobid"'  # one job; =~ so a job id list or All works too


def _per_gpu(metric: str) -> str:
    return f"{n.GPU_JOB_INFO}{{{J}}} * on (instance, uuid) group_left {metric}"


def note_query() -> str:
    """One series per note that fires now, its text in the `note` label (one query: `or` of the rules)."""
    cpu_eff = (f"sum by (jobid) (rate({n.JOB_CPU_SECONDS}{{{J}}}[$__range])) / "
               f"sum by (jobid) (avg_over_time({n.JOB_CPUS}{{{J}}}[$__range]))")
    mem_ratio = (f"sum by (jobid) (max_over_time({n.JOB_MEMORY_LIMIT}{{{J}}}[$__range])) / "
                 f"sum by (jobid) (max_over_time({n.JOB_MEMORY_MAX_USAGE}{{{J}}}[$__range]))")
    gpu_util = f"avg by (jobid, gpu) (avg_over_time(({_per_gpu(n.GPU_UTILIZATION)})[$__range:]))"
    oom = f"sum by (jobid) (max_over_time({n.JOB_OOM_KILLS}{{{J}}}[$__range]))"
    live = (
        ("oom", f"{oom} > 0", "Out of memory: the kernel killed processes of the job; ask for more --mem"),
        ("mem_overask", f"{mem_ratio} >= {rules.MEM_OVERASK:g}",
         f"Memory: the limit is at least {rules.MEM_OVERASK:g}x the peak; ask for less --mem"),
        ("cpu_low", f"{cpu_eff} < {rules.CPU_LOW:g}",
         f"CPU efficiency below {rules.CPU_LOW:.0%}: ask for fewer CPUs or check the job runs in parallel"),
        ("gpu_idle", f"{gpu_util} < {rules.GPU_IDLE:g}",
         f"GPU idle (utilisation below {rules.GPU_IDLE:.0%}): ask for fewer GPUs"),
    )
    return " or ".join(f'label_replace({expr}, "note", "{text}", "", "")' for _, expr, text in live)


def build() -> Dashboard:
    cpu_eff = (f"sum by (jobid) (rate({n.JOB_CPU_SECONDS}{{{J}}}[{RI}])) / sum by (jobid) ({n.JOB_CPUS}{{{J}}})")
    panels = [
        table("Identity", "Who runs the job and where: one row per node (hpc_job_info), with the GPUs it holds.",
              [Q(f"{n.JOB_INFO}{{{J}}}", "")], "none", hide=("Time", "__name__", "Value", "job"), h=5),
        table("Notes", "What to change, from the job report's rule table applied to the job's data in the "
              "dashboard's time range (`hpcwatch job report` adds the notes that need the job's end).",
              [Q(note_query(), "")], "none", hide=("Time", "__name__", "Value", "job"), h=5),
        row("CPU"),
        timeseries("CPU efficiency", "CPU seconds used per second over the CPUs the job holds: well below 1 means "
                   "allocated cores sit idle.", [Q(cpu_eff, "efficiency")], "percentunit", LOW_BAD_RATIO, 0),
        timeseries("CPUs used and allocated per node", "CPU seconds per second the job used on each node, "
                   "against the CPUs it holds there.",
                   [Q(f"sum by (instance) (rate({n.JOB_CPU_SECONDS}{{{J}}}[{RI}]))", "{{instance}} used"),
                    Q(f"sum by (instance) ({n.JOB_CPUS}{{{J}}})", "{{instance}} allocated")], "none", min_=0),
        row("Memory"),
        timeseries("Memory against limit", "Memory in use, its peak and the cgroup limit, per node: at the limit "
                   "the kernel reclaims or OOM-kills.",
                   [Q(f"sum by (instance) ({n.JOB_MEMORY_USAGE}{{{J}}})", "{{instance}} used"),
                    Q(f"sum by (instance) ({n.JOB_MEMORY_MAX_USAGE}{{{J}}})", "{{instance}} peak"),
                    Q(f"sum by (instance) ({n.JOB_MEMORY_LIMIT}{{{J}}})", "{{instance}} limit")], "bytes", min_=0),
        timeseries("OOM kills", "Processes of the job the kernel's OOM killer ended.",
                   [Q(f"sum by (instance) ({n.JOB_OOM_KILLS}{{{J}}})", "{{instance}}")], "none", ANY_BAD, 0),
        row("GPUs"),
        timeseries("GPU utilisation", "Fraction of time a kernel ran, per GPU the job holds.",
                   [Q(f"max by (instance, gpu) ({_per_gpu(n.GPU_UTILIZATION)})",
                      "{{instance}} GPU {{gpu}}")], "percentunit", LOW_BAD_RATIO, 0, 1),
        timeseries("GPU SM active", "Fraction of time SMs had work resident (NVML GPM, Hopper and newer): "
                   "utilisation counts any kernel, SM active counts how much of the GPU it filled.",
                   [Q(f"max by (instance, gpu) ({_per_gpu(n.GPU_SM_ACTIVE)})", "{{instance}} GPU {{gpu}} SM active"),
                    Q(f"max by (instance, gpu) ({_per_gpu(n.GPU_TENSOR_ACTIVE)})",
                      "{{instance}} GPU {{gpu}} tensor active")], "percentunit", LOW_BAD_RATIO, 0, 1),
        timeseries("GPU memory used", "GPU memory the job's processes hold, per GPU.",
                   [Q(f"sum by (instance, gpu) ({n.GPU_JOB_MEMORY_USED}{{{J}}})", "{{instance}} GPU {{gpu}}")],
                   "bytes", min_=0),
        row("Filesystem I/O"),
        timeseries("Lustre throughput", "Bytes per second the job read and wrote on Lustre (server job_stats).",
                   [Q(f"sum by (operation) (rate({n.LUSTRE_JOB_BYTES}{{{J}}}[{RI}]))", "{{operation}}")], "Bps"),
        row("Energy"),
        timeseries("Power by component", "Watts attributed to the job: CPU packages and DRAM by its share of "
                   "CPU time, GPUs by the GPUs it holds (MIG by SM share), the rest of a metered node by CPU share.",
                   [Q(f"sum by (component) (rate({n.JOB_ENERGY}{{{J}}}[{RI}]))", "{{component}}")], "watt",
                   min_=0, stack=True),
        stat("Energy so far", "Joules attributed to the job over the dashboard's time range, all nodes.",
             Q(f"sum(max_over_time({n.JOB_ENERGY}{{{J}}}[$__range]))", instant=True), "joule"),
    ]
    jobid = query_variable("jobid", "Job", f"label_values({n.JOB_INFO}{{{CLUSTER}}}, jobid)", multi=False,
                           include_all=False)
    return Dashboard(UID, "hpcwatch / Job", "One Slurm job: identity, CPU, memory against its limit, GPUs (SM "
                     "active), filesystem I/O, energy and the notes of `hpcwatch job report`.", "job", panels,
                     [cluster_variable(n.JOB_INFO), jobid], ("jobs",), time_from="now-1h")
