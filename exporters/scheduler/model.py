"""Neutral records every scheduler adapter produces: finished jobs, the live queue, capacity."""

from __future__ import annotations

import bisect
import dataclasses

# Queue-wait buckets, seconds: 1 minute to 2 days (SLO objectives sit on these edges).
DEFAULT_WAIT_BUCKETS = (60.0, 300.0, 600.0, 1800.0, 3600.0, 7200.0, 14400.0, 28800.0, 43200.0, 86400.0,
                        172800.0)
# Turnaround buckets (submit to end of a successful run), seconds: 10 minutes to a week; time-to-result
# objectives sit on these edges.
DEFAULT_TURNAROUND_BUCKETS = (600.0, 1800.0, 3600.0, 7200.0, 10800.0, 21600.0, 43200.0, 86400.0, 172800.0,
                              604800.0)

@dataclasses.dataclass(frozen=True)
class FinishedJob:
    """One run of a job that reached a terminal state, in scheduler-neutral terms.

    `key` identifies the run (job id + submit + start), so a requeued job's runs stay distinct;
    `count` is more than 1 only for a never-started array record that stands for many tasks.
    Times are Unix seconds or None when the scheduler does not know them.
    """

    jobid: str
    cluster: str
    queue: str
    outcome: str
    cause: str
    submit: float | None
    eligible: float | None
    start: float | None
    end: float | None
    exit_code: str
    user: str
    account: str
    nnodes: int
    key: str
    count: int = 1

    @property
    def queue_wait(self) -> float | None:
        """start - eligible (eligible falls back to submit), None when the job never started."""
        begin = self.eligible if self.eligible is not None else self.submit
        if self.start is None or begin is None:
            return None
        return max(0.0, self.start - begin)


def run_key(jobid: str, submit: float | None, start: float | None) -> str:
    """The identity of one run of a job: a requeue gives the same job id a new start (and submit)."""
    def part(t: float | None) -> str:
        return "-" if t is None else str(int(t))
    return f"{jobid}@{part(submit)}@{part(start)}"


class Histogram:
    """Cumulative bucket counts with a sum, as Prometheus exposes them (buckets exclude +Inf)."""

    __slots__ = ("counts", "edges", "sum", "total")

    def __init__(self, edges: tuple[float, ...]) -> None:
        self.edges = edges
        self.counts = [0] * len(edges)   # per-bucket (non-cumulative) counts
        self.total = 0
        self.sum = 0.0

    def observe(self, value: float, weight: int = 1) -> None:
        i = bisect.bisect_left(self.edges, value)
        if i < len(self.edges):
            self.counts[i] += weight
        self.total += weight
        self.sum += value * weight

    def cumulative(self) -> list[tuple[str, float]]:
        """[(le, cumulative count)] including '+Inf'."""
        out, running = [], 0
        for edge, n in zip(self.edges, self.counts):
            running += n
            out.append((_fmt_le(edge), running))
        out.append(("+Inf", self.total))
        return out

    def to_dict(self) -> dict:
        return {"edges": list(self.edges), "counts": list(self.counts), "total": self.total, "sum": self.sum}

    @classmethod
    def from_dict(cls, data: dict, edges: tuple[float, ...]) -> Histogram:
        """Restore counts; when the configured edges changed, re-bin conservatively into the new edges."""
        h = cls(edges)
        old_edges = tuple(float(e) for e in data.get("edges", ()))
        old_counts = [int(c) for c in data.get("counts", ())]
        h.total = int(data.get("total", 0))
        h.sum = float(data.get("sum", 0.0))
        if old_edges == edges and len(old_counts) == len(edges):
            h.counts = old_counts
        else:
            # Each old bucket's count goes to the first new bucket that contains its upper edge.
            for edge, n in zip(old_edges, old_counts):
                i = bisect.bisect_left(edges, edge)
                if i < len(edges):
                    h.counts[i] += n
        return h


def _fmt_le(edge: float) -> str:
    return str(int(edge)) + ".0" if edge == int(edge) else repr(edge)


@dataclasses.dataclass(frozen=True)
class MaintenanceWindow:
    """A maintenance window the scheduler knows of (a Slurm MAINT reservation), current or coming."""

    name: str
    start: float | None
    end: float | None
    nodes: tuple[str, ...]

    def active(self, now: float) -> bool:
        return (self.start is None or self.start <= now) and (self.end is None or now < self.end)


@dataclasses.dataclass
class QueueSnapshot:
    """What one refresh saw of the live queue and the cluster's capacity (neutral terms).

    `maintenance` holds the nodes under maintenance now, node -> (source, window name): source
    `reservation` (in an active maintenance window) or `drain` (drained or down with a reason that says
    maintenance); such a node counts under node state `maint`, whatever else it is."""

    cluster: str
    jobs: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)        # (queue, state)
    pending_wait: dict[str, Histogram] = dataclasses.field(default_factory=dict)       # queue -> waits
    nodes: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)       # (queue, state)
    cpus: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    gpus: dict[tuple[str, str], int] = dataclasses.field(default_factory=dict)
    maintenance: dict[str, tuple[str, str]] = dataclasses.field(default_factory=dict)
    windows: list[MaintenanceWindow] = dataclasses.field(default_factory=list)

    def add_job(self, queue: str, state: str, n: int = 1) -> None:
        self.jobs[(queue, state)] = self.jobs.get((queue, state), 0) + n
