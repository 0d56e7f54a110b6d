"""What only Prometheus knows of finished jobs, read in bounded batches: per node CPU, memory peak and
limit, energy; per GPU utilisation, SM active and memory; parallel-filesystem bytes.

Jobs are grouped into batches of similar length (sorted by elapsed time); each batch costs one
instant query per row of QUERIES, evaluated at the batch's last end over a window reaching back to
its first start, selecting the batch's jobs with one `jobid=~"1|2|3"` matcher. Per-job series exist
only while the job runs, so a wider window than a job's own adds nothing of other jobs. Every query
has a timeout; a failed query leaves its fields missing (and says why) instead of failing the batch.
Job ids are checked to be digits (and `_` for array tasks) before they go into PromQL.
"""

from __future__ import annotations

import dataclasses
import math
import re
from collections.abc import Callable, Iterable, Sequence

from hpcwatch.accounting.record import GpuUsage, NodeUsage
from hpcwatch.slo.history.prom import PrometheusClient, PrometheusError

SAFE_JOBID = re.compile(r"^\d{1,20}(?:_\d{1,10})?$")
# Node agents' series carry no `cluster` label unless the deployment adds one; match both.
BY_NODE = "jobid, instance, node"
BY_GPU = "jobid, instance, node, gpu, uuid"


@dataclasses.dataclass(frozen=True)
class JobWindow:
    """A job to enrich: its id and when it ran (Unix seconds)."""

    jobid: str
    start: float
    end: float


@dataclasses.dataclass
class Enrichment:
    """What Prometheus said about one job; `errors` holds why a query gave nothing."""

    nodes: dict[tuple[str, str], NodeUsage] = dataclasses.field(default_factory=dict)
    gpus: dict[tuple[str, str, str], GpuUsage] = dataclasses.field(default_factory=dict)
    energy: dict[str, float] = dataclasses.field(default_factory=dict)  # component -> joules, all nodes
    fs_read_bytes: int | None = None
    fs_write_bytes: int | None = None
    seen: bool = False  # any per-job series at all

    def node(self, labels: dict[str, str]) -> NodeUsage:
        key = (labels.get("instance", ""), labels.get("node", ""))
        n = self.nodes.get(key)
        if n is None:
            n = self.nodes[key] = NodeUsage(node=key[1] or key[0])
        return n

    def gpu(self, labels: dict[str, str]) -> GpuUsage:
        key = (labels.get("instance", ""), labels.get("gpu", ""), labels.get("uuid", ""))
        g = self.gpus.get(key)
        if g is None:
            g = self.gpus[key] = GpuUsage(node=labels.get("node") or key[0], gpu=key[1], uuid=key[2])
        return g


Apply = Callable[[Enrichment, dict[str, str], float], None]


def _set(attr: str, cast: Callable[[float], object] = float) -> Apply:
    def apply(e: Enrichment, labels: dict[str, str], v: float) -> None:
        setattr(e.node(labels), attr, cast(v))
    return apply


def _gpu(attr: str, cast: Callable[[float], object] = float) -> Apply:
    def apply(e: Enrichment, labels: dict[str, str], v: float) -> None:
        g = e.gpu(labels)
        setattr(g, attr, cast(v))
        if labels.get("name"):
            g.model = labels["name"]
    return apply


def _energy(e: Enrichment, labels: dict[str, str], v: float) -> None:
    component = labels.get("component", "")
    e.energy[component] = e.energy.get(component, 0.0) + v
    n = e.node(labels)
    n.energy_j = (n.energy_j or 0.0) + v


def _fs(e: Enrichment, labels: dict[str, str], v: float) -> None:
    op = labels.get("operation")
    if op == "read":
        e.fs_read_bytes = (e.fs_read_bytes or 0) + int(v)
    elif op == "write":
        e.fs_write_bytes = (e.fs_write_bytes or 0) + int(v)


