"""Synthetic job histories for tests, benchmarks and demos: sacct-like records with incidents, vectorised.

`synthetic_jobs(n, start, days)` -> a frame with sacct columns (JobID, Partition, State, ExitCode,
UID, Submit, Eligible, Start, End as Unix seconds); `incidents` raise the node-failure rate or the
queue wait for a while, so alerts have something to fire on.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from hpcwatch.exporters.slurm.parse import format_time


@dataclasses.dataclass(frozen=True)
class Incident:
    """Between offset_s and offset_s + duration_s after the start: this share of jobs end NODE_FAIL and
    waits are multiplied by wait_factor."""

    offset_s: float
    duration_s: float
    node_fail: float = 0.0
    wait_factor: float = 1.0


STATES = np.array(["COMPLETED", "FAILED", "TIMEOUT", "OUT_OF_MEMORY", "CANCELLED by {uid}", "CANCELLED by 0",
                   "NODE_FAIL", "PREEMPTED"], dtype=object)
WEIGHTS = np.array([0.9055, 0.04, 0.015, 0.01, 0.025, 0.0015, 0.0015, 0.0015])


def synthetic_jobs(n: int, start: float, days: float, seed: int = 7, cluster: str = "alpha",
                   queues: tuple[str, ...] = ("batch", "gpu"), incidents: tuple[Incident, ...] = (),
                   mean_wait_s: float = 900.0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    span = days * 86400
    end = np.sort(start + rng.random(n) * span)
    runtime = rng.exponential(3600, n) + 30
    wait = rng.exponential(mean_wait_s, n)
    state_idx = rng.choice(len(STATES), n, p=WEIGHTS / WEIGHTS.sum())
    for inc in incidents:
        inside = (end >= start + inc.offset_s) & (end < start + inc.offset_s + inc.duration_s)
        hit = inside & (rng.random(n) < inc.node_fail)
        state_idx[hit] = 6
        wait[inside] *= inc.wait_factor
    job_start = end - runtime
    submit = job_start - wait
    submit = submit.copy()
    uid = rng.integers(1000, 1100, n)
    states = STATES[state_idx].astype(str)
    own = state_idx == 4
    states[own] = np.char.add("CANCELLED by ", uid[own].astype(str))
    # A user's cancel while pending: the job never started.
    never = own & (rng.random(n) < 0.5)
    job_start[never] = np.nan
    submit[never] = end[never] - wait[never]
    exit_code = np.where(state_idx == 0, "0:0", np.where(state_idx == 1, "1:0", "0:15"))
    return pd.DataFrame({
        "JobID": np.arange(1, n + 1, dtype="int64") + 100000, "Cluster": cluster,
        "Partition": np.asarray(queues, dtype=object)[rng.integers(0, len(queues), n)],
        "State": states, "ExitCode": exit_code, "UID": uid, "Submit": submit, "Eligible": submit,
        "Start": job_start, "End": end,
    })


def _t(x: float) -> str:
    return "None" if np.isnan(x) else format_time(x)


def to_sacct(df: pd.DataFrame) -> str:
    """`sacct --parsable2` text with a header (times as SLURM_TIME_FORMAT=standard, UTC)."""
    cols = ["JobID", "JobIDRaw", "Cluster", "Partition", "State", "ExitCode", "Submit", "Eligible", "Start", "End",
            "User", "UID", "Account", "NNodes"]
    lines = ["|".join(cols)]
    for r in df.itertuples(index=False):
        lines.append("|".join([str(r.JobID), str(r.JobID), r.Cluster, r.Partition, r.State, r.ExitCode,
                               _t(r.Submit), _t(r.Eligible), _t(r.Start), _t(r.End), f"u{r.UID}", str(r.UID),
                               "acct", "1"]))
    return "\n".join(lines) + "\n"


# The history `hpcwatch slo report --synthetic` replays: two months, so a 30-day budget has a full
# period after its warm-up; a node-failure incident inside the warm-up and a worse one (failures and
# long waits) after it, so pages, tickets and the budget all have something to show.
SAMPLE_DAYS = 60
SAMPLE_JOBS_PER_QUEUE_DAY = 400
SAMPLE_MEAN_WAIT_S = 480.0   # about one job in 2,000 waits more than an hour outside the incident
SAMPLE_INCIDENTS = (Incident(12 * 86400 + 3 * 3600, 4 * 3600, node_fail=0.3),
                    Incident(41 * 86400 + 9 * 3600, 6 * 3600, node_fail=0.15, wait_factor=8.0))


def spec_scopes(slos, default_cluster: str) -> dict[str, tuple[str, ...]]:
    """{cluster: queues} the SLOs select with `=` (or a plain `=~"a|b"`) on cluster and queue."""
    from hpcwatch.slo.history.query import UnsupportedQuery, parse_sli_query
    from hpcwatch.slo.model import EventsSLI

    def literal(m) -> list[str]:
        if m.op == "=":
            return [m.value]
        if m.op == "=~" and all(p and p.replace("-", "").replace("_", "").replace(".", "").isalnum()
                                for p in m.value.split("|")):
            return m.value.split("|")
        return []

    scopes: dict[str, set[str]] = {}
    for slo in slos:
        if not isinstance(slo.sli, EventsSLI):
            continue
        try:
            terms = parse_sli_query(slo.sli.total_query).terms
        except UnsupportedQuery:
            continue
        for term, _ in terms:
            clusters = [v for m in term.matchers if m.label == "cluster" for v in literal(m)] or [default_cluster]
            queues = [v for m in term.matchers if m.label == "queue" for v in literal(m)]
            for c in clusters:
                scopes.setdefault(c, set()).update(queues)
    return {c: tuple(sorted(q)) or ("batch", "gpu") for c, q in sorted(scopes.items())} or \
        {default_cluster: ("batch", "gpu")}


def sample_records(slos, start: float, end: float, default_cluster: str, seed: int = 7):
    """Seeded synthetic job records covering [start, end] for every cluster and queue the SLOs name."""
    from hpcwatch.slo.history.records import InputReport, concat
    from hpcwatch.slo.history.table import records_from_table

    days = max(1.0, (end - start) / 86400)
    parts = []
    for i, (cluster, queues) in enumerate(spec_scopes(slos, default_cluster).items()):
        n = int(SAMPLE_JOBS_PER_QUEUE_DAY * len(queues) * days)
        incidents = tuple(inc for inc in SAMPLE_INCIDENTS if inc.offset_s < end - start)
        df = synthetic_jobs(n, start, days, seed=seed + i, cluster=cluster, queues=queues, incidents=incidents,
                            mean_wait_s=SAMPLE_MEAN_WAIT_S)
        parts.append(records_from_table(df, InputReport(f"synthetic ({cluster})", "synthetic"), cluster))
    return concat(parts, f"--synthetic: {days:g} days, seed {seed}", "synthetic")
