"""Pure parsers for Slurm 22.05 command output (text in, typed records out, no I/O).

Every parser raises only SlurmParseError for input it cannot read as a whole; single malformed
lines are skipped and counted in the returned `skipped` so callers can record parse errors.
"""

from __future__ import annotations

import dataclasses
import datetime
import functools
import re
import secrets
import time
from collections.abc import Iterator

from hpcwatch.exporters import labels
from hpcwatch.exporters.scheduler.model import FinishedJob, run_key
from hpcwatch.exporters.scheduler.outcomes import UnknownStateError, slurm_outcome


class SlurmParseError(ValueError):
    """Slurm output that cannot be read at all (wrong format, wrong command)."""


# Field lists, in the order the reader asks for them. Slurm takes any byte in account, partition,
# QOS, job name and comment names (`|`, newlines, quotes, control characters), so no fixed delimiter
# is safe: each call separates fields with a fresh `call_separator()` that no stored name can hold,
# and the last field of every record is one that can never hold a newline, so a record ends at the
# first newline after its last separator (see split_records).
SQUEUE_FIELDS = ("JobID", "ArrayJobID", "ArrayTaskID", "HetJobOffset", "Partition", "State", "UserName",
                 "Account", "SubmitTime", "EligibleTime", "StartTime", "NumNodes", "tres-alloc", "Reason",
                 "NumCPUs")
SINFO_FIELDS = ("NodeList", "PartitionName", "StateLong", "Gres", "GresUsed", "Reason", "CPUsState")
SACCT_FIELDS = ("JobID", "JobIDRaw", "Partition", "State", "ExitCode", "Submit", "Eligible", "Start", "End",
                "User", "UID", "Account", "NNodes")
# Terminal states for `sacct --state`: with a state list and -S/-E, sacct selects jobs that ENDED
# inside the window. REQUEUED is left out on purpose: a requeued run is not a finished job.
SACCT_STATES = ("BF", "CA", "CD", "DL", "F", "NF", "OOM", "PR", "TO")

# What `sacct --parsable2` writes by default (hand-made dumps read by the SLO history engine).
PIPE = "|"
# The separator tests/fixtures/slurm are written with (a nonce of zeros); stand-in commands swap in
# the one each call asks for.
FIXTURE_SEPARATOR = "\x1f" + "0" * 12


def call_separator() -> str:
    """A field separator for one Slurm call: the unit-separator control character and a 48-bit nonce.

    Names are stored before the call picks its nonce, so none can contain it (a 1 in 2**48 guess);
    the control character keeps it out of anything printable even then.
    """
    return "\x1f" + secrets.token_hex(6)


def format_option(fields: tuple[str, ...], sep: str) -> str:
    """squeue/sinfo --Format value: every field unpadded (width 0), each but the last followed by `sep`."""
    return ",".join(f"{f}:0{sep}" for f in fields[:-1]) + f",{fields[-1]}:0"


def split_records(text: str, sep: str, n: int) -> Iterator[list[str] | None]:
    """Records of `n` fields separated by `sep`, one per line: each record's fields, or None for a malformed one.

    A value may hold newlines; the last field never does, so lines are joined until a record has its
    n - 1 separators. A record with more separators than that (only when `sep` is a fixed string a
    value happened to contain) is malformed, never shifted into the wrong fields. A generator: the
    callers build their records as they go, without a second list of every line's fields.
    """
    pending: list[str] | None = None
    for line in text.split("\n"):
        p = line.split(sep)
        if pending is not None:
            if len(pending) + len(p) - 1 <= n:
                pending[-1] += "\n" + p[0]
                p = pending + p[1:]
            else:
                yield None          # a fragment no record completes: drop it, read this line alone
            pending = None
        if len(p) == n:
            yield p
        elif len(p) > n:
            yield None
        elif len(p) > 1 or p[0].strip():   # a joined fragment stays pending across an empty line
            pending = p
    if pending is not None:
        yield None


_NO_TIME = frozenset({"", "Unknown", "N/A", "None", "(null)", "0"})


