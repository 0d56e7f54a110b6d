"""Pure parsers for Flux command output: `flux jobs --json` and `flux resource list -o <RESOURCE_FORMAT>`.

Flux is not packaged for Debian 12, so these are tested on fixtures written in the documented formats
(flux-jobs(1) field list, flux-resource(1) OUTPUT FORMAT); parsers raise only FluxParseError.
"""

from __future__ import annotations

import dataclasses
import json

from hpcwatch.exporters.scheduler.model import FinishedJob, run_key
from hpcwatch.exporters.scheduler.outcomes import UnknownStateError, flux_outcome

RESOURCE_FORMAT = "{state}|{queue}|{nnodes}|{ncores}|{ngpus}"
DEFAULT_QUEUE = "default"   # Flux instances without named queues


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
    t_submit: float | None
    t_depend: float | None
    t_sched: float | None
    t_run: float | None
    t_inactive: float | None
    nnodes: int

    @property
    def eligible(self) -> float | None:
        """When the job became schedulable: entered SCHED (dependencies met, priority set)."""
        for t in (self.t_sched, self.t_depend, self.t_submit):
            if t is not None:
                return t
        return None


def _num(v: object) -> float | None:
    if isinstance(v, bool) or not isinstance(v, (int, float)) or v <= 0:
        return None
    return float(v)


def _int(v: object) -> int | None:
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and v.lstrip("-").isdigit():
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
            t_submit=_num(it.get("t_submit")), t_depend=_num(it.get("t_depend")), t_sched=_num(it.get("t_sched")),
            t_run=_num(it.get("t_run")), t_inactive=_num(it.get("t_inactive")), nnodes=_int(it.get("nnodes")) or 0,
        ))
    return jobs, skipped


def flux_to_finished(jobs: list[FluxJob], cluster: str) -> tuple[list[FinishedJob], int]:
    """Inactive Flux jobs -> neutral FinishedJob runs (active ones dropped) -> (runs, unknown results)."""
    runs, unknown = [], 0
    for j in jobs:
        try:
            oc = flux_outcome(j.result, j.exception_type, j.exception_note, j.returncode, j.state)
        except UnknownStateError:
            unknown += 1
            continue
        if oc is None:
            continue
        runs.append(FinishedJob(
            jobid=j.id, cluster=cluster, queue=j.queue, outcome=oc[0], cause=oc[1], submit=j.t_submit,
            eligible=j.eligible, start=j.t_run, end=j.t_inactive,
            exit_code="" if j.returncode is None else str(j.returncode), user=j.user, account="",
            nnodes=j.nnodes, key=run_key(j.id, j.t_submit, j.t_run)))
    return runs, unknown


@dataclasses.dataclass(frozen=True, slots=True)
class FluxResources:
    """One line of `flux resource list`: resources in a state (free, allocated, down) for a queue set."""

    state: str
    queues: tuple[str, ...]
    nnodes: int
    ncores: int
    ngpus: int


def parse_resource_list(text: str) -> tuple[list[FluxResources], int]:
    """Lines of `flux resource list -n -o RESOURCE_FORMAT` -> (rows, lines skipped)."""
    out, skipped = [], 0
    for line in text.splitlines():
        if not line.strip():
            continue
        p = line.split("|")
        if len(p) != 5 or not all(x.strip().isdigit() for x in p[2:]):
            skipped += 1
            continue
        queues = tuple(q for q in p[1].strip().split(",") if q) or (DEFAULT_QUEUE,)
        out.append(FluxResources(state=p[0].strip(), queues=queues, nnodes=int(p[2]), ncores=int(p[3]),
                                 ngpus=int(p[4])))
    return out, skipped
