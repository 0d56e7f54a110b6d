"""The one mapping from scheduler states to the neutral (outcome, cause) pair, per adapter.

`outcome` says how a job ended, `cause` who is to blame: `user` (the job or its owner), `system`
(the cluster: nodes, scheduler, policy, an administrator) or `none` (success, the owner's own
cancel). Both tables are documented in docs/scheduler.md; the SLO history engine, the trace
exporter and the collectors all call these functions, so there is exactly one implementation.
"""

from __future__ import annotations

OUTCOMES = ("success", "failed", "timeout", "oom", "cancelled", "node_fail", "boot_fail", "preempted", "deadline")
CAUSES = ("user", "system", "none")

# Neutral live states for hpc_scheduler_jobs{state}.
JOB_STATES = ("pending", "running", "suspended", "completing")


class UnknownStateError(ValueError):
    """A state string that is not in the adapter's table (the caller counts it as a parse error)."""


# Slurm terminal job states (sacct State column, first word) -> (outcome, cause).
# CANCELLED is refined by who cancelled it (see slurm_outcome).
SLURM_TERMINAL = {
    "COMPLETED": ("success", "none"),
    "FAILED": ("failed", "user"),
    "OUT_OF_MEMORY": ("oom", "user"),
    "TIMEOUT": ("timeout", "user"),
    "CANCELLED": ("cancelled", "none"),
    "NODE_FAIL": ("node_fail", "system"),
    "BOOT_FAIL": ("boot_fail", "system"),
    "PREEMPTED": ("preempted", "system"),
    "DEADLINE": ("deadline", "user"),
    # A job that exited with the special exit code the admin set (RequeueExitHold): the job's own doing.
    "SPECIAL_EXIT": ("failed", "user"),
}

# States that are not a job's end: the job ran again, moved to a sibling cluster, or is still live.
SLURM_NOT_FINISHED = frozenset({
    "PENDING", "RUNNING", "SUSPENDED", "COMPLETING", "CONFIGURING", "REQUEUED", "REQUEUE_HOLD",
    "REQUEUE_FED", "RESIZING", "REVOKED", "SIGNALING", "STAGE_OUT", "STOPPED", "UPDATE_DB", "POWER_UP_NODE",
    "RESV_DEL_HOLD",
})

SLURM_LIVE = {
    "PENDING": "pending", "REQUEUED": "pending", "REQUEUE_HOLD": "pending", "REQUEUE_FED": "pending",
    "RESV_DEL_HOLD": "pending",
    "RUNNING": "running", "CONFIGURING": "running", "RESIZING": "running", "SIGNALING": "running",
    "POWER_UP_NODE": "running",
    "SUSPENDED": "suspended", "STOPPED": "suspended",
    "COMPLETING": "completing", "STAGE_OUT": "completing", "UPDATE_DB": "completing",
}


def slurm_state_word(state: str) -> str:
    """'CANCELLED by 1000' -> 'CANCELLED'; 'completed' -> 'COMPLETED'."""
    return state.strip().split(" ", 1)[0].rstrip("+").upper()


def slurm_cancelled_by(state: str) -> int | None:
    """The uid in 'CANCELLED by 1000', or None."""
    parts = state.split()
    if len(parts) == 3 and parts[1] == "by" and parts[2].isdigit():
        return int(parts[2])
    return None


def slurm_outcome(state: str, exit_code: str = "0:0", uid: int | None = None) -> tuple[str, str] | None:
    """(outcome, cause) of a finished Slurm job, or None when `state` is not an end (REQUEUED, RUNNING...).

    `state` is sacct's State column ('CANCELLED by 1000'), `exit_code` its ExitCode ('N:M'), `uid`
    the job owner's uid: a cancel by the owner is cause none, by anyone else (root, an admin, an
    account coordinator, SlurmUser) cause system. Raises UnknownStateError for states not in the table.
    """
    word = slurm_state_word(state)
    if word in SLURM_NOT_FINISHED:
        return None
    if word not in SLURM_TERMINAL:
        raise UnknownStateError(f"unknown Slurm job state {state[:64]!r}")
    outcome, cause = SLURM_TERMINAL[word]
    if word == "CANCELLED":
        by = slurm_cancelled_by(state)
        if by is not None and uid is not None and by != uid:
            cause = "system"
    elif word == "COMPLETED" and exit_code.strip() not in ("", "0:0"):
        # An allocation that Slurm calls COMPLETED but whose ExitCode is not 0:0 did not succeed.
        outcome, cause = "failed", "user"
    return outcome, cause