@functools.lru_cache(maxsize=65536)
def parse_time(text: str) -> float | None:
    """'2024-01-02T03:04:05' (SLURM_TIME_FORMAT=standard, TZ=UTC) -> Unix seconds; None for Unknown/N/A.

    Cached: a queue of many jobs repeats the same few thousand timestamps.
    """
    text = text.strip()
    if text in _NO_TIME or len(text) != 19 or text[10] != "T":
        return None
    try:
        return datetime.datetime.fromisoformat(text).replace(tzinfo=datetime.UTC).timestamp()
    except ValueError:
        return None


def format_time(ts: float) -> str:
    """Unix seconds -> the form sacct -S/-E reads (UTC, because the reader pins TZ=UTC)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts))


def _digits(text: str) -> bool:
    """Only ASCII digits: str.isdigit() also takes '²' and other digits int() refuses."""
    return text.isascii() and text.isdigit()


def _int(text: str, default: int = 0) -> int:
    try:
        return int(text.strip())
    except ValueError:
        return default


_RANGE = re.compile(r"^(\d+)(?:-(\d+)(?::(\d+))?)?$")


def array_task_count(expr: str) -> int:
    """Tasks in a Slurm array expression: '7' -> 1, '1-10' -> 10, '1,3,5-7' -> 5, '0-9:2%4' -> 5.

    A pending array shows all its not-yet-started tasks on one squeue line (or one sacct record
    when cancelled before any ran); this is how many jobs that line stands for. Unreadable -> 1.
    """
    expr = expr.strip().strip("[]").split("%", 1)[0]
    if not expr or expr == "N/A":
        return 1
    total = 0
    for part in expr.split(","):
        m = _RANGE.match(part.strip())
        if not m:
            return 1
        lo, hi, step = int(m.group(1)), m.group(2), m.group(3)
        if hi is None:
            total += 1
        else:
            step_n = int(step) if step else 1
            if step_n <= 0 or int(hi) < lo:
                return 1
            total += (int(hi) - lo) // step_n + 1
    return max(total, 1)


# ---------------------------------------------------------------- squeue
@dataclasses.dataclass(slots=True)   # not frozen: frozen __init__ costs 3x on 200k-line queues
class SqueueJob:
    """One squeue line: a job, an array task, a het component, or a pending array's remaining tasks."""

    jobid: str
    array_jobid: str
    array_tasks: str
    het_offset: str
    partition: str
    state: str
    user: str
    account: str
    submit: float | None
    eligible: float | None
    start: float | None
    nnodes: int
    ncpus: int
    gpus: int
    reason: str

    @property
    def count(self) -> int:
        """How many jobs this line stands for (a collapsed pending array: its task count)."""
        if self.array_tasks and any(c in self.array_tasks for c in "-,"):
            return array_task_count(self.array_tasks)
        return 1

    @property
    def het_component(self) -> bool:
        """True for the non-leader components of a heterogeneous job (counted through the leader)."""
        return self.het_offset not in ("", "N/A", "0")


_GRES_GPU = re.compile(r"gres/gpu(?::[^=,]+)?=(\d+)")


@functools.lru_cache(maxsize=4096)
def tres_gpus(tres: str) -> int:
    """GPUs in a TRES string ('cpu=4,mem=8G,node=1,gres/gpu=2'); typed entries are not added twice."""
    untyped = re.search(r"gres/gpu=(\d+)", tres)
    if untyped:
        return int(untyped.group(1))
    return sum(int(m) for m in _GRES_GPU.findall(tres))


def parse_squeue(text: str, sep: str) -> tuple[list[SqueueJob], int]:
    """`squeue --noheader -O format_option(SQUEUE_FIELDS, sep)` -> (jobs, records skipped)."""
    jobs: list[SqueueJob] = []
    skipped = 0
    for p in split_records(text, sep, len(SQUEUE_FIELDS)):
        if p is None or not _digits(p[0]):
            skipped += 1
            continue
        # Fields are unpadded (width 0) and names are data: no strip() of names, positional construction.
        jobs.append(SqueueJob(p[0], p[1], p[2], p[3], p[4], p[5], p[6], p[7], parse_time(p[8]),
                              parse_time(p[9]), parse_time(p[10]), _int(p[11]), _int(p[14]), tres_gpus(p[12]),
                              p[13]))
    return jobs, skipped


