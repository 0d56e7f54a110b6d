"""Jobs: per Slurm job, CPU efficiency, memory against its limit, GPU use and filesystem I/O."""

from __future__ import annotations

from hpcwatch.dashboards.helpers import (
    ANY_BAD,
    CLUSTER,
    HIGH_BAD_RATIO,
    LOW_BAD_RATIO,
    NEUTRAL,
    Dashboard,
    Q,
    bargauge,
    cluster_variable,
    query_variable,
    row,
    table,
    timeseries,
)

from hpcwatch import metric_names as n

UID = "hpcwatch-jobs"
RI = "$__rate_interval"
J = f'{CLUSTER},jobid=~"$jobid"'


def gpu_join(metric: str) -> str:
    """A per-GPU series attributed to jobs through hpc_gpu_job_info (a GPU may serve several jobs)."""
    return f"{n.GPU_JOB_INFO}{{{J}}} * on (instance, uuid) group_left {metric}{{{CLUSTER}}}"


def build() -> Dashboard:
    cpu_eff = (f"sum by (jobid) (rate({n.JOB_CPU_SECONDS}{{{J}}}[{RI}])) / "
               f"sum by (jobid) ({n.JOB_CPUS}{{{J}}})")
    mem_ratio = f"sum by (jobid) ({n.JOB_MEMORY_USAGE}{{{J}}}) / sum by (jobid) ({n.JOB_MEMORY_LIMIT}{{{J}}})"
    # One account per job: where only some of its nodes know it (prolog file), theirs; `unknown` where none does.
    jobs_by_account = (f'count by (account) (group by (cluster, jobid, account) ({n.JOB_INFO}{{{J},account!=""}}) '
                       f'or on (cluster, jobid) label_replace(group by (cluster, jobid, account) '
                       f'({n.JOB_INFO}{{{J},account=""}}), "account", "unknown", "account", ""))')
    cpus_by_account = (f"sum by (account) ({n.JOB_CPUS}{{{J}}} * on (cluster, instance, jobid) group_left (account) "
                       f"{n.JOB_INFO}{{{J}}})")
    panels = [
        table("Jobs", "Identity of the selected jobs on the nodes that run them: owner, and the account and "
              "partition the Slurm prolog recorded (empty where deploy/slurm/prolog.d is not installed).",
              [Q(f"{n.JOB_INFO}{{{J}}}", "")], "none", hide=("Time", "__name__", "Value", "job")),
        bargauge("Jobs by account", "Selected jobs running now per Slurm account (`unknown`: no node of the job "
                 "has the prolog's record).", [Q(jobs_by_account, "{{account}}", instant=True)], "none",
                 NEUTRAL, 0, None),
        timeseries("CPUs held by account", "CPUs allocated to the selected jobs, summed per Slurm account.",
                   [Q(cpus_by_account, "{{account}}")], "none", min_=0, stack=True),
        row("CPU and memory"),
        timeseries("CPU efficiency", "CPU seconds used per second, divided by the CPUs the job holds: "
                   "well below 1 means allocated cores sit idle.", [Q(cpu_eff, "{{jobid}}")],
                   "percentunit", LOW_BAD_RATIO, 0),
        bargauge("CPU efficiency now", "Current CPU efficiency per job.", [Q(cpu_eff, "{{jobid}}", instant=True)],
                 thresholds=LOW_BAD_RATIO),
        timeseries("Memory against limit", "Memory in use as a share of the job's cgroup limit; at 1 the "
                   "kernel reclaims or OOM-kills.", [Q(mem_ratio, "{{jobid}}")], "percentunit", HIGH_BAD_RATIO, 0),
        timeseries("Memory used and limit", "Job memory in use, its peak and its limit, summed over nodes.",
                   [Q(f"sum by (jobid) ({n.JOB_MEMORY_USAGE}{{{J}}})", "{{jobid}} used"),
                    Q(f"sum by (jobid) ({n.JOB_MEMORY_MAX_USAGE}{{{J}}})", "{{jobid}} peak"),
                    Q(f"sum by (jobid) ({n.JOB_MEMORY_LIMIT}{{{J}}})", "{{jobid}} limit")], "bytes", min_=0),
        timeseries("OOM events", "Times the job's cgroup hit its memory limit and the OOM killer ran.",
                   [Q(f"sum by (jobid) (increase({n.JOB_OOM_EVENTS}{{{J}}}[{RI}]))", "{{jobid}}")], "none",
                   ANY_BAD, 0),
        timeseries("Tasks", "Processes and threads in the job's cgroup.",
                   [Q(f"sum by (jobid) ({n.JOB_TASKS}{{{J}}})", "{{jobid}}")], "none", min_=0),
        row("GPUs"),
        timeseries("GPU utilisation", "Mean utilisation of the GPUs each job uses.",
                   [Q(f"avg by (jobid) ({gpu_join(n.GPU_UTILIZATION)})", "{{jobid}}")], "percentunit",
                   LOW_BAD_RATIO, 0, 1),
        timeseries("GPU memory used", "GPU memory held by each job's processes.",
                   [Q(f"sum by (jobid) ({n.GPU_JOB_MEMORY_USED}{{{J}}})", "{{jobid}}")], "bytes", min_=0),
        row("Filesystem I/O"),
        timeseries("Lustre throughput", "Bytes per second the job read and wrote on Lustre (server job_stats).",
                   [Q(f"sum by (jobid, operation) (rate({n.LUSTRE_JOB_BYTES}{{{J}}}[{RI}]))",
                      "{{jobid}} {{operation}}")], "Bps"),
        timeseries("Lustre metadata operations", "Metadata operations per second the job made on the MDTs.",
                   [Q(f'sum by (jobid, operation) '
                      f'(rate({n.LUSTRE_JOB_OPS}{{operation!~"{n.LUSTRE_DATA_OPS}",{J}}}[{RI}]))',
                      "{{jobid}} {{operation}}")], "ops"),
    ]
    jobid = query_variable("jobid", "Job", f'label_values({n.JOB_INFO}{{{CLUSTER}}}, jobid)')
    return Dashboard(UID, "hpcwatch / Jobs", "Per Slurm job: CPU efficiency, memory against the cgroup limit, "
                     "GPU use and filesystem I/O.", "jobs", panels, [cluster_variable(n.JOB_INFO), jobid], ("jobs",))
