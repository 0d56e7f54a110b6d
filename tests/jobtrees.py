"""Node trees with as many running Slurm jobs as a test asks for: the node fixture tree (tests/fixtures/
node/real) linked in, and one cgroup v2 job directory per job id, copied from the v2 jobs fixture's job_77
(Slurm 23.02 on kernel 6: cpu.stat, memory.*, pids.current, cpuset.cpus.effective, step folders)."""

from __future__ import annotations

import os
import shutil

FIX = os.path.normpath(os.path.join(os.path.dirname(__file__), "fixtures"))
NODE = os.path.join(FIX, "node", "real")
JOBS_V2 = os.path.join(FIX, "jobs", "v2")
TEMPLATE_JOB = os.path.join(JOBS_V2, "sys", "fs", "cgroup", "system.slice", "slurmstepd.scope", "job_77")


def _link_entries(src: str, dst: str) -> None:
    os.makedirs(dst, exist_ok=True)
    for name in os.listdir(src):
        link = os.path.join(dst, name)
        if not os.path.lexists(link):
            os.symlink(os.path.join(src, name), link)


def node_with_jobs(root: str, jobids: list[str], node: str = NODE) -> str:
    """`root` holding proc/ and sys/ of `node` plus a running v2 job per id (re-callable: jobs not in
    `jobids` are removed, as when they end); returns root."""
    _link_entries(os.path.join(node, "proc"), os.path.join(root, "proc"))
    _link_entries(os.path.join(JOBS_V2, "proc"), os.path.join(root, "proc"))  # the jobs' task processes
    _link_entries(os.path.join(node, "sys"), os.path.join(root, "sys"))
    scope = os.path.join(root, "sys", "fs", "cgroup", "system.slice", "slurmstepd.scope")
    os.makedirs(scope, exist_ok=True)
    wanted = {f"job_{j}" for j in jobids}
    for name in os.listdir(scope):
        if name not in wanted:
            shutil.rmtree(os.path.join(scope, name))
    for name in sorted(wanted - set(os.listdir(scope))):
        shutil.copytree(TEMPLATE_JOB, os.path.join(scope, name))
    return root
