"""The `jobs` collector (node agent, live): per-job CPU, memory, OOM and task counts from Slurm job cgroups.

Series carry `jobid`; identity lives once in `hpc_job_info{jobid,user,uid,account,partition}`: the uid from
the cgroup, the account and partition from the Slurm prolog's per-job file (`info`), or where a job has
none, from the environment of one of its task processes (root agents only: `identity`). Families are built
fresh per scrape, so a job that ended is gone from the next scrape. Layouts: see `tree`.
"""

from __future__ import annotations

import functools
import logging
import os
import pwd
from collections.abc import Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.families import FamilyTable, counter, gauge
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.jobcap import MAX_JOBS_OPTION, JobCap
from hpcwatch.exporters.jobs import tree
from hpcwatch.exporters.jobs.info import DEFAULT_DIR, JobIdentity, read_job_info
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.jobs")

FAMILIES = FamilyTable([
    gauge("hpc_job_info",
          "Identity of a job running on this node (value 1): its owner as user name and uid, and the account and "
          "partition Slurm runs it under (from the prolog's file, deploy/slurm/prolog.d/hpcwatch-job-info.sh; "
          "without one, from a task's environment where the agent may read it; else empty).",
          "jobid", "user", "uid", "account", "partition"),
    counter("hpc_job_cpu_seconds_total",
            "CPU time the job's processes used, by mode (user or system), from cpuacct.stat (cgroup v1) or cpu.stat"
            " (v2).", "jobid", "mode"),
    gauge("hpc_job_memory_usage_bytes",
          "Memory the job's cgroup is charged for now, page cache included (memory.usage_in_bytes in v1, "
          "memory.current in v2).", "jobid"),
    gauge("hpc_job_memory_rss_bytes",
          "Anonymous memory (RSS) of the job's processes (memory.stat total_rss in v1, anon in v2).", "jobid"),
    gauge("hpc_job_memory_cache_bytes",
          "Page cache charged to the job (memory.stat total_cache in v1, file in v2).", "jobid"),
    gauge("hpc_job_memory_limit_bytes",
          "Memory limit of the job's cgroup, what the job asked for with --mem; absent when the job is not "
          "memory-constrained.", "jobid"),
    gauge("hpc_job_memory_max_usage_bytes",
          "Highest memory usage of the job's cgroup since it started (memory.max_usage_in_bytes in v1, memory.peak "
          "in v2 on kernels >= 5.19).", "jobid"),
    gauge("hpc_job_cpus",
          "CPUs allocated to the job on this node (size of its cpuset: cpuset.cpus in v1, cpuset.cpus.effective in "
          "v2); the denominator of CPU efficiency.", "jobid"),
    gauge("hpc_job_tasks", "Kernel tasks (processes and threads) in the job's cgroup, slurmstepd included.", "jobid"),
    counter("hpc_job_memory_limit_hits_total",
            "Times the job's memory usage hit its limit (memory.failcnt in v1, memory.events max in v2).", "jobid"),
    counter("hpc_job_oom_events_total",
            "Times the kernel's OOM killer was invoked for the job's cgroup (memory.events oom, cgroup v2 only).",
            "jobid"),
    counter("hpc_job_oom_kills_total",
            "Processes of the job killed by the kernel's OOM killer (memory.oom_control oom_kill in v1 summed over "
            "the job and its steps, memory.events oom_kill in v2).", "jobid"),
])

PARSE_SOURCE = "jobs_cgroup"
INFO_PARSE_SOURCE = "jobs_info"
NO_IDENTITY = JobIdentity()


SLURMD_PATHS = ("/usr/sbin/slurmd", "/usr/bin/slurmd", "/usr/local/sbin/slurmd", "/opt/slurm/sbin/slurmd")


@functools.lru_cache(maxsize=4096)
def user_name(uid: int) -> str:
    """Login name of a uid (cached: jobs of one user come and go all day); the number when unknown."""
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return str(uid)


