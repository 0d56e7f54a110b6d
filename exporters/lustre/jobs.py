"""Turn job_stats records into bounded per-job series: split job_id into jobid/uid/host, merge
duplicates, keep the top N jobs by bytes and by metadata operations, sum the rest into one remainder.
"""

from __future__ import annotations

import dataclasses
import heapq
import re
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from hpcwatch.exporters import labels
from hpcwatch.exporters.lustre.jobstats import JobStatsRecord, RawCounter, RawJobStats
from hpcwatch.exporters.lustre.stats import fold_counters

REMAINDER_JOBID = labels.OTHER

# Lustre jobid_name codes (lctl set_param jobid_name=...): what each becomes in the split.
_CODES = {
    "j": ("jobid", r".+?"),
    "e": ("exe", r".+?"),
    "u": ("uid", r"\d+"),
    "g": ("gid", r"\d+"),
    "h": ("host", r".+?"),
    "H": ("host", r".+?"),
    "p": ("pid", r"\d+"),
}
# Counters that move data; every other counter is a metadata operation for ranking.
DATA_OPS = frozenset({"read", "write", "read_bytes", "write_bytes"})


class JobIdFormatError(ValueError):
    """A jobid format that is not a Lustre jobid_name pattern."""


class JobKey(NamedTuple):
    """A job's labels. A tuple: hashed and ordered in C, and its order is the cap's tie-break."""

    jobid: str
    uid: str
    host: str


REMAINDER_KEY = JobKey(REMAINDER_JOBID, "", "")


class JobIdFormat:
    """Splits job_ids by one or more jobid_name patterns, tried in order, e.g. "%j:%u:%H,%e.%u".

    A pattern's %j (or, without %j, %e: Lustre's procname_uid fallback) becomes `jobid`; %u `uid`;
    %h/%H `host`. A job_id no pattern matches is kept whole as `jobid`.
    """

    def __init__(self, spec: str) -> None:
        self.spec = spec
        self.patterns = [self._compile(p) for p in (s.strip() for s in spec.split(",")) if p]

    @staticmethod
    def _compile(fmt: str) -> re.Pattern[str]:
        out, seen, i = [], set(), 0
        while i < len(fmt):
            c = fmt[i]
            if c != "%":
                out.append(re.escape(c))
                i += 1
                continue
            if i + 1 >= len(fmt):
                raise JobIdFormatError(f"jobid format {fmt!r} ends with a lone %")
            code = fmt[i + 1]
            if code == "%":
                out.append("%")
            elif code in _CODES:
                group, rx = _CODES[code]
                if group in seen:
                    out.append(rf"(?:{rx})")
                else:
                    seen.add(group)
                    out.append(rf"(?P<{group}>{rx})")
            else:
                raise JobIdFormatError(f"jobid format {fmt!r}: unknown code %{code}")
            i += 2
        return re.compile("".join(out), re.DOTALL)

    def split(self, job_id: str) -> JobKey:
        for pat in self.patterns:
            m = pat.fullmatch(job_id)
            if m is None:
                continue
            g = m.groupdict()
            jobid = g.get("jobid") or g.get("exe") or job_id
            return JobKey(labels.value(jobid), labels.value(g.get("uid") or ""), labels.value(g.get("host") or ""))
        return JobKey(labels.value(job_id), "", "")


@dataclasses.dataclass(slots=True)
class JobTotals:
    """A job's counters on one target: operations (samples), bytes and time by operation name."""

    ops: dict[str, int] = dataclasses.field(default_factory=dict)
    bytes: dict[str, int] = dataclasses.field(default_factory=dict)
    seconds: dict[str, float] = dataclasses.field(default_factory=dict)

    def add_record(self, rec: JobStatsRecord) -> None:
        fold_counters(rec.counters, self.ops, self.bytes, self.seconds)

    def add(self, other: JobTotals) -> None:
        for mine, theirs in ((self.ops, other.ops), (self.bytes, other.bytes), (self.seconds, other.seconds)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0) + v

    @property
    def total_bytes(self) -> int:
        return sum(self.bytes.values())

    @property
    def metadata_ops(self) -> int:
        return sum(v for k, v in self.ops.items() if k not in DATA_OPS)