# (name, PromQL with {sel} the job selector, {w} the window and {step} the subquery step, how a sample
# lands in the job's Enrichment). Counters of a job start at 0 with the job, so their highest value
# in the window is what the job used.
QUERIES: tuple[tuple[str, str, Apply], ...] = (
    ("cpu_time", f"sum by ({BY_NODE}) (max_over_time(hpc_job_cpu_seconds_total{{sel}}[{{w}}]))",
     _set("cpu_time_s")),
    ("cpus", f"max by ({BY_NODE}) (max_over_time(hpc_job_cpus{{sel}}[{{w}}]))", _set("cpus", int)),
    # The cgroup's own peak where the kernel keeps one, else the highest usage seen.
    ("mem_peak", f"max by ({BY_NODE}) (max_over_time(hpc_job_memory_max_usage_bytes{{sel}}[{{w}}]) "
     f"or max_over_time(hpc_job_memory_usage_bytes{{sel}}[{{w}}]))", _set("mem_peak_bytes", int)),
    ("mem_limit", f"max by ({BY_NODE}) (max_over_time(hpc_job_memory_limit_bytes{{sel}}[{{w}}]))",
     _set("mem_limit_bytes", int)),
    ("energy", f"max by ({BY_NODE}, component) (max_over_time(hpc_job_energy_joules_total{{sel}}[{{w}}]))",
     _energy),
    ("gpu_util", "avg_over_time((hpc_gpu_job_info{sel} * on (instance, uuid) group_left(name) hpc_gpu_info "
     "* on (instance, uuid) group_left hpc_gpu_utilization_ratio)[{w}:{step}])", _gpu("util_mean")),
    ("gpu_sm_active", "avg_over_time((hpc_gpu_job_info{sel} * on (instance, uuid) group_left "
     "hpc_gpu_sm_active_ratio)[{w}:{step}])", _gpu("sm_active_mean")),
    ("gpu_mem_peak", f"max by ({BY_GPU}) (max_over_time(hpc_gpu_job_memory_used_bytes{{sel}}[{{w}}]))",
     _gpu("mem_peak_bytes", int)),
    ("fs_bytes", "sum by (jobid, operation) (max_over_time(hpc_lustre_job_bytes_total{sel}[{w}]))", _fs),
)


def prom_duration(seconds: float) -> str:
    return f"{max(1, math.ceil(seconds))}s"


def batches(jobs: Sequence[JobWindow], size: int) -> list[list[JobWindow]]:
    """Jobs of similar length together, `size` at most per batch, so each batch's window fits its jobs."""
    ordered = sorted(jobs, key=lambda j: (j.end - j.start, j.end))
    return [ordered[i:i + size] for i in range(0, len(ordered), size)]


def batch_queries(batch: Sequence[JobWindow], cluster: str) -> tuple[float, list[tuple[str, str, Apply]]]:
    """(evaluation time, [(name, PromQL, apply)]) for one batch; raises ValueError on an unsafe job id."""
    bad = [j.jobid for j in batch if not SAFE_JOBID.match(j.jobid)]
    if bad:
        raise ValueError(f"job ids not safe for PromQL: {bad[:5]}")
    if not re.fullmatch(r"[A-Za-z0-9_.-]*", cluster):
        raise ValueError(f"cluster name {cluster!r} is not safe for PromQL")
    at = max(j.end for j in batch)
    window = at - min(j.start for j in batch) + 1
    step = min(60.0, max(1.0, window / 300))
    body = f'jobid=~"{"|".join(sorted({j.jobid for j in batch}))}",cluster=~"{cluster}|"'
    out = []
    for name, template, apply in QUERIES:
        q = template.replace("{sel}", "{" + body + "}")
        out.append((name, q.replace("{w}", prom_duration(window)).replace("{step}", prom_duration(step)), apply))
    return at, out


def apply_results(result: Iterable[dict], apply: Apply, found: dict[str, Enrichment]) -> None:
    """Fold one query's result vector into the per-job enrichments (NaN samples are skipped)."""
    for sample in result:
        labels = sample.get("metric", {})
        jobid = labels.get("jobid")
        try:
            value = float(sample["value"][1])
        except (KeyError, IndexError, TypeError, ValueError):
            continue
        if jobid is None or math.isnan(value):
            continue
        e = found.setdefault(jobid, Enrichment())
        e.seen = True
        apply(e, labels, value)


def enrich(client: PrometheusClient, jobs: Sequence[JobWindow], cluster: str, batch_size: int = 100
           ) -> tuple[dict[str, Enrichment], list[str]]:
    """({jobid: what Prometheus knows}, errors). Jobs Prometheus has no series of are absent."""
    found: dict[str, Enrichment] = {}
    errors: list[str] = []
    for batch in batches([j for j in jobs if j.end >= j.start], batch_size):
        at, queries = batch_queries(batch, cluster)
        for name, query, apply in queries:
            try:
                apply_results(client.query(query, at), apply, found)
            except PrometheusError as exc:
                errors.append(f"{name}: {exc}")
                if "HTTP" not in str(exc):   # unreachable or timed out: the other queries will be too
                    return found, errors
    return found, errors
