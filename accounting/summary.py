"""Build a job's summary from what each source knows: the counted finished job (identity, outcome), the
batched sacct detail (asked, allocated, CPU time, MaxRSS) and Prometheus (per node and per GPU usage,
energy, filesystem bytes); then price it. Pure: no I/O, so every combination is unit-tested.

Where two sources measure the same thing, both are lower bounds sampled before the job's end
(sacct's last accounting poll, Prometheus' last scrape), so the larger is kept.
"""

from __future__ import annotations

import time

from hpcwatch.accounting.cost import apply_cost
from hpcwatch.accounting.enrich import Enrichment
from hpcwatch.accounting.prices import PriceTable
from hpcwatch.accounting.record import JobSummary, month_of
from hpcwatch.accounting.sacct import SacctDetail, size_bytes
from hpcwatch.exporters.scheduler.model import FinishedJob
from hpcwatch.exporters.scheduler.outcomes import UnknownStateError, slurm_outcome

NAME_LIMIT = 128
# Energy components the node agents attribute; gpu is counted apart from the rest of the node.
GPU_COMPONENTS = frozenset({"gpu"})

# Fields filled only from Prometheus, and what a record without it says about each.
PROMETHEUS_FIELDS = ("per_node", "per_gpu", "gpu_util_mean", "gpu_sm_active_mean", "gpu_mem_peak_bytes",
                     "energy_j", "fs_read_bytes", "fs_write_bytes")


def build_summary(cluster: str, jobid: str, finished: FinishedJob | None, detail: SacctDetail | None,
                  enrichment: Enrichment | None, prometheus_error: str | None = None,
                  prices: PriceTable | None = None, now: float | None = None) -> JobSummary:
    """One job's summary. `prometheus_error` says why there is no enrichment (None: Prometheus was asked
    and had no series of the job, or was not configured when `enrichment` is None too)."""
    s = JobSummary(cluster=cluster, jobid=jobid)
    if finished is not None:
        _from_finished(s, finished)
    if detail is not None:
        _from_sacct(s, detail)
    elif finished is not None:
        s.note_missing("sacct", "the batched sacct call did not return the job")
    _derive_times(s, now)
    if enrichment is not None and enrichment.seen:
        _from_prometheus(s, enrichment)
        if prometheus_error:
            s.note_missing("prometheus", f"some queries failed, fields may be partial: {prometheus_error}")
    elif s.start is not None:
        why = prometheus_error or "no per-job series in Prometheus"
        for field in PROMETHEUS_FIELDS:
            if field == "energy_j" and s.energy_j is not None:
                continue
            s.note_missing(field, why)
    _derive_usage(s)
    if prices is not None:
        apply_cost(s, prices)
    s.month = month_of(s.end)
    s.written_at = float(int(now if now is not None else time.time()))
    return s


def _from_finished(s: JobSummary, j: FinishedJob) -> None:
    s.jobid, s.user, s.account, s.partition = j.jobid, j.user, j.account, j.queue
    s.submit, s.eligible, s.start, s.end = j.submit, j.eligible, j.start, j.end
    s.outcome, s.cause, s.exit_code, s.nnodes = j.outcome, j.cause, j.exit_code, j.nnodes
    raw = j.key.split("@", 1)[0]
    s.job_id_raw = int(raw) if raw.isdigit() else None
    _array_ids(s)


def _array_ids(s: JobSummary) -> None:
    if "_" in s.jobid:
        s.array_job_id, _, s.array_task_id = s.jobid.partition("_")