@register
class JobsCollector(Collector):
    name = "jobs"
    help = "Per-job CPU, memory, OOM and task counts from Slurm job cgroups (v1, v2, SLUID layouts)"
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option("nodes", None, "regexp of slurmd node names whose job cgroups are read (multiple-slurmd hosts); "
               "empty reads all", type=opt.regexp),
        Option("info-dir", DEFAULT_DIR, "directory where the Slurm prolog records each job's account and partition "
               "(deploy/slurm/prolog.d/hpcwatch-job-info.sh; under --path.rootfs; '' disables)"),
        Option("environ", True, "where a job has no prolog file, take its account and partition from a task "
               "process's environment (readable by a root agent only; the job's owner can alter it)", type=bool),
        MAX_JOBS_OPTION,
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.mount = ctx.paths.sys("fs", "cgroup")
        self.procfs = ctx.paths.proc()
        self.nodes = ctx.option("nodes")
        self.job_cap = JobCap(ctx.option("max-jobs"))
        self.ticks = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100
        info_dir = ctx.option("info-dir")
        self.info_dir = ctx.paths.root(info_dir) if info_dir else ""
        self.environ = ctx.option("environ")
        # (root path, rel) -> what a task process said, read once per job, only when the path or the
        # prolog's file leaves something unknown.
        self._tasks: dict[tuple[str, str], tree.TaskIdentity] = {}
        # jobid -> what the prolog recorded, read once per job (a running job's account does not change).
        self._info: dict[str, JobIdentity] = {}

    def available(self) -> str | None:
        if not os.path.isdir(self.mount):
            return f"{self.mount} not found (no cgroup filesystem)"
        if tree.find_roots(self.mount, self.nodes):
            return None
        # slurmd creates its cgroup root lazily (cgroup v1: with the first job), so a compute node with
        # slurmd installed but no job yet still gets the collector; it reports no jobs until one starts.
        for path in SLURMD_PATHS:
            if os.path.exists(self.ctx.paths.root(path)):
                return None
        return (f"no Slurm job cgroup hierarchy under {self.mount} (slurm*/ or system.slice/*slurmstepd.scope) "
                "and no slurmd on this host")

    def _task(self, job: tree.JobCgroup) -> tree.TaskIdentity:
        """What a task process of the job says (cached once any process could be read)."""
        key = (job.root.unified or job.root.memory or "", job.rel)
        found = self._tasks.get(key)
        if found is None:
            found = tree.resolve_identity(job, self.procfs)
            if found.found():
                self._tasks[key] = found
        return found

    def _identify(self, job: tree.JobCgroup) -> tuple[str, int | None]:
        """The job's jobid label and uid: from the path when it says so, else from a task process."""
        if job.jobid is not None and job.uid is not None:
            return job.jobid, job.uid
        task = self._task(job)
        jobid = job.jobid or (task.environ.jobid if task.environ else "") or job.sluid or ""
        return jobid, job.uid if job.uid is not None else task.uid

    def read_jobs(self) -> list[tree.JobReading]:
        """One reading per live job, deduplicated by jobid (first root wins)."""
        readings: dict[str, tree.JobReading] = {}
        seen: set[tuple[str, str]] = set()
        for root in tree.find_roots(self.mount, self.nodes):
            for job in tree.list_jobs(root):
                jobid, uid = self._identify(job)
                key = (job.root.unified or job.root.memory or "", job.rel)
                seen.add(key)
                if jobid in readings:
                    log_once(log, f"dup:{jobid}", "job %s appears under more than one cgroup root; "
                             "keeping the first (%s) — use --collector.jobs.nodes on multi-slurmd hosts",
                             jobid, root)
                    continue
                r = tree.read_job_v1(job, self.ticks) if root.version == 1 else tree.read_job_v2(job)
                if r.bad_lines:
                    record_parse_error(PARSE_SOURCE, r.bad_lines)
                if r.empty():  # ended between listing and reading
                    continue
                r.jobid, r.uid = jobid, uid
                r.identity = self.identity(job, jobid, uid)
                readings[jobid] = r
        for key in [k for k in self._tasks if k not in seen]:
            del self._tasks[key]
        for jobid in [j for j in self._info if j not in readings]:
            del self._info[jobid]
        return [readings[k] for k in sorted(readings)]

    def identity(self, job: tree.JobCgroup, jobid: str, uid: int | None) -> JobIdentity:
        """The job's account, partition and user, from the one source that has them: the prolog's file
        first (any agent can read it, and the job's owner cannot change it), else the environment of a
        task process (a root agent's fallback where the prolog is not installed), else unknown."""
        recorded = self.prolog_record(jobid, uid)
        if recorded is not None:
            return recorded
        if self.environ:
            task = self._task(job)
            if task.environ is not None:
                return task.environ
        return NO_IDENTITY

    def prolog_record(self, jobid: str, uid: int | None) -> JobIdentity | None:
        """The prolog's record of the job (cached once found), or None where there is none (yet)."""
        known = self._info.get(jobid)
        if known is not None or not self.info_dir:
            return known
        found, bad = read_job_info(self.info_dir, jobid)
        if bad:
            record_parse_error(INFO_PARSE_SOURCE, bad)
            log_once(log, f"info-bad:{jobid}", "%s/%s: %d malformed entries skipped (expected NAME=value entries "
                     "each ended by a NUL byte)", self.info_dir, jobid, bad)
        if found is None:
            return None
        if uid is not None and found.uid is not None and found.uid != uid:
            # Another job's file (a job id reused after a controller reset): its account is not this job's.
            log_once(log, f"info-uid:{jobid}:{found.uid}", "%s/%s names uid %d but the job's cgroup belongs to "
                     "uid %d; ignored", self.info_dir, jobid, found.uid, uid)
            return None
        self._info[jobid] = found
        return found

    def collect(self) -> Iterator[Metric]:
        yield from self.job_cap.apply(self._families())

    def _families(self) -> Iterator[Metric]:
        """Every job's families, before the cap."""
        info = FAMILIES.new("hpc_job_info")
        cpu = FAMILIES.new("hpc_job_cpu_seconds_total")
        gauges = {
            "memory_usage": FAMILIES.new("hpc_job_memory_usage_bytes"),
            "memory_rss": FAMILIES.new("hpc_job_memory_rss_bytes"),
            "memory_cache": FAMILIES.new("hpc_job_memory_cache_bytes"),
            "memory_limit": FAMILIES.new("hpc_job_memory_limit_bytes"),
            "memory_max_usage": FAMILIES.new("hpc_job_memory_max_usage_bytes"),
            "cpus": FAMILIES.new("hpc_job_cpus"),
            "tasks": FAMILIES.new("hpc_job_tasks"),
        }
        counters = {
            "limit_hits": FAMILIES.new("hpc_job_memory_limit_hits_total"),
            "oom_events": FAMILIES.new("hpc_job_oom_events_total"),
            "oom_kills": FAMILIES.new("hpc_job_oom_kills_total"),
        }
        for r in self.read_jobs():
            ident = r.identity
            uid = r.uid if r.uid is not None else ident.uid
            # Slurm's user name where the prolog recorded it (right even where this host lacks the user).
            user = ident.user or (user_name(uid) if uid is not None else "")
            info.add_metric([r.jobid, user, "" if uid is None else str(uid), ident.account, ident.partition], 1)
            if r.cpu is not None:
                cpu.add_metric([r.jobid, "user"], r.cpu.user)
                cpu.add_metric([r.jobid, "system"], r.cpu.system)
            for attr, fam in list(gauges.items()) + list(counters.items()):
                value = getattr(r, attr)
                if value is not None:
                    fam.add_metric([r.jobid], value)
        yield info
        yield cpu
        yield from gauges.values()
        yield from counters.values()
