"""Pure parsers for Flux job output: `flux jobs --json` and `flux job eventlog -f json` (capacity: resources.py).

Tested on output captured from flux-core 0.88 built from source (tests/fixtures/flux); parsers raise
only FluxParseError.
"""

from __future__ import annotations

import dataclasses
import json

from hpcwatch.exporters import labels
from hpcwatch.exporters.flux.resources import DEFAULT_QUEUE
from hpcwatch.exporters.scheduler.model import FinishedJob, run_key
from hpcwatch.exporters.scheduler.outcomes import UnknownStateError, flux_outcome


class FluxParseError(ValueError):
    """Flux output that cannot be read at all."""


@dataclasses.dataclass(frozen=True, slots=True)
class FluxJob:
    """One job of `flux jobs --json` (the fields this adapter reads)."""

    id: str
    user: str
    queue: str
    state: str
    result: str
    returncode: int | None
    exception_type: str
    exception_note: str
    exception_severity: int | None     # the most severe (lowest) of the job's exceptions; 0 is fatal
    urgency: int | None                # 0: held by its owner or an operator (not eligible to start)
    t_submit: float | None
    t_depend: float | None
    t_sched: float | None
    t_run: float | None
    t_inactive: float | None
    nnodes: int

    @property
    def held(self) -> bool:
        """Pending with urgency 0: held, so not waiting for resources (its wait has not begun)."""
        return self.urgency == 0 and self.t_run is None and self.state != "INACTIVE"

    def eligible_at(self, released: float | None = None) -> float | None:
        """When the job became schedulable: entered SCHED (dependencies met, priority set), or the
        moment a hold on it was released (`released`, from its eventlog), whichever is later."""
        for t in (self.t_sched, self.t_depend, self.t_submit):
            if t is not None:
                return max(t, released) if released is not None else t
        return released

    @property
    def eligible(self) -> float | None:
        return self.eligible_at()


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        return None
    return float(v)


def _int(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.lstrip("-").isascii() and v.lstrip("-").isdigit():
        return int(v)
    return None


def _str(v: object) -> str:
    return v if isinstance(v, str) else ("" if v is None else str(v))


def parse_flux_jobs(text: str) -> tuple[list[FluxJob], int]:
    """`flux jobs --json` ({"jobs": [...]}, a bare list, one object, or JSON lines) -> (jobs, skipped)."""
    docs: list[object] = []
    try:
        docs = [json.loads(text)] if text.strip() else []
    except ValueError:
        for line in text.splitlines():
            if line.strip():
                try:
                    docs.append(json.loads(line))
                except ValueError as exc:
                    raise FluxParseError(f"flux jobs output is not JSON: {exc}") from exc
    items: list[object] = []
    for doc in docs:
        if isinstance(doc, dict) and isinstance(doc.get("jobs"), list):
            items.extend(doc["jobs"])
        elif isinstance(doc, list):
            items.extend(doc)
        elif isinstance(doc, dict):
            items.append(doc)
        else:
            raise FluxParseError("flux jobs output is neither an object nor a list")
    jobs, skipped = [], 0
    for it in items:
        if not isinstance(it, dict) or _int(it.get("id")) is None or not isinstance(it.get("state"), str):
            skipped += 1
            continue
        exc = it.get("exception") if isinstance(it.get("exception"), dict) else {}
        occurred = exc.get("occurred") is True
        jobs.append(FluxJob(
            id=str(_int(it.get("id"))), user=_str(it.get("username") or it.get("userid")),
            queue=_str(it.get("queue")) or DEFAULT_QUEUE, state=it["state"].upper(),
            result=_str(it.get("result")).upper(), returncode=_int(it.get("returncode")),
            exception_type=_str(exc.get("type")) if occurred else "",
            exception_note=_str(exc.get("note")) if occurred else "",
            # an exception printed without a severity is taken as fatal (the reading that blames no exit code)
            exception_severity=(_int(exc.get("severity")) if exc.get("severity") is not None else 0)
            if occurred else None,
            urgency=_int(it.get("urgency")),
            t_submit=_num(it.get("t_submit")), t_depend=_num(it.get("t_depend")), t_sched=_num(it.get("t_sched")),
            t_run=_num(it.get("t_run")), t_inactive=_num(it.get("t_inactive")), nnodes=_int(it.get("nnodes")) or 0,
        ))
    return jobs, skipped


def flux_to_finished(jobs: list[FluxJob], cluster: str,
                     released: dict[str, float] | None = None) -> tuple[list[FinishedJob], int]:
    """Inactive Flux jobs -> neutral FinishedJob runs (active ones dropped) -> (runs, unknown results).

    `released`: job id -> when a hold on it was released (see release_time), so time held by its
    owner does not count as queue wait.
    """
    released = released or {}
    runs, unknown = [], 0
    for j in jobs:
        try:
            oc = flux_outcome(j.result, j.exception_type, j.exception_note, j.returncode, j.state,
                              severity=j.exception_severity)
        except UnknownStateError:
            unknown += 1
            continue
        if oc is None:
            continue
        runs.append(FinishedJob(
            jobid=j.id, cluster=cluster, queue=labels.value(j.queue), outcome=oc[0], cause=oc[1], submit=j.t_submit,
            eligible=j.eligible_at(released.get(j.id)), start=j.t_run, end=j.t_inactive,
            exit_code="" if j.returncode is None else str(j.returncode), user=j.user, account="",
            nnodes=j.nnodes, key=run_key(j.id, j.t_submit, j.t_run)))
    return runs, unknown


def release_time(text: str) -> float | None:
    """`flux job eventlog -f json ID` -> when the job's last hold was released (urgency 0 -> more), or None.

    The urgency is set at submit (`--urgency=hold` is 0) and by `urgency` events (`flux job urgency`).
    """
    urgency: int | None = None
    released: float | None = None
    for line in text.splitlines():
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError as exc:
            raise FluxParseError(f"flux job eventlog: line is not JSON: {exc}") from None
        if not isinstance(event, dict) or event.get("name") not in ("submit", "urgency"):
            continue
        context = event.get("context") if isinstance(event.get("context"), dict) else {}
        new = _int(context.get("urgency"))
        stamp = _num(event.get("timestamp"))
        if new is None:
            continue
        if urgency == 0 and new > 0 and stamp is not None:
            released = stamp
        urgency = new
    return released