def first_partition(field: str, known: frozenset[str] = frozenset()) -> str:
    """The partition a pending job counts under: 'gpu,debug' -> 'gpu'.

    squeue joins the partitions of a multi-partition job with commas, and a partition name may itself
    hold a comma (`scontrol create PartitionName=a,b`), so the longest known name that starts the
    field wins; without one, the text up to the first comma.
    """
    if field in known or "," not in field:
        return field
    best = ""
    for name in known:
        if len(name) > len(best) and field.startswith(name) and field[len(name)] == ",":
            best = name
    return best or field.split(",", 1)[0]


# ---------------------------------------------------------------- sinfo
@dataclasses.dataclass(frozen=True, slots=True)
class SinfoNode:
    """One node in one partition (sinfo -N)."""

    node: str
    partition: str
    state: str
    cpus_alloc: int
    cpus_idle: int
    cpus_other: int
    cpus_total: int
    gpus_total: int
    gpus_used: int
    reason: str = ""   # why it is down or drained ("" for none)


_GPU_COUNT = re.compile(r"(?:^|,)gpu(?::[^:,(]+)?:(\d+)")


def gres_gpus(gres: str) -> int:
    """GPUs in a node's Gres/GresUsed ('gpu:a100:4(S:0-1)', 'gpu:2(IDX:0-1),nvme:1') -> 4, 2."""
    return sum(int(m) for m in _GPU_COUNT.findall(re.sub(r"\([^)]*\)", "", gres)))


def parse_sinfo(text: str, sep: str) -> tuple[list[SinfoNode], int]:
    """`sinfo -N --noheader -O format_option(SINFO_FIELDS, sep)` -> (nodes, records skipped)."""
    out: list[SinfoNode] = []
    skipped = 0
    for p in split_records(text, sep, len(SINFO_FIELDS)):
        cpus = p[6].strip().split("/") if p is not None else []
        if p is None or len(cpus) != 4 or not all(_digits(c) for c in cpus) or not p[0].strip():
            skipped += 1
            continue
        a, i, o, t = (int(c) for c in cpus)
        reason = p[5].strip()   # free text an admin typed (drain or down reason); 'none' when there is none
        # `-O PartitionName` marks no default partition with '*' (unlike %P): the name is every byte.
        out.append(SinfoNode(node=p[0].strip(), partition=p[1], state=p[2].strip(),
                             cpus_alloc=a, cpus_idle=i, cpus_other=o, cpus_total=t,
                             gpus_total=gres_gpus(p[3].strip()), gpus_used=gres_gpus(p[4].strip()),
                             reason="" if reason.lower() in ("none", "(null)") else reason))
    return out, skipped


NODE_STATES = ("idle", "mixed", "allocated", "completing", "drain", "down", "reserved", "maint", "other")


def node_state(state: str) -> str:
    """Slurm StateLong ('idle', 'mixed*', 'drained', 'down~', 'allocated+drain') -> a neutral node state."""
    s = state.strip().lower()
    if s.endswith("*"):
        return "down"           # not responding
    base = re.sub(r"[^a-z_+]", "", s)
    words = base.split("+")
    if any(w in ("down", "fail", "failing", "not_responding", "inval", "unknown") for w in words):
        return "down"
    if any(w.startswith("drain") for w in words):
        return "drain"
    if "maint" in words:
        return "maint"
    if "reserved" in words:
        return "reserved"
    for w in ("allocated", "mixed", "completing", "idle"):
        if w in words:
            return w
    if "alloc" in words:
        return "allocated"
    if "mix" in words:
        return "mixed"
    return "other"


# ---------------------------------------------------------------- hostlists and reservations
HOSTLIST_LIMIT = 100_000   # names one expression may expand to (a typo such as n[1-99999999] stops here)
_RANGE_PART = re.compile(r"^(\d+)(?:-(\d+))?$")


