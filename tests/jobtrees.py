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


def _mount_points(mounts: str, root: str) -> None:
    """The node's mount points as folders under `root` (its --path.rootfs), so statvfs answers for them."""
    with open(mounts) as fh:
        for line in fh:
            fields = line.split()
            if len(fields) > 1 and not fields[1].startswith(("/proc", "/sys")):
                os.makedirs(os.path.join(root, fields[1].replace("\\040", " ").lstrip("/")), exist_ok=True)


def node_with_jobs(root: str, jobids: list[str], node: str = NODE) -> str:
    """`root` holding proc/ and sys/ of `node` plus a running v2 job per id (re-callable: jobs not in
    `jobids` are removed, as when they end); returns root."""
    _link_entries(os.path.join(node, "proc"), os.path.join(root, "proc"))
    _link_entries(os.path.join(JOBS_V2, "proc"), os.path.join(root, "proc"))  # the jobs' task processes
    _link_entries(os.path.join(node, "sys"), os.path.join(root, "sys"))
    _mount_points(os.path.join(node, "proc", "1", "mounts"), root)
    scope = os.path.join(root, "sys", "fs", "cgroup", "system.slice", "slurmstepd.scope")
    os.makedirs(scope, exist_ok=True)
    wanted = {f"job_{j}" for j in jobids}
    for name in os.listdir(scope):
        if name not in wanted:
            shutil.rmtree(os.path.join(scope, name))
    for name in sorted(wanted - set(os.listdir(scope))):
        shutil.copytree(TEMPLATE_JOB, os.path.join(scope, name))
    return root


def advance(root: str, seconds: float = 10.0) -> None:
    """Every job of `root` used `seconds` more user CPU, and the node's /proc/stat as much in total (a
    copy replaces the link), so per-interval consumers (energy attribution) see the jobs working."""
    scope = os.path.join(root, "sys", "fs", "cgroup", "system.slice", "slurmstepd.scope")
    names = sorted(os.listdir(scope))
    for name in names:
        path = os.path.join(scope, name, "cpu.stat")
        with open(path) as fh:
            fields = dict(line.split() for line in fh if line.strip())
        for key in ("usage_usec", "user_usec"):
            fields[key] = str(int(fields[key]) + round(seconds * 1e6))
        with open(path, "w") as fh:
            fh.write("".join(f"{k} {v}\n" for k, v in fields.items()))
    stat = os.path.join(root, "proc", "stat")
    with open(stat) as fh:
        lines = fh.read().splitlines()
    os.remove(stat)
    ticks = round(seconds * len(names) * 100)  # USER_HZ
    out = []
    for line in lines:
        parts = line.split()
        if parts and parts[0].startswith("cpu"):
            parts[1] = str(int(parts[1]) + (ticks if parts[0] == "cpu" else ticks // max(1, _cpus(lines))))
            line = " ".join(parts) if parts[0] != "cpu" else "cpu  " + " ".join(parts[1:])
        out.append(line)
    with open(stat, "w") as fh:
        fh.write("\n".join(out) + "\n")


def _cpus(stat_lines: list[str]) -> int:
    return sum(1 for line in stat_lines if line.startswith("cpu") and not line.startswith("cpu "))
