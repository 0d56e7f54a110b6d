"""The reader: find Slurm job cgroups under a cgroup mount and read a few files per job.

Layouts (relative to the cgroup mount, `/sys/fs/cgroup` or --path.sysfs + fs/cgroup):

* cgroup v1: `<controller>/slurm/uid_<uid>/job_<id>/step_<step>/task_<n>`; builds with multiple slurmd
  (Debian's 22.05 among them) name the root `slurm_<nodename>`. memory and cpuacct trees are parallel.
* cgroup v2: `system.slice/slurmstepd.scope/job_<id>/step_<step>/{slurm,user/task_<n>}`; with multiple
  slurmd the scope is `<nodename>_slurmstepd.scope`.
* Slurm >= 26.05 on cgroup v2 names the job directory after the job's SLUID
  (`system.slice/slurmstepd.scope/s5K1KKYAYG5D00/...`) unless cgroup.conf sets CgroupJobIdPaths=yes.
  The numeric job id is then taken once per job from SLURM_JOB_ID in the environment of one of
  its task processes; until that resolves, the SLUID itself is the `jobid` label.

The same read gives the job's account and partition (SLURM_JOB_ACCOUNT, SLURM_JOB_PARTITION, which
slurmstepd sets for the job's tasks): the collector's fallback where the prolog left no file (`info`).

A job may end between listing and reading: every read tolerates a vanished file (None) and a job
with nothing readable is dropped from the scrape.
"""

from __future__ import annotations

import dataclasses
import os
import re

from hpcwatch.exporters.files import list_dir, read_bytes, read_text
from hpcwatch.exporters.jobs import cgroupfs as cg
from hpcwatch.exporters.jobs.info import JobIdentity, parse_job_info

ENVIRON_LIMIT = 1 << 20  # bytes of a task's environment read: Slurm's entries come early, modules add a lot


@dataclasses.dataclass(frozen=True)
class JobCgroupRoot:
    """One slurmd's job hierarchy: v1 has a memory and a cpuacct directory, v2 one unified directory."""

    version: int
    node: str  # slurmd node name from a multiple-slurmd root, "" for the plain `slurm` / `slurmstepd.scope`
    memory: str | None = None  # v1
    cpuacct: str | None = None  # v1
    cpuset: str | None = None  # v1
    unified: str | None = None  # v2


@dataclasses.dataclass(frozen=True)
class JobCgroup:
    """A job directory found in a root: where it lives and what its name and path say about it."""

    root: JobCgroupRoot
    rel: str  # path below the root: uid_0/job_5 (v1) or job_5 / <sluid> (v2)
    jobid: str | None
    sluid: str | None
    uid: int | None


@dataclasses.dataclass
class JobReading:
    """What one scrape read for one job; None where a file was missing, vanished or malformed."""

    jobid: str
    uid: int | None
    cpu: cg.CpuTimes | None = None
    memory_usage: int | None = None
    memory_limit: int | None = None
    memory_max_usage: int | None = None
    memory_rss: int | None = None
    memory_cache: int | None = None
    limit_hits: int | None = None
    oom_events: int | None = None
    oom_kills: int | None = None
    tasks: int | None = None
    cpus: int | None = None
    bad_lines: int = 0
    identity: JobIdentity = JobIdentity()  # account, partition, user: the collector fills it in (`identity`)

    def empty(self) -> bool:
        return all(getattr(self, f) is None for f in ("cpu", "memory_usage", "memory_limit", "memory_rss",
                                                       "limit_hits", "oom_kills", "tasks"))


_V2_SCOPE = re.compile(r"(?:(.+)_)?slurmstepd\.scope")


