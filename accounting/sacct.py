"""The batched accounting reader: one `sacct --jobs id1,id2,...` call per refresh, parsed purely.

The finished-job counter's sacct window reads only what counting needs; a summary needs more
(requested and allocated TRES, CPU time, peak RSS from the steps, time limit, QOS, nodes). Those are
read here for a whole batch of jobs at once, by their JobIDRaw (sacct resolves a raw id to the array
task or het component it belongs to). Step lines fold into their allocation: the highest MaxRSS,
and bytes and energy summed.

Names are data: Slurm stores any byte in job names, accounts, partitions and QOS (`|`, newlines,
control characters), so fields are separated by a `call_separator()` chosen for each call and
carried from the argv to the parser, and records are split with the counters' own `split_records`.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterable, Mapping, Sequence

from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.slurm.parse import call_separator, parse_time, split_records

# ElapsedRaw (digits, never a newline) is last so a record ends at the first newline after its last
# separator (split_records); the free-text fields (Partition, QOS, Account, JobName) sit in the middle.
SUMMARY_FIELDS = ("JobID", "JobIDRaw", "State", "ExitCode", "Partition", "QOS", "User", "UID", "Account", "Cluster",
                  "JobName", "Submit", "Eligible", "Start", "End", "TimelimitRaw", "NNodes", "NodeList",
                  "NCPUS", "ReqCPUS", "ReqTRES", "AllocTRES", "TotalCPU", "MaxRSS", "TRESUsageInTot",
                  "TRESUsageOutTot", "ConsumedEnergyRaw", "ElapsedRaw")
_IDX = {name: i for i, name in enumerate(SUMMARY_FIELDS)}
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40, "P": 1 << 50}
_SIZE = re.compile(r"^(\d+(?:\.\d+)?)([KMGTP]?)$")
_DURATION = re.compile(r"^(?:(\d+)-)?(?:(\d+):)?(\d+):(\d+(?:\.\d+)?)$")
RAW_ID = re.compile(r"^\d{1,20}$")
# What sacct prints as JobID: 12, 12_3, 12_[1-3%2], 12+1, each maybe with a step (.batch, .0, .extern).
_JOB_ID = re.compile(r"^\d+(?:[_+][\w\[\]%,-]+)?(?:\.\w+)?$")
JOB_SELECTOR = re.compile(r"^\d{1,20}(?:_\d{1,10})?$")   # a raw id, or an array task as users write it


@dataclasses.dataclass
class SacctDetail:
    """What sacct knows of one job (its allocation line, with its steps folded in)."""

    jobid: str
    jobid_raw: str
    state: str
    exit_code: str
    partition: str
    qos: str
    user: str
    uid: int | None
    account: str
    cluster: str
    submit: float | None
    eligible: float | None
    start: float | None
    end: float | None
    elapsed_s: float | None
    time_limit_s: float | None
    nnodes: int | None
    nodelist: str
    cpus_alloc: int | None
    cpus_req: int | None
    req_tres: dict[str, str]
    alloc_tres: dict[str, str]
    total_cpu_s: float | None
    name: str
    max_rss_bytes: int | None = None     # highest MaxRSS of any step (None: no step reported one)
    fs_read_bytes: int | None = None     # TRESUsageInTot fs/disk summed over steps
    fs_write_bytes: int | None = None    # TRESUsageOutTot fs/disk summed over steps
    alloc_energy_j: float | None = None  # ConsumedEnergyRaw of the allocation (0: no energy plugin, None)
    step_energy_j: float | None = None   # ConsumedEnergyRaw of the steps, summed

    @property
    def energy_j(self) -> float | None:
        """Slurm's own energy figure (acct_gather_energy), None where no plugin measured any."""
        return self.alloc_energy_j if self.alloc_energy_j is not None else self.step_energy_j

    @property
    def mem_req_bytes(self) -> int | None:
        return size_bytes(self.req_tres.get("mem", ""))

    @property
    def gpus_alloc(self) -> int:
        return tres_gpus(self.alloc_tres)

    @property
    def gpu_model(self) -> str:
        return tres_gpu_model(self.alloc_tres)


def size_bytes(text: str) -> int | None:
    """'314496K' -> 322043904, '1G', '200M', '0' -> 0; None for empty or unreadable text."""
    m = _SIZE.match(text.strip())
    if not m:
        return None
    return int(float(m.group(1)) * _UNITS[m.group(2)])


def duration_s(text: str) -> float | None:
    """Slurm [D-][HH:]MM:SS[.mmm] ('00:18.455', '01:02:03', '2-00:00:00') -> seconds; None if unreadable."""
    m = _DURATION.match(text.strip())
    if not m:
        return None
    days, hours, minutes, seconds = m.groups()
    return int(days or 0) * 86400 + int(hours or 0) * 3600 + int(minutes) * 60 + float(seconds)


def parse_tres(text: str) -> dict[str, str]:
    """'billing=2,cpu=2,mem=200M,gres/gpu:a100=2' -> {'billing': '2', 'cpu': '2', ...} (malformed parts dropped)."""
    out = {}
    for part in text.split(","):
        name, sep, value = part.partition("=")
        if sep and name.strip():
            out[name.strip()] = value.strip()
    return out


def tres_gpus(tres: Mapping[str, str]) -> int:
    """GPUs in a parsed TRES: gres/gpu when given (it is the total), else the typed entries summed."""
    if "gres/gpu" in tres:
        return _int(tres["gres/gpu"]) or 0
    return sum(_int(v) or 0 for k, v in tres.items() if k.startswith("gres/gpu:"))


