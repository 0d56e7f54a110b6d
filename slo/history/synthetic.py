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
