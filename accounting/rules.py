"""The notes a job report gives its owner: one table of rules, each a threshold and what to change.

A rule looks at a summary (finished or running job) and returns a note or None. Thresholds live in
the table, so what triggers a note and what it says are read in one place; the per-job dashboard
shows the same rules for running jobs from their PromQL form (dashboards/job.py).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable

from hpcwatch.accounting.record import JobSummary

MiB = 1 << 20


@dataclasses.dataclass(frozen=True)
class Note:
    rule: str
    severity: str   # "warning" (change something), "info" (nothing to change)
    text: str


def fmt_bytes(n: float | None) -> str:
    if n is None:
        return "?"
    for unit, size in (("TiB", 1 << 40), ("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{int(n)} B"


def fmt_duration(seconds: float | None) -> str:
    """Slurm's [D-]HH:MM:SS."""
    if seconds is None:
        return "?"
    s = int(round(seconds))
    d, s = divmod(s, 86400)
    h, s = divmod(s, 3600)
    m, s = divmod(s, 60)
    return (f"{d}-" if d else "") + f"{h:02d}:{m:02d}:{s:02d}"


def mem_suggestion(peak: float) -> str:
    """--mem for a peak: 20% headroom, rounded up to 256 MiB (1 GiB above 8 GiB)."""
    want = peak * 1.2
    step = (1 << 30) if want > 8 * (1 << 30) else 256 * MiB
    n = max(step, math.ceil(want / step) * step)
    return f"{n // (1 << 30)}G" if n % (1 << 30) == 0 else f"{n // MiB}M"


def time_suggestion(elapsed: float) -> str:
    """--time for an elapsed time: twice it, at least 10 minutes, rounded up to 5 minutes."""
    minutes = max(10, math.ceil(2 * elapsed / 300) * 5)
    return fmt_duration(minutes * 60)


# -- the rules -------------------------------------------------------------------------------------

MEM_OVERASK = 4.0       # memory asked >= this many times the peak
CPU_LOW = 0.5           # CPU efficiency below this
GPU_IDLE = 0.05         # a GPU whose mean utilisation is below this is idle
TIME_OVERASK = 5.0      # time limit >= this many times the elapsed time
MIN_ELAPSED_S = 0.0     # efficiency notes for jobs that ran at least this long


def mem_overask(s: JobSummary) -> Note | None:
    if s.outcome == "oom" or not s.mem_req_bytes or not s.mem_peak_bytes:
        return None
    ratio = s.mem_req_bytes / s.mem_peak_bytes
    if ratio < MEM_OVERASK:
        return None
    per_node = s.mem_peak_bytes / max(1, s.nnodes or 1)
    return Note("mem_overask", "warning",
                f"Memory: asked for {fmt_bytes(s.mem_req_bytes)}, peak {fmt_bytes(s.mem_peak_bytes)} "
                f"({ratio:.1f}x). Ask for --mem={mem_suggestion(per_node)} (per node) next time: jobs that ask for "
                "less start sooner and leave memory for others.")


def cpu_low(s: JobSummary) -> Note | None:
    if s.cpu_efficiency is None or s.cpu_efficiency >= CPU_LOW or (s.elapsed_s or 0) < MIN_ELAPSED_S:
        return None
    used = (s.cpu_time_s or 0) / s.elapsed_s if s.elapsed_s else 0.0
    return Note("cpu_low", "warning",
                f"CPU efficiency {s.cpu_efficiency:.0%}: of {s.cpus_alloc} CPUs the job used {used:.1f} on "
                f"average. Ask for {max(1, math.ceil(used))} CPU(s), or check that the program runs in "
                "parallel (threads, MPI ranks) as you meant it to.")


def gpu_idle(s: JobSummary) -> Note | None:
    if not s.gpus_alloc:
        return None
    idle = [g for g in s.per_gpu if g.util_mean is not None and g.util_mean < GPU_IDLE]
    unseen = max(0, s.gpus_alloc - len(s.per_gpu)) if s.per_gpu else 0
    if not idle and not unseen:
        return None
    names = ", ".join(f"{g.node}:{g.gpu} ({g.util_mean:.0%})" for g in idle)
    return Note("gpu_idle", "warning",
                f"GPUs idle: {len(idle) + unseen} of {s.gpus_alloc} allocated GPUs did (almost) no work"
                + (f" [{names}]" if names else "") + ". Ask for fewer GPUs (--gpus), or check that the "
                "program sees and uses all of them.")


def time_overask(s: JobSummary) -> Note | None:
    if s.outcome != "success" or not s.time_limit_s or not s.elapsed_s:
        return None
    ratio = s.time_limit_s / s.elapsed_s
    if ratio < TIME_OVERASK:
        return None
    return Note("time_overask", "warning",
                f"Time: limit {fmt_duration(s.time_limit_s)}, ran {fmt_duration(s.elapsed_s)} ({ratio:.0f}x). "
                f"Ask for --time={time_suggestion(s.elapsed_s)}: shorter limits let the scheduler backfill "
                "the job sooner.")


def oom(s: JobSummary) -> Note | None:
    if s.outcome != "oom":
        return None
    limit = s.mem_alloc_bytes or s.mem_req_bytes
    peak = s.mem_peak_bytes
    ask = mem_suggestion(max(peak or 0, limit or 0) * 1.5 / max(1, s.nnodes or 1)) if (peak or limit) else "more"
    return Note("oom", "warning",
                f"Out of memory: peak {fmt_bytes(peak)} against a limit of {fmt_bytes(limit)}; the kernel "
                f"killed the job's processes. Ask for --mem={ask} (per node), or use less memory per task.")


def node_fail(s: JobSummary) -> Note | None:
    if s.outcome not in ("node_fail", "boot_fail"):
        return None
    return Note("node_fail", "info",
                f"Node failure ({s.state or s.outcome}) on {s.nodes or 'its node'}: not your fault. Resubmit or "
                "requeue it (`scontrol requeue " + s.jobid + "`); submit with --requeue to have Slurm do it.")


# Order is the order notes are printed in.
RULES: tuple[tuple[str, Callable[[JobSummary], Note | None]], ...] = (
    ("node_fail", node_fail),
    ("oom", oom),
    ("mem_overask", mem_overask),
    ("cpu_low", cpu_low),
    ("gpu_idle", gpu_idle),
    ("time_overask", time_overask),
)


def notes(s: JobSummary) -> list[Note]:
    """Every note the rule table gives for the job, in table order."""
    out = []
    for _, rule in RULES:
        note = rule(s)
        if note is not None:
            out.append(note)
    return out
