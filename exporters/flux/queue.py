"""The live Flux queue in neutral terms: jobs by state, the wait of eligible pending jobs, capacity.

Every state of every configured queue is present, 0 when empty, so a state that empties drops to 0
instead of its series vanishing (a vanished series reads as "no data", not as "none left").
"""

from __future__ import annotations

from hpcwatch.exporters import labels
from hpcwatch.exporters.flux.parse import FluxJob
from hpcwatch.exporters.flux.resources import Capacity
from hpcwatch.exporters.scheduler.model import Histogram, QueueSnapshot, run_key
from hpcwatch.exporters.scheduler.outcomes import JOB_STATES, flux_live_state

PENDING_STATES = ("DEPEND", "PRIORITY", "SCHED")


def build_flux_queue(cluster: str, jobs: list[FluxJob], cap: Capacity, queues: list[str], now: float,
                     buckets: tuple[float, ...], released: dict[str, float] | None = None
                     ) -> tuple[QueueSnapshot, dict[tuple[str, str], int], list[tuple[str, str, float, float]]]:
    """Live jobs and capacity -> (snapshot, pending jobs by (queue, Flux state), running runs as
    (run key, queue, start, queue wait)).

    Held jobs (urgency 0) count as pending but not in the pending wait: their wait has not begun.
    `released`: job id -> when its hold was released; the wait runs from then, not from t_sched.
    """
    released = released or {}
    snap = QueueSnapshot(cluster=cluster)
    pending: dict[tuple[str, str], int] = {}
    running: list[tuple[str, str, float, float]] = []
    for q in queues:
        q = labels.value(q)
        snap.pending_wait[q] = Histogram(buckets)     # no pending job: count 0, not no series
        for state in JOB_STATES:
            snap.jobs[(q, state)] = 0
        for state in PENDING_STATES:
            pending[(q, state)] = 0
    for j in jobs:
        state = flux_live_state(j.state)
        if state is None:
            continue
        q = labels.value(j.queue)
        snap.add_job(q, state)
        eligible = j.eligible_at(released.get(j.id))
        if state == "pending":
            pending[(q, j.state)] = pending.get((q, j.state), 0) + 1
            if j.state == "SCHED" and not j.held and eligible is not None and eligible <= now:
                hist = snap.pending_wait.setdefault(q, Histogram(buckets))
                hist.observe(now - eligible)
        elif j.t_run is not None and eligible is not None:
            running.append((run_key(j.id, j.t_submit, j.t_run), q, j.t_run, max(0.0, j.t_run - eligible)))
    for name, data in (("nodes", cap.nodes), ("cpus", cap.cpus), ("gpus", cap.gpus)):
        target = getattr(snap, name)
        for (queue, state), n in data.items():
            key = (labels.value(queue), state)
            target[key] = target.get(key, 0) + n
    return snap, pending, running