def _split_top(expr: str) -> list[str]:
    """Split a hostlist at the commas outside brackets: 'a[1,2],b' -> ['a[1,2]', 'b']."""
    out, depth, cur = [], 0, []
    for ch in expr:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
            if depth < 0:
                raise ValueError(f"hostlist {expr!r}: ']' without '['")
        if ch == "," and depth == 0:
            out.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    if depth:
        raise ValueError(f"hostlist {expr!r}: '[' without ']'")
    out.append("".join(cur))
    return [p for p in out if p]


def _expand_one(name: str, budget: int) -> list[str]:
    """One comma-free host expression ('rack[1-2]n[01-03]') to its names, leftmost bracket outermost."""
    m = re.search(r"\[([^\[\]]*)\]", name)
    if m is None:
        return [name]
    head, tail = name[:m.start()], name[m.end():]
    values = []
    for part in m.group(1).split(","):
        r = _RANGE_PART.match(part.strip())
        if r is None:
            raise ValueError(f"hostlist range {part!r} in {name!r}")
        lo, hi = r.group(1), r.group(2) or r.group(1)
        if int(hi) < int(lo) or int(hi) - int(lo) >= budget:
            raise ValueError(f"hostlist range {part!r} in {name!r}")
        values += [str(v).zfill(len(lo)) for v in range(int(lo), int(hi) + 1)]
    out = []
    for v in values:
        out += _expand_one(head + v + tail, budget)
        if len(out) > budget:
            raise ValueError(f"hostlist {name!r}: more than {budget} names")
    return out


def expand_hostlist(expr: str, limit: int = HOSTLIST_LIMIT) -> list[str]:
    """Slurm's hostlist expression to node names: 'n[01-03,7],gpu1' -> ['n01', 'n02', 'n03', 'n07', 'gpu1'].

    Ranges keep the width of their lower bound (zero padding); several bracket groups multiply out.
    Raises ValueError for a malformed expression or one of more than `limit` names."""
    expr = expr.strip()
    if expr in ("", "(null)"):
        return []
    out: list[str] = []
    for part in _split_top(expr):
        out += _expand_one(part.strip(), limit - len(out))
        if len(out) > limit:
            raise ValueError(f"hostlist {expr[:80]!r}: more than {limit} names")
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class Reservation:
    """One line of `scontrol show reservation --oneliner`."""

    name: str
    start: float | None
    end: float | None
    nodes: tuple[str, ...]
    flags: frozenset[str]
    state: str

    @property
    def maintenance(self) -> bool:
        return "MAINT" in self.flags


_FIELD = re.compile(r"\s+(?=[A-Za-z][A-Za-z0-9_]*=)")


def parse_reservations(text: str) -> tuple[list[Reservation], int]:
    """Lines of `scontrol show reservation --oneliner` -> (reservations, lines skipped).

    Every line is `Key=value` pairs; 'No reservations in the system' is none. A reservation line
    without a name, or whose node list cannot be expanded, is skipped and counted."""
    out: list[Reservation] = []
    skipped = 0
    for line in text.splitlines():
        line = line.strip()
        if not line.startswith("ReservationName="):
            continue
        fields = dict(f.split("=", 1) for f in _FIELD.split(line) if "=" in f)
        name = fields.get("ReservationName", "")
        try:
            nodes = tuple(expand_hostlist(fields.get("Nodes", "")))
        except ValueError:
            nodes = None
        if not name or nodes is None:
            skipped += 1
            continue
        flags = frozenset(f.strip().upper() for f in fields.get("Flags", "").split(",") if f.strip())
        out.append(Reservation(name, parse_time(fields.get("StartTime", "")), parse_time(fields.get("EndTime", "")),
                               nodes, flags, fields.get("State", "").upper()))
    return out, skipped


# ---------------------------------------------------------------- sacct
@dataclasses.dataclass(frozen=True, slots=True)
class SacctJob:
    """One allocation record of `sacct -X --duplicates --parsable2` (one run of one job)."""

    jobid: str
    jobid_raw: str
    partition: str
    state: str
    exit_code: str
    submit: float | None
    eligible: float | None
    start: float | None
    end: float | None
    user: str
    uid: int | None
    account: str
    nnodes: int