def find_roots(cgroup_mount: str, node: re.Pattern[str] | None = None) -> list[JobCgroupRoot]:
    """Every Slurm job hierarchy under the mount, v1 and v2; `node` keeps only matching slurmd names."""
    roots: list[JobCgroupRoot] = []
    v1: dict[str, dict[str, str]] = {}
    for controller in ("memory", "cpuacct", "cpuset"):
        base = os.path.join(cgroup_mount, controller)
        for entry in list_dir(base):
            if entry == "slurm" or entry.startswith("slurm_"):
                v1.setdefault(entry, {})[controller] = os.path.join(base, entry)
    for entry, dirs in sorted(v1.items()):
        name = entry[len("slurm_"):] if entry.startswith("slurm_") else ""
        roots.append(JobCgroupRoot(1, name, memory=dirs.get("memory"), cpuacct=dirs.get("cpuacct"),
                                   cpuset=dirs.get("cpuset")))
    base = os.path.join(cgroup_mount, "system.slice")
    for entry in list_dir(base):
        m = _V2_SCOPE.fullmatch(entry)
        if m and os.path.isdir(os.path.join(base, entry)):
            roots.append(JobCgroupRoot(2, m.group(1) or "", unified=os.path.join(base, entry)))
    if node is not None:
        roots = [r for r in roots if node.fullmatch(r.node)]
    return roots


def list_jobs(root: JobCgroupRoot) -> list[JobCgroup]:
    """Job directories in a root (v1: below uid_<uid>/)."""
    jobs: list[JobCgroup] = []
    if root.version == 1:
        base = root.memory or root.cpuacct or ""
        for uid_entry in list_dir(base):
            uid = cg.parse_uid_dir(uid_entry)
            if uid is None:
                continue
            for entry in list_dir(os.path.join(base, uid_entry)):
                jd = cg.parse_job_dir(entry)
                if jd is not None:
                    jobs.append(JobCgroup(root, f"{uid_entry}/{entry}", jd.jobid, jd.sluid, uid))
    else:
        for entry in list_dir(root.unified or ""):
            jd = cg.parse_job_dir(entry)
            if jd is not None:
                jobs.append(JobCgroup(root, entry, jd.jobid, jd.sluid, None))
    return jobs


def read_job_v1(job: JobCgroup, ticks_per_second: int) -> JobReading:
    """cpuacct.stat, memory.{usage,limit,max_usage}_in_bytes, memory.failcnt, memory.stat, oom_kill, tasks."""
    r = JobReading(jobid=job.jobid or job.sluid or "", uid=job.uid)
    if job.root.cpuacct:
        text = read_text(os.path.join(job.root.cpuacct, job.rel, "cpuacct.stat"))
        if text is not None:
            r.cpu = cg.parse_cpuacct_stat(text, ticks_per_second)
    if job.root.cpuset:
        r.cpus = cg.parse_cpu_list(read_text(os.path.join(job.root.cpuset, job.rel, "cpuset.cpus")))
    if not job.root.memory:
        return r
    mem = os.path.join(job.root.memory, job.rel)
    r.memory_usage = cg.parse_int(read_text(os.path.join(mem, "memory.usage_in_bytes")))
    r.memory_limit = cg.parse_limit(read_text(os.path.join(mem, "memory.limit_in_bytes")))
    r.memory_max_usage = cg.parse_int(read_text(os.path.join(mem, "memory.max_usage_in_bytes")))
    r.limit_hits = cg.parse_int(read_text(os.path.join(mem, "memory.failcnt")))
    text = read_text(os.path.join(mem, "memory.stat"))
    if text is not None:
        kv = cg.parse_keyed(text)
        r.bad_lines += kv.bad_lines
        r.memory_rss, r.memory_cache = kv.get("total_rss"), kv.get("total_cache")
    # cgroup v1 counts an OOM kill only in the memcg of the killed process (no propagation to parents),
    # i.e. usually a task_<n> directory: sum the job, its steps and their tasks. Tasks likewise.
    r.oom_kills = _oom_kills_v1(mem)
    tasks = cg.count_lines(read_text(os.path.join(mem, "tasks"))) or 0
    for step in list_dir(mem):
        if not step.startswith("step_"):
            continue
        for path in [os.path.join(mem, step)] + [os.path.join(mem, step, t) for t in
                                                 list_dir(os.path.join(mem, step)) if t.startswith("task_")]:
            tasks += cg.count_lines(read_text(os.path.join(path, "tasks"))) or 0
            oom = _oom_kills_v1(path)
            if oom is not None:
                r.oom_kills = (r.oom_kills or 0) + oom
    r.tasks = tasks if os.path.isdir(mem) else None
    return r


def _oom_kills_v1(path: str) -> int | None:
    text = read_text(os.path.join(path, "memory.oom_control"))
    return cg.parse_oom_control(text) if text is not None else None


