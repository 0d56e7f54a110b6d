"""Pure parsers for the cgroup files the jobs collector reads (text in, typed records out, no I/O).

Parsers never raise: malformed lines are skipped and counted (`bad_lines`) and a value that cannot
be read is None, so one truncated file never hides the rest of a job.
"""

from __future__ import annotations

import dataclasses
import re

# cgroup v1 reports "no limit" as a page-rounded LONG_MAX (9223372036854771712); anything this big is unlimited.
UNLIMITED_V1 = 1 << 62

JOB_DIR = re.compile(r"job_(\d{1,20})")
UID_DIR = re.compile(r"uid_(\d{1,10})")
# Slurm >= 26.05 names cgroup v2 job directories after the job's SLUID: "s" + Crockford base32
# (e.g. s5K1KKYAYG5D00) unless cgroup.conf sets CgroupJobIdPaths=yes.
SLUID_DIR = re.compile(r"s[0-9A-HJKMNP-TV-Z]{10,26}")


@dataclasses.dataclass(frozen=True)
class KeyedValues:
    """A flat `key value` file (memory.stat, cpu.stat, memory.events, cpuacct.stat, memory.oom_control)."""

    values: dict[str, int]
    bad_lines: int = 0

    def get(self, key: str) -> int | None:
        return self.values.get(key)


@dataclasses.dataclass(frozen=True)
class CpuTimes:
    """CPU time a cgroup consumed, in seconds."""

    user: float
    system: float


@dataclasses.dataclass(frozen=True)
class MemoryEvents:
    """cgroup v2 memory.events counters the collector exports (None when the key is absent)."""

    max: int | None  # times usage hit memory.max (the v2 analogue of v1 memory.failcnt)
    oom: int | None  # times the OOM killer was invoked for the cgroup
    oom_kill: int | None  # processes killed by the OOM killer


@dataclasses.dataclass(frozen=True)
class JobDir:
    """A job cgroup directory name decoded: the numeric job id, or the SLUID when the name is one."""

    jobid: str | None
    sluid: str | None


def parse_keyed(text: str) -> KeyedValues:
    """Lines of `key <non-negative integer>`; anything else counts as a bad line and is skipped."""
    values: dict[str, int] = {}
    bad = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 2 or not parts[1].isascii() or not parts[1].isdigit():
            bad += 1
            continue
        values[parts[0]] = int(parts[1])
    return KeyedValues(values, bad)


def parse_int(text: str | None) -> int | None:
    """A single non-negative integer file (memory.usage_in_bytes, memory.current, pids.current)."""
    if text is None:
        return None
    tok = text.strip()
    return int(tok) if tok.isascii() and tok.isdigit() and len(tok) <= 20 else None


def parse_limit(text: str | None) -> int | None:
    """A memory limit in bytes; None when unlimited ("max" in v2, ~LONG_MAX in v1) or unreadable."""
    value = parse_int(text)
    if value is None or value >= UNLIMITED_V1:
        return None
    return value


def parse_cpuacct_stat(text: str, ticks_per_second: int) -> CpuTimes | None:
    """cgroup v1 cpuacct.stat (`user N` / `system N` in USER_HZ ticks) to seconds."""
    kv = parse_keyed(text)
    user, system = kv.get("user"), kv.get("system")
    if user is None or system is None or ticks_per_second <= 0:
        return None
    return CpuTimes(user / ticks_per_second, system / ticks_per_second)


def parse_cpu_stat(text: str) -> CpuTimes | None:
    """cgroup v2 cpu.stat (`user_usec` / `system_usec` in microseconds) to seconds."""
    kv = parse_keyed(text)
    user, system = kv.get("user_usec"), kv.get("system_usec")
    if user is None or system is None:
        return None
    return CpuTimes(user / 1e6, system / 1e6)


def parse_memory_events(text: str) -> MemoryEvents:
    """cgroup v2 memory.events."""
    kv = parse_keyed(text)
    return MemoryEvents(max=kv.get("max"), oom=kv.get("oom"), oom_kill=kv.get("oom_kill"))


def parse_oom_control(text: str) -> int | None:
    """cgroup v1 memory.oom_control: the `oom_kill` counter (kernels >= 4.13), else None."""
    return parse_keyed(text).get("oom_kill")


def parse_job_dir(name: str) -> JobDir | None:
    """`job_<id>` or a SLUID directory name; None for anything else (step_*, system, ...)."""
    m = JOB_DIR.fullmatch(name)
    if m:
        return JobDir(jobid=str(int(m.group(1))), sluid=None)
    if SLUID_DIR.fullmatch(name):
        return JobDir(jobid=None, sluid=name)
    return None


def parse_uid_dir(name: str) -> int | None:
    """`uid_<uid>` (cgroup v1 Slurm layout) to the uid."""
    m = UID_DIR.fullmatch(name)
    return int(m.group(1)) if m else None


def parse_status_uid(text: str) -> int | None:
    """The real uid from /proc/<pid>/status (`Uid:\treal\teffective\tsaved\tfs`)."""
    for line in text.splitlines():
        if line.startswith("Uid:"):
            parts = line.split()
            if len(parts) >= 2 and parts[1].isascii() and parts[1].isdigit() and len(parts[1]) <= 10:
                return int(parts[1])
            return None
    return None


def count_lines(text: str | None) -> int | None:
    """Number of non-empty lines (pids in `tasks` / `cgroup.procs` / `cgroup.threads`)."""
    if text is None:
        return None
    return sum(1 for line in text.splitlines() if line.strip())


def parse_cpu_list(text: str | None) -> int | None:
    """Number of CPUs in a cpuset list like "0-3,8,10-11"; None when empty or malformed."""
    if text is None:
        return None
    text = text.strip()
    if not text:
        return None
    total = 0
    for part in text.split(","):
        lo, sep, hi = part.partition("-")
        try:
            a = int(lo)
            b = int(hi) if sep else a
        except ValueError:
            return None
        if b < a or a < 0:
            return None
        total += b - a + 1
    return total