def parse_sacct(text: str, sep: str = PIPE) -> tuple[list[SacctJob], int]:
    """`sacct --noheader --parsable2 -X --delimiter=<sep> --format=<SACCT_FIELDS>` -> (records, skipped).

    The default `|` reads hand-made dumps (a name holding `|` then makes its record malformed, counted,
    never shifted); the collector passes a `call_separator()`, which no name can hold.
    """
    out: list[SacctJob] = []
    skipped = 0
    for p in split_records(text, sep, len(SACCT_FIELDS)):
        if p is None:
            skipped += 1
            continue
        jobid, raw = p[0].strip(), p[1].strip()
        if not _digits(raw.split("+")[0]):
            skipped += 1
            continue
        uid = p[10].strip()
        out.append(SacctJob(
            jobid=jobid, jobid_raw=raw, partition=p[2], state=p[3].strip(),
            exit_code=p[4].strip(), submit=parse_time(p[5]), eligible=parse_time(p[6]),
            start=parse_time(p[7]), end=parse_time(p[8]), user=p[9].strip(),
            uid=int(uid) if _digits(uid) else None, account=p[11], nnodes=_int(p[12]),
        ))
    return out, skipped


# Which outcome wins when a heterogeneous job's components ended differently.
_SEVERITY = ("node_fail", "boot_fail", "oom", "timeout", "failed", "preempted", "deadline", "cancelled", "success")


def sacct_to_finished(records: list[SacctJob], cluster: str,
                      partitions: frozenset[str] = frozenset()) -> tuple[list[FinishedJob], int]:
    """Turn sacct allocation records into neutral FinishedJob runs -> (runs, records with unknown states).

    Records that are not an end (REQUEUED, RUNNING...) are dropped. Array tasks are jobs of their
    own (`123_7`); a never-started array record (`123_[5-10]`) stands for its task count.
    Heterogeneous components (`123+0`, `123+1`) are one job: the leader's identity and queue, the
    most severe component outcome. A job cancelled while pending in several partitions is recorded
    with all of them ('a,b'): it counts under the first, as in the live queue (`partitions`: see
    first_partition).
    """
    unknown = 0
    runs: list[FinishedJob] = []
    het: dict[str, list[tuple[SacctJob, tuple[str, str]]]] = {}
    for r in records:
        try:
            oc = slurm_outcome(r.state, r.exit_code, r.uid)
        except UnknownStateError:
            unknown += 1
            continue
        if oc is None:
            continue
        if not r.partition:
            # For about a second after a job ends slurmdbd can return its record without Partition
            # (and Eligible Unknown): incomplete, so not counted yet; the accounting overlap of the
            # next window brings it back complete.
            continue
        if "+" in r.jobid:
            het.setdefault(r.jobid.split("+", 1)[0], []).append((r, oc))
            continue
        count = array_task_count(r.jobid.split("_", 1)[1]) if "_[" in r.jobid else 1
        runs.append(_finished(r, r.jobid, r.jobid_raw, oc, cluster, count, partitions))
    for leader_id, parts in het.items():
        parts.sort(key=lambda p: p[0].jobid)
        leader = parts[0][0]
        worst = min((oc for _, oc in parts), key=lambda oc: _SEVERITY.index(oc[0]))
        runs.append(_finished(leader, leader_id, leader_id, worst, cluster, 1, partitions))
    return runs, unknown


def _finished(r: SacctJob, jobid: str, raw: str, oc: tuple[str, str], cluster: str, count: int,
              partitions: frozenset[str]) -> FinishedJob:
    return FinishedJob(jobid=jobid, cluster=cluster, queue=labels.value(first_partition(r.partition, partitions)),
                       outcome=oc[0], cause=oc[1],
                       submit=r.submit, eligible=r.eligible, start=r.start, end=r.end, exit_code=r.exit_code,
                       user=r.user, account=r.account, nnodes=r.nnodes, key=run_key(raw, r.submit, r.start),
                       count=count)