def tres_gpu_model(tres: Mapping[str, str]) -> str:
    """The GPU model of a typed allocation ('gres/gpu:a100=2' -> 'a100'); '' when untyped or mixed."""
    models = {k.split(":", 1)[1] for k, v in tres.items() if k.startswith("gres/gpu:") and (_int(v) or 0) > 0}
    return models.pop() if len(models) == 1 else ""


def _digits(text: str) -> bool:
    """Only ASCII digits: str.isdigit() also takes '²', which int() refuses."""
    return text.isascii() and text.isdigit()


def _int(text: str) -> int | None:
    text = text.strip()
    return int(text) if _digits(text) else None


def _limit(text: str) -> float | None:
    """TimelimitRaw (minutes; UNLIMITED / Partition_Limit / empty -> None) -> seconds."""
    minutes = _int(text)
    return None if minutes is None else minutes * 60.0


def _usage(tres_text: str, name: str) -> int | None:
    value = parse_tres(tres_text).get(name)
    return None if value is None else size_bytes(value)


def parse_summary_sacct(text: str, sep: str) -> tuple[dict[str, SacctDetail], int]:
    """`sacct --noheader --parsable2 --delimiter=<sep> --format <SUMMARY_FIELDS>` (steps included) ->
    ({JobIDRaw of each allocation: detail}, records skipped).

    A malformed record (wrong field count, a JobID, JobIDRaw or ElapsedRaw that is not one) is counted,
    never shifted.
    """
    allocations: dict[str, SacctDetail] = {}
    by_jobid: dict[str, SacctDetail] = {}
    steps: list[list[str]] = []
    skipped = 0
    for p in split_records(text, sep, len(SUMMARY_FIELDS)):
        if p is None or not _JOB_ID.match(p[0]) or not _digits(p[_IDX["JobIDRaw"]].split(".")[0]) \
                or not _digits(p[-1].strip()):
            skipped += 1
            continue
        if "." in p[_IDX["JobID"]]:
            steps.append(p)
            continue
        d = _detail(p)
        allocations[d.jobid_raw] = d
        by_jobid[d.jobid] = d
    for p in steps:
        owner = by_jobid.get(p[_IDX["JobID"]].split(".", 1)[0])
        if owner is None:
            skipped += 1
            continue
        _fold_step(owner, p)
    return allocations, skipped


def _detail(p: list[str]) -> SacctDetail:
    g = lambda name: p[_IDX[name]].strip()  # noqa: E731 - field by name
    raw = lambda name: p[_IDX[name]]  # noqa: E731 - a name is data: every byte kept
    energy = _int(g("ConsumedEnergyRaw"))
    return SacctDetail(
        jobid=g("JobID"), jobid_raw=g("JobIDRaw"), state=g("State"), exit_code=g("ExitCode"),
        partition=raw("Partition"), qos=raw("QOS"), user=g("User"), uid=_int(g("UID")), account=raw("Account"),
        cluster=g("Cluster"),
        submit=parse_time(g("Submit")), eligible=parse_time(g("Eligible")), start=parse_time(g("Start")),
        end=parse_time(g("End")), elapsed_s=_float(g("ElapsedRaw")), time_limit_s=_limit(g("TimelimitRaw")),
        nnodes=_int(g("NNodes")), nodelist=g("NodeList"), cpus_alloc=_int(g("NCPUS")), cpus_req=_int(g("ReqCPUS")),
        req_tres=parse_tres(g("ReqTRES")), alloc_tres=parse_tres(g("AllocTRES")),
        total_cpu_s=duration_s(g("TotalCPU")), name=raw("JobName"),
        alloc_energy_j=float(energy) if energy else None)


def _float(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


def _fold_step(owner: SacctDetail, p: list[str]) -> None:
    """Add a step's peak RSS (max), filesystem bytes and energy (sums) to its allocation."""
    rss = size_bytes(p[_IDX["MaxRSS"]])
    if rss is not None:
        owner.max_rss_bytes = max(owner.max_rss_bytes or 0, rss)
    for attr, field in (("fs_read_bytes", "TRESUsageInTot"), ("fs_write_bytes", "TRESUsageOutTot")):
        v = _usage(p[_IDX[field]], "fs/disk")
        if v is not None:
            setattr(owner, attr, (getattr(owner, attr) or 0) + v)
    energy = _int(p[_IDX["ConsumedEnergyRaw"]])
    if energy:
        owner.step_energy_j = (owner.step_energy_j or 0.0) + energy


def sacct_argv(sacct: str, ids: Sequence[str], sep: str) -> list[str]:
    """The one batched call for a refresh's jobs, fields separated by `sep` (a `call_separator()`, which the
    parser is given too); ids are checked: they go on a command line."""
    bad = [i for i in ids if not JOB_SELECTOR.match(i)]
    if bad:
        raise ValueError(f"not job ids: {bad[:5]}")
    return [sacct, "--allusers", "--noheader", "--parsable2", f"--delimiter={sep}", "--jobs", ",".join(ids),
            "--format", ",".join(SUMMARY_FIELDS)]


def read_details(sacct: str, ids: Iterable[str], env: Mapping[str, str] | None = None,
                 timeout: float = 30.0) -> tuple[dict[str, SacctDetail], int]:
    """The reader: run the batched sacct (pinned environment, timeout, a fresh separator) and parse it."""
    ids = sorted(set(ids), key=lambda i: tuple(int(x) for x in i.split("_")) if JOB_SELECTOR.match(i) else (0,))
    if not ids:
        return {}, 0
    sep = call_separator()
    return parse_summary_sacct(run_command(sacct_argv(sacct, ids, sep), timeout=timeout, env=dict(env or {})), sep)