@dataclasses.dataclass
class TargetJobs:
    """The bounded per-job view of one target: kept jobs plus the remainder of all others."""

    target: str
    jobs: dict[JobKey, JobTotals]
    remainder: JobTotals | None
    total_jobs: int


@dataclasses.dataclass(slots=True)
class JobEntry:
    """A job's ranking scores and its raw counters (one tuple per record), folded only once ranked."""

    total_bytes: int = 0
    metadata_ops: int = 0
    records: list[Sequence[RawCounter]] = dataclasses.field(default_factory=list)

    def add(self, counters: Sequence[RawCounter]) -> None:
        for name, samples, unit, total in counters:
            if unit == "bytes":
                self.total_bytes += total
            elif name not in DATA_OPS:
                self.metadata_ops += samples
        self.records.append(counters)


def aggregate_jobs(records: Iterable[JobStatsRecord], fmt: JobIdFormat,
                   top_bytes: int, top_metadata: int) -> list[TargetJobs]:
    """Group records by target, merge those whose split keys collide, and cap each target's jobs."""
    return aggregate_raw(((r.target, r.job_id, r.counters) for r in records), fmt, top_bytes, top_metadata)


def aggregate_raw(records: Iterable[RawJobStats], fmt: JobIdFormat,
                  top_bytes: int, top_metadata: int) -> list[TargetJobs]:
    """aggregate_jobs over (target, job_id, counters) tuples, as `iter_job_stats` yields them."""
    per_target: dict[str, dict[JobKey, JobEntry]] = {}
    split_cache: dict[str, JobKey] = {}
    split = fmt.split
    data_ops = DATA_OPS
    cur_target, jobs = None, {}
    for target, job_id, counters in records:
        if target != cur_target:
            cur_target = target
            jobs = per_target.setdefault(target, {})
        key = split_cache.get(job_id)
        if key is None:
            key = split(job_id)
            if len(split_cache) < 200_000:
                split_cache[job_id] = key
        entry = jobs.get(key)
        if entry is None:
            entry = jobs[key] = JobEntry()
        # JobEntry.add, inlined: this loop runs once per record on an OSS with tens of thousands of jobs.
        nbytes = nmeta = 0
        for name, samples, unit, total in counters:
            if unit == "bytes":
                nbytes += total
            elif name not in data_ops:
                nmeta += samples
        entry.total_bytes += nbytes
        entry.metadata_ops += nmeta
        entry.records.append(counters)
    return [cap_jobs(t, jobs, top_bytes, top_metadata) for t, jobs in sorted(per_target.items())]


def _top(scored: list[tuple[int, JobKey]], n: int) -> list[JobKey]:
    """Keys of the n highest scores, ties broken by the smaller key (what a full sort would keep)."""
    if n <= 0:
        return []
    if len(scored) <= n:
        return [k for _, k in scored]
    threshold = heapq.nlargest(n, [s for s, _ in scored])[-1]
    above = [k for s, k in scored if s > threshold]
    ties = sorted(k for s, k in scored if s == threshold)
    return above + ties[:n - len(above)]


def cap_jobs(target: str, jobs: dict[JobKey, JobEntry], top_bytes: int, top_metadata: int) -> TargetJobs:
    """Keep the union of the top N by bytes and top N by metadata ops; sum everything else."""
    # Ties broken by key so the kept set is stable between scrapes.
    keep: set[JobKey] = set()
    if top_bytes > 0:
        keep.update(_top([(e.total_bytes, k) for k, e in jobs.items() if e.total_bytes > 0], top_bytes))
    if top_metadata > 0:
        keep.update(_top([(e.metadata_ops, k) for k, e in jobs.items() if e.metadata_ops > 0], top_metadata))
    keep.discard(REMAINDER_KEY)  # a real job named like the remainder is folded into it: never two series
    kept: dict[JobKey, JobTotals] = {}
    remainder: JobTotals | None = None
    for k, e in jobs.items():
        if k in keep:
            t = kept[k] = JobTotals()
        else:
            if remainder is None:
                remainder = JobTotals()
            t = remainder
        ops, byts, secs = t.ops, t.bytes, t.seconds
        for counters in e.records:
            fold_counters(counters, ops, byts, secs)
    return TargetJobs(target, kept, remainder, len(jobs))