def _from_sacct(s: JobSummary, d: SacctDetail) -> None:
    s.jobid = s.jobid or d.jobid
    s.job_id_raw = s.job_id_raw if s.job_id_raw is not None else int(d.jobid_raw)
    s.name = d.name[:NAME_LIMIT]
    s.user = s.user or d.user
    s.account = s.account or d.account
    s.partition = s.partition or d.partition
    s.qos, s.nodes, s.state = d.qos, d.nodelist, d.state
    s.nnodes = d.nnodes if d.nnodes is not None else s.nnodes
    for attr in ("submit", "eligible", "start", "end"):
        if getattr(s, attr) is None:
            setattr(s, attr, getattr(d, attr))
    s.exit_code = s.exit_code or d.exit_code
    if not s.outcome:
        try:
            oc = slurm_outcome(d.state, d.exit_code, d.uid)
        except UnknownStateError:
            oc = None
        if oc is not None:
            s.outcome, s.cause = oc
    s.elapsed_s = d.elapsed_s
    s.time_limit_s = d.time_limit_s
    s.cpus_req, s.cpus_alloc = d.cpus_req, d.cpus_alloc
    s.cpu_time_s = d.total_cpu_s
    s.mem_req_bytes = d.mem_req_bytes
    s.mem_alloc_bytes = size_bytes(d.alloc_tres.get("mem", ""))
    if d.max_rss_bytes:
        s.mem_peak_bytes, s.mem_peak_source = d.max_rss_bytes, "sacct"
    s.gpus_alloc, s.gpu_model = d.gpus_alloc, d.gpu_model
    s.fs_read_bytes, s.fs_write_bytes = d.fs_read_bytes, d.fs_write_bytes
    if d.energy_j is not None:
        s.energy_j, s.energy_source = d.energy_j, "slurm"
    _array_ids(s)


def _derive_times(s: JobSummary, now: float | None) -> None:
    if s.elapsed_s is None and s.start is not None:
        end = s.end if s.end is not None else (now if now is not None else time.time())
        s.elapsed_s = max(0.0, end - s.start)
    begin = s.eligible if s.eligible is not None else s.submit
    if s.start is not None and begin is not None:
        s.queue_wait_s = max(0.0, s.start - begin)


def _from_prometheus(s: JobSummary, e: Enrichment) -> None:
    s.per_node = sorted(e.nodes.values(), key=lambda n: n.node)
    s.per_gpu = sorted(e.gpus.values(), key=lambda g: (g.node, g.gpu))
    cpu = [n.cpu_time_s for n in s.per_node if n.cpu_time_s is not None]
    if cpu:
        s.cpu_time_s = max(sum(cpu), s.cpu_time_s or 0.0)
    peaks = [n.mem_peak_bytes for n in s.per_node if n.mem_peak_bytes is not None]
    if peaks:
        s.mem_peak_bytes, s.mem_peak_source = sum(peaks), "cgroup"
    if e.energy:
        s.energy_j = sum(e.energy.values())
        s.energy_gpu_j = sum(v for c, v in e.energy.items() if c in GPU_COMPONENTS)
        s.energy_cpu_j = s.energy_j - s.energy_gpu_j
        s.energy_source = "hpcwatch"
    elif s.energy_j is None:
        s.note_missing("energy_j", "no energy attributed (no RAPL, power meter or GPU energy on the nodes)")
    if e.fs_read_bytes is not None or e.fs_write_bytes is not None:
        s.fs_read_bytes, s.fs_write_bytes = e.fs_read_bytes or 0, e.fs_write_bytes or 0
    gpu_fields = (("gpu_util_mean", "util_mean"), ("gpu_sm_active_mean", "sm_active_mean"))
    for field, attr in gpu_fields:
        vals = [getattr(g, attr) for g in s.per_gpu if getattr(g, attr) is not None]
        if vals:
            setattr(s, field, sum(vals) / len(vals))
        elif s.gpus_alloc:
            s.note_missing(field, "no GPU series of the job in Prometheus")
    mems = [g.mem_peak_bytes for g in s.per_gpu if g.mem_peak_bytes is not None]
    if mems:
        s.gpu_mem_peak_bytes = max(mems)


def _derive_usage(s: JobSummary) -> None:
    if s.cpu_time_s is not None and s.cpus_alloc and s.elapsed_s:
        s.cpu_efficiency = min(1.0, s.cpu_time_s / (s.cpus_alloc * s.elapsed_s))
    if s.mem_peak_bytes is None:
        s.note_missing("mem_peak_bytes", "neither sacct (MaxRSS) nor Prometheus (cgroup peak) had it")
    if s.cpu_time_s is None:
        s.note_missing("cpu_time_s", "neither sacct (TotalCPU) nor Prometheus had it")