# ---------------------------------------------------------------- sdiag
@dataclasses.dataclass
class SdiagStats:
    """sdiag figures: scalar statistics by (section, name) and RPC statistics by message type."""

    values: dict[str, float] = dataclasses.field(default_factory=dict)
    rpc_by_type: dict[str, tuple[int, float]] = dataclasses.field(default_factory=dict)  # count, total seconds

    def get(self, key: str) -> float | None:
        return self.values.get(key)


_SECTIONS = {"Main schedule statistics (microseconds):": "main", "Backfilling stats": "backfill"}
_RPC = re.compile(r"^\s*(\S+)\s+\(\s*\d+\)\s+count:(\d+)\s+ave_time:(\d+)\s+total_time:(\d+)")


def parse_sdiag(text: str) -> SdiagStats:
    """`sdiag` text -> SdiagStats. Keys are 'section:name' with sections top, main, backfill."""
    if "sdiag output" not in text and "Server thread count" not in text:
        raise SlurmParseError("not sdiag output (no 'Server thread count' line)")
    stats = SdiagStats()
    section = "top"
    for raw in text.split("\n"):
        line = raw.strip()
        if not line or line.startswith("*"):
            continue
        if line in _SECTIONS or line.startswith("Backfilling stats"):
            section = _SECTIONS.get(line, "backfill")
            continue
        if line.startswith("Remote Procedure Call statistics by message type"):
            section = "rpc_type"
            continue
        if line.startswith(("Remote Procedure Call statistics by user", "Pending RPC")):
            break   # the rest names users and queued RPCs: nothing read, and a user name must not move a section
        if section == "rpc_type":
            m = _RPC.match(raw)
            if m:
                stats.rpc_by_type[m.group(1)] = (int(m.group(2)), int(m.group(4)) / 1e6)
            continue
        if ":" not in line:
            continue
        name, _, value = line.partition(":")
        tok = value.strip().split(" ", 1)[0]
        try:
            stats.values[f"{section}:{name.strip()}"] = float(tok)
        except ValueError:
            continue
    return stats


# ---------------------------------------------------------------- scontrol show config / sshare
def parse_scontrol_config(text: str) -> dict[str, str]:
    """`scontrol show config` -> {Name: value}."""
    out = {}
    for line in text.splitlines():
        name, sep, value = line.partition("=")
        if sep and name.strip() and " " not in name.strip():
            out[name.strip()] = value.strip()
    return out


@dataclasses.dataclass(frozen=True, slots=True)
class FairShare:
    account: str
    user: str
    fairshare: float


def _sshare_value(text: str) -> float | None | bool:
    """FairShare column: a float, None when empty (account rows carry none on 22.05), False when not a number."""
    if text == "":
        return None
    try:
        return float(text)
    except ValueError:
        return False


def parse_sshare(text: str) -> tuple[list[FairShare], int]:
    """`sshare --noheader --parsable2 -a -o Account,User,FairShare` -> (rows with a value, records skipped).

    sshare has no --delimiter and no --json (22.05), so records are read from the right: User and
    FairShare never hold `|`, spaces or newlines, so a record ends on the first line whose last two
    fields are a name and a number (or empty), and everything before them is the account, `|` and
    newlines included. Leading spaces are sshare's tree indentation, not part of the name.
    """
    out: list[FairShare] = []
    skipped = 0
    pending = ""
    for line in text.split("\n"):
        rec = pending + "\n" + line if pending else line
        parts = rec.rsplit("|", 2)
        value = _sshare_value(parts[2]) if len(parts) == 3 else False
        if value is False or any(c in parts[1] for c in " \t\n"):
            pending = rec if rec.strip() else ""
            continue
        pending = ""
        if value is not None:
            out.append(FairShare(account=parts[0].lstrip(" "), user=parts[1], fairshare=value))
    if pending:
        skipped += 1
    return out, skipped


def cluster_name_from_slurm_conf(text: str) -> str:
    """The ClusterName= value of a slurm.conf text (case-insensitive key, comments ignored); "" if absent."""
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        key, sep, value = line.partition("=")
        if sep and key.strip().lower() == "clustername":
            return value.strip().split()[0] if value.strip() else ""
    return ""
