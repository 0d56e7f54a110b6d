"""The per-job summary: one record per finished job, its fields as a data table and its Parquet schema.

A summary holds facts (what was asked, allocated and used; energy; cost under the price table in force
when it was written); the notes a report gives are derived from it at report time (rules.py), so a
change of thresholds applies to old jobs too. `missing` names the fields no source could fill.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

SCHEMA_VERSION = 1

# Column types by name (schema.py turns them into Arrow types; this module stays import-light so that
# `job report` starts fast). Timestamps are UTC milliseconds (Parquet has no seconds unit).
NODE_FIELDS = (("node", "string"), ("cpus", "int32"), ("cpu_time_s", "float64"), ("mem_peak_bytes", "int64"),
               ("mem_limit_bytes", "int64"), ("energy_j", "float64"))
GPU_FIELDS = (("node", "string"), ("gpu", "string"), ("uuid", "string"), ("model", "string"),
              ("util_mean", "float32"), ("sm_active_mean", "float32"), ("mem_peak_bytes", "int64"),
              ("energy_j", "float64"))
TS = "timestamp"

# name -> (type, what it holds). The order is the column order of the dataset.
FIELDS: dict[str, tuple[str, str]] = {
    "cluster": ("string", "cluster name (Slurm ClusterName)"),
    "jobid": ("string", "job id as users write it: 123, 123_4 for an array task"),
    "job_id_raw": ("int64", "the scheduler's unique numeric id of this record (Slurm JobIDRaw)"),
    "array_job_id": ("string", "array job id of an array task, else empty"),
    "array_task_id": ("string", "array task id of an array task, else empty"),
    "name": ("string", "job name (user data, capped)"),
    "user": ("string", "owner's login name"),
    "account": ("string", "account charged"),
    "partition": ("string", "partition (queue) the job ran in"),
    "qos": ("string", "quality of service"),
    "nodes": ("string", "node list the job ran on (Slurm hostlist expression)"),
    "nnodes": ("int32", "number of nodes allocated"),
    "submit": (TS, "submit time"),
    "eligible": (TS, "time the job became eligible to run"),
    "start": (TS, "start time (null when it never started)"),
    "end": (TS, "end time"),
    "elapsed_s": ("float64", "seconds from start to end"),
    "time_limit_s": ("float64", "time limit in seconds (null: none)"),
    "queue_wait_s": ("float64", "seconds from eligible (or submit) to start"),
    "state": ("string", "scheduler's final state (COMPLETED, TIMEOUT, OUT_OF_MEMORY, ...)"),
    "outcome": ("string", "scheduler-neutral outcome: success, failed, timeout, oom, cancelled, node_fail, ..."),
    "cause": ("string", "who the outcome is down to: user, system or none"),
    "exit_code": ("string", "exit code:signal of the batch script"),
    "cpus_req": ("int32", "CPUs requested"),
    "cpus_alloc": ("int32", "CPUs allocated"),
    "cpu_time_s": ("float64", "CPU time used (user + system), all nodes"),
    "cpu_efficiency": ("float32", "cpu_time_s / (cpus_alloc x elapsed_s), 0..1"),
    "mem_req_bytes": ("int64", "memory requested, all nodes (--mem per node x nodes, or per CPU x CPUs)"),
    "mem_alloc_bytes": ("int64", "memory allocated, all nodes (AllocTRES mem)"),
    "mem_peak_bytes": ("int64", "peak memory used, summed over nodes (source in mem_peak_source)"),
    "mem_peak_source": ("string", "cgroup (the job cgroup's own peak, through Prometheus) or sacct (MaxRSS)"),
    "gpus_alloc": ("int32", "GPUs allocated"),
    "gpu_model": ("string", "GPU model from the allocation (gres/gpu:<model>), empty when untyped"),
    "gpu_util_mean": ("float32", "mean utilisation of the job's GPUs, 0..1"),
    "gpu_sm_active_mean": ("float32", "mean SM active ratio of the job's GPUs (NVML GPM, Hopper and newer), 0..1"),
    "gpu_mem_peak_bytes": ("int64", "highest GPU memory the job held on any one GPU"),
    "energy_j": ("float64", "energy attributed to the job, joules"),
    "energy_cpu_j": ("float64", "of which CPU packages, DRAM and the rest of the node, joules"),
    "energy_gpu_j": ("float64", "of which GPUs, joules"),
    "energy_source": ("string", "hpcwatch (the node agents' attribution) or slurm (ConsumedEnergyRaw)"),
    "fs_read_bytes": ("int64", "bytes read from parallel filesystems (Lustre job_stats)"),
    "fs_write_bytes": ("int64", "bytes written to parallel filesystems (Lustre job_stats)"),
    "cost": ("float64", "total cost under the price table, in `currency`"),
    "cost_cpu": ("float64", "cost of CPU-hours"),
    "cost_mem": ("float64", "cost of memory GB-hours"),
    "cost_gpu": ("float64", "cost of GPU-hours"),
    "cost_energy": ("float64", "cost of the energy (kWh)"),
    "currency": ("string", "currency of the cost columns"),
    "per_node": ("list<node>", "per node of a multi-node job: CPUs, CPU time, memory peak and limit, energy "
                 "(a single-node job's node is the job's own columns)"),
    "per_gpu": ("list<gpu>", "per GPU: utilisation, SM active, memory peak, energy"),
    "missing": ("list<string>", "fields no source could fill, and why"),
    "month": ("string", "YYYY-MM of the end time (UTC): the dataset partition"),
    "written_at": (TS, "when the summary was written"),
    "schema_version": ("int16", "version of this layout"),
}

TIME_FIELDS = frozenset(n for n, (t, _) in FIELDS.items() if t == TS)
KEY = ("cluster", "jobid", "submit")


@dataclasses.dataclass
class NodeUsage:
    """What one node of the job used."""

    node: str
    cpus: int | None = None
    cpu_time_s: float | None = None
    mem_peak_bytes: int | None = None
    mem_limit_bytes: int | None = None
    energy_j: float | None = None


@dataclasses.dataclass
class GpuUsage:
    """What the job did on one GPU (or MIG device)."""

    node: str
    gpu: str
    uuid: str = ""
    model: str = ""
    util_mean: float | None = None
    sm_active_mean: float | None = None
    mem_peak_bytes: int | None = None
    energy_j: float | None = None


@dataclasses.dataclass
class JobSummary:
    """One finished (or, in a report, running) job; None where no source knew the value."""

    cluster: str
    jobid: str
    job_id_raw: int | None = None
    array_job_id: str = ""
    array_task_id: str = ""
    name: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    qos: str = ""
    nodes: str = ""
    nnodes: int | None = None
    submit: float | None = None
    eligible: float | None = None
    start: float | None = None
    end: float | None = None
    elapsed_s: float | None = None
    time_limit_s: float | None = None
    queue_wait_s: float | None = None
    state: str = ""
    outcome: str = ""
    cause: str = ""
    exit_code: str = ""
    cpus_req: int | None = None
    cpus_alloc: int | None = None
    cpu_time_s: float | None = None
    cpu_efficiency: float | None = None
    mem_req_bytes: int | None = None
    mem_alloc_bytes: int | None = None
    mem_peak_bytes: int | None = None
    mem_peak_source: str = ""
    gpus_alloc: int | None = None
    gpu_model: str = ""
    gpu_util_mean: float | None = None
    gpu_sm_active_mean: float | None = None
    gpu_mem_peak_bytes: int | None = None
    energy_j: float | None = None
    energy_cpu_j: float | None = None
    energy_gpu_j: float | None = None
    energy_source: str = ""
    fs_read_bytes: int | None = None
    fs_write_bytes: int | None = None
    cost: float | None = None
    cost_cpu: float | None = None
    cost_mem: float | None = None
    cost_gpu: float | None = None
    cost_energy: float | None = None
    currency: str = ""
    per_node: list[NodeUsage] = dataclasses.field(default_factory=list)
    per_gpu: list[GpuUsage] = dataclasses.field(default_factory=list)
    missing: list[str] = dataclasses.field(default_factory=list)
    month: str = ""
    written_at: float | None = None
    schema_version: int = SCHEMA_VERSION

    @property
    def key(self) -> tuple[str, str, float | None]:
        """The de-duplication key of the dataset: (cluster, job id, submit time)."""
        return (self.cluster, self.jobid, self.submit)

    def note_missing(self, field: str, why: str) -> None:
        entry = f"{field}: {why}"
        if entry not in self.missing:
            self.missing.append(entry)

    def to_row(self) -> dict[str, Any]:
        """A dict in the dataset's layout: times as UTC datetimes, energy in whole joules, and no per_node
        list for a single-node job (its node is the job's own columns: the list would repeat them)."""
        row = dataclasses.asdict(self)
        for name in TIME_FIELDS:
            row[name] = _dt(row[name])
        for name in ("energy_j", "energy_cpu_j", "energy_gpu_j"):
            if row[name] is not None:
                row[name] = float(round(row[name]))
        if len(row["per_node"]) == 1:
            row["per_node"] = []
        return row

    @classmethod
    def from_row(cls, row: dict[str, Any]) -> JobSummary:
        """The inverse of to_row (unknown columns from a newer layout are ignored)."""
        known = {f.name for f in dataclasses.fields(cls)}
        data = {k: v for k, v in row.items() if k in known}
        for name in TIME_FIELDS & data.keys():
            v = data[name]
            data[name] = v.timestamp() if isinstance(v, datetime.datetime) else v
        data["per_node"] = [NodeUsage(**n) for n in data.get("per_node") or []]
        if not data["per_node"] and data.get("start") is not None and data.get("nnodes") == 1:
            data["per_node"] = [NodeUsage(node=data.get("nodes") or "", cpus=data.get("cpus_alloc"),
                                          cpu_time_s=data.get("cpu_time_s"), mem_peak_bytes=data.get("mem_peak_bytes"),
                                          mem_limit_bytes=data.get("mem_alloc_bytes"), energy_j=data.get("energy_j"))]
        data["per_gpu"] = [GpuUsage(**g) for g in data.get("per_gpu") or []]
        data["missing"] = list(data.get("missing") or [])
        for k, f in ((f.name, f) for f in dataclasses.fields(cls)):
            if k in data and data[k] is None and f.default == "":
                data[k] = ""
        return cls(**data)


def _dt(ts: float | None) -> datetime.datetime | None:
    return None if ts is None else datetime.datetime.fromtimestamp(int(ts), datetime.UTC)


def month_of(ts: float | None) -> str:
    """'YYYY-MM' (UTC) of a Unix time; '0000-00' when unknown (never-started, never-ended records)."""
    if ts is None:
        return "0000-00"
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m")