def read_job_v2(job: JobCgroup) -> JobReading:
    """cpu.stat, memory.{current,max,peak,events,stat} and pids.current of the job directory."""
    path = os.path.join(job.root.unified or "", job.rel)
    r = JobReading(jobid=job.jobid or job.sluid or "", uid=job.uid)
    text = read_text(os.path.join(path, "cpu.stat"))
    if text is not None:
        r.cpu = cg.parse_cpu_stat(text)
    r.memory_usage = cg.parse_int(read_text(os.path.join(path, "memory.current")))
    r.memory_limit = cg.parse_limit(read_text(os.path.join(path, "memory.max")))
    r.memory_max_usage = cg.parse_int(read_text(os.path.join(path, "memory.peak")))
    text = read_text(os.path.join(path, "memory.events"))
    if text is not None:
        ev = cg.parse_memory_events(text)
        r.limit_hits, r.oom_events, r.oom_kills = ev.max, ev.oom, ev.oom_kill
    text = read_text(os.path.join(path, "memory.stat"))
    if text is not None:
        kv = cg.parse_keyed(text)
        r.bad_lines += kv.bad_lines
        r.memory_rss, r.memory_cache = kv.get("anon"), kv.get("file")
    r.tasks = cg.parse_int(read_text(os.path.join(path, "pids.current")))
    r.cpus = cg.parse_cpu_list(read_text(os.path.join(path, "cpuset.cpus.effective")))
    return r


def job_pids(job: JobCgroup, limit: int = 8) -> list[int]:
    """Up to `limit` pids of the job's user tasks, batch step first (its environment is the job's):
    v2 step_*/user/task_*/cgroup.procs, v1 step_*/task_*/cgroup.procs (or tasks); slurmstepd excluded."""
    base = os.path.join(job.root.unified or job.root.memory or job.root.cpuacct or "", job.rel)
    steps = sorted((s for s in list_dir(base) if s.startswith("step_")), key=lambda s: (s != "step_batch", s))
    pids: list[int] = []
    for step in steps:
        parent = os.path.join(base, step, "user") if job.root.version == 2 else os.path.join(base, step)
        for task in list_dir(parent):
            if task.startswith("task_"):
                text = (read_text(os.path.join(parent, task, "cgroup.procs"), 4096)
                        or read_text(os.path.join(parent, task, "tasks"), 4096))
                pids.extend(int(tok) for tok in (text or "").split() if tok.isascii() and tok.isdigit())
                if len(pids) >= limit:
                    return pids[:limit]
    return pids


@dataclasses.dataclass(frozen=True)
class TaskIdentity:
    """What one task process of a job says about it: the Slurm entries of its environment (None where
    it cannot be read: another user's process to an unprivileged agent) and its uid (status)."""

    environ: JobIdentity | None = None
    uid: int | None = None

    def found(self) -> bool:
        """Whether a task process could be read at all (else: none yet, try again next scrape)."""
        return self.environ is not None or self.uid is not None


def resolve_identity(job: JobCgroup, procfs: str) -> TaskIdentity:
    """The job's identity from one of its task processes, batch step first: SLURM_JOB_ID, SLURM_JOB_ACCOUNT,
    SLURM_JOB_PARTITION and SLURM_JOB_USER in its environ (the prolog file's parser: the format is the
    same), Uid in its status. Tries a few pids, since any one may exit between listing and reading."""
    for pid in job_pids(job):
        status = read_text(os.path.join(procfs, str(pid), "status"), 65536)
        uid = cg.parse_status_uid(status) if status is not None else None
        # quiet: another user's environ is root-only (0400), refused to an unprivileged agent by design.
        data = read_bytes(os.path.join(procfs, str(pid), "environ"), ENVIRON_LIMIT, quiet=True)
        # Entries cut by the read limit or odd entries of the user's own are not errors of ours: not counted.
        environ = parse_job_info(data)[0] if data is not None else None
        if environ is not None and not environ.jobid:
            environ = None  # not a Slurm task's environment (cleared with env -i, or caught before exec)
        if environ is not None or uid is not None:
            return TaskIdentity(environ, uid)
    return TaskIdentity()