def slurm_live_state(state: str) -> str | None:
    """Neutral live state for a squeue state ('PENDING' -> 'pending'); None for ended or unknown states."""
    return SLURM_LIVE.get(slurm_state_word(state))


# Flux (RFC 21): result of an INACTIVE job, refined by its most severe exception when that one is
# fatal (severity 0); a job whose exceptions were all non-fatal and that then ended on its own is
# judged by its result and exit code, like any other. Checked against flux-core 0.88 (see
# docs/scheduler.md for what raises each type).
FLUX_RESULTS = ("COMPLETED", "FAILED", "CANCELED", "TIMEOUT")

FLUX_EXCEPTIONS = {
    "cancel": ("cancelled", "none"),      # flux cancel / flux job cancel (result CANCELED)
    "timeout": ("timeout", "user"),       # the job's own time limit (result TIMEOUT)
    "dependency": ("cancelled", "none"),  # a dependency can never be met (afterok on a failed job): never ran
    "alloc": ("failed", "user"),          # unsatisfiable request: the job asked for what the queue lacks
    "exec": ("failed", "user"),           # the job shell or a task failed to start or run (see _LOST)
    "node-failure": ("node_fail", "system"),  # fatal loss of a node (flux-core raises it non-fatal: see _LOST)
    "preempt": ("preempted", "system"),   # flux-core never raises it: a site plugin or an operator does
    "oom": ("oom", "user"),               # flux-core never raises it (an OOM kill ends a task with SIGKILL,
                                          # exit code 137): only a site plugin that says so
}

FLUX_LIVE = {
    "NEW": "pending", "DEPEND": "pending", "PRIORITY": "pending", "SCHED": "pending",
    "RUN": "running", "CLEANUP": "completing",
}

# Notes on a fatal `exec` exception that mean a node went away under the job, not the job's fault
# (flux-core 0.88 job-exec: "node failure on node3 (rank 3)", "lost contact with job shell").
_LOST = ("lost contact", "node failure", "broker", "lost connection")


def flux_outcome(result: str, exception_type: str = "", exception_note: str = "",
                 returncode: int | None = None, state: str = "INACTIVE",
                 severity: int | None = 0) -> tuple[str, str] | None:
    """(outcome, cause) of a Flux job from `flux jobs --json` fields, or None when it is still active.

    `severity` is that of the exception given (0: fatal); a non-fatal one does not decide the outcome.
    Raises UnknownStateError for a result not in RFC 21's list.
    """
    if state and state.upper() != "INACTIVE":
        return None
    result = (result or "").upper()
    if result not in FLUX_RESULTS:
        raise UnknownStateError(f"unknown Flux job result {result[:64]!r}")
    etype = (exception_type or "").lower() if severity in (0, None) else ""
    if result == "COMPLETED":
        return "success", "none"
    if result == "TIMEOUT":
        return "timeout", "user"
    if etype == "exec" and any(k in (exception_note or "").lower() for k in _LOST):
        return "node_fail", "system"
    if etype in FLUX_EXCEPTIONS:
        return FLUX_EXCEPTIONS[etype]
    if result == "CANCELED":
        return "cancelled", "none"
    if etype:
        # A fatal exception raised by the system we do not know by name: blame the system, not the user.
        return "failed", "system"
    return "failed", "user"


def flux_live_state(state: str) -> str | None:
    return FLUX_LIVE.get((state or "").upper())


def _neutral_pairs() -> tuple[tuple[str, str], ...]:
    """Every (outcome, cause) either adapter can produce; each queue exports all of them from the start."""
    pairs = set(SLURM_TERMINAL.values()) | {("cancelled", "system"), ("failed", "user")}
    pairs |= set(FLUX_EXCEPTIONS.values()) | {("success", "none"), ("timeout", "user"), ("node_fail", "system"),
                                              ("cancelled", "none"), ("failed", "system"), ("failed", "user")}
    return tuple(sorted(pairs))


# Exported as 0 for every known queue before the first such job ends: Prometheus' increase() cannot
# see a series' first sample, so without the zero the first node failure of a fresh agent would
# burn no error budget (VictoriaMetrics would count it: the two engines would disagree).
NEUTRAL_PAIRS = _neutral_pairs()
