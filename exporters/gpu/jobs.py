"""Tie GPU processes and GPUs to Slurm jobs: pure parsers for /proc/<pid>/cgroup and for the mapping
directory the Slurm prolog writes, plus thin readers for both.

cgroup paths Slurm gives a job's processes:
  v1: /slurm/uid_<uid>/job_<id>/step_<step>/task_<n>   or   /slurm_<node>/uid_<uid>/job_<id>/...
  v2: /system.slice/slurmstepd.scope/job_<id>/step_<step>/user/task_<n>
      (or <node>_slurmstepd.scope when several slurmd share a host)
Mapping directory: one file per job, named by the job id, listing the job's GPUs (NVML indices or
GPU-/MIG- UUIDs) separated by commas or whitespace; see deploy/slurm/prolog.d/hpcwatch-gpu-map.sh.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping

from hpcwatch.exporters.files import list_dir, log_once, read_text
from hpcwatch.exporters.selfmetrics import record_parse_error

log = logging.getLogger("hpcwatch.collector.gpu")

_SLURM_V1 = re.compile(r"^/slurm(?:_[^/]+)?/uid_\d+/job_(\d+)(?:/|$)")
_SLURM_V2 = re.compile(r"/(?:[^/]+_)?slurmstepd\.scope/job_(\d+)(?:/|$)")
_JOBID = re.compile(r"^\d{1,20}$")
_GPU_KEY = re.compile(r"^(?:\d{1,4}|(?:GPU|MIG)-[0-9A-Za-z][0-9A-Za-z/_-]{0,127})$")


def parse_cgroup_jobid(text: str) -> str | None:
    """The Slurm job id in a /proc/<pid>/cgroup text, or None when the process is in no Slurm job."""
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        path = parts[2].strip()
        m = _SLURM_V1.match(path) or _SLURM_V2.search(path)
        if m:
            return m.group(1)
    return None


def parse_job_map(files: Mapping[str, str]) -> tuple[dict[str, set[str]], int]:
    """{GPU key: job ids} from {file name: content} of the mapping directory, and how many tokens
    were skipped. File names that are not job ids (editor or temp files) are ignored."""
    out: dict[str, set[str]] = {}
    bad = 0
    for name, content in files.items():
        if not _JOBID.match(name):
            continue
        for token in re.split(r"[\s,]+", content.strip()):
            if not token:
                continue
            if not _GPU_KEY.match(token):
                bad += 1
                continue
            out.setdefault(token, set()).add(name)
    return out, bad


def read_pid_jobid(proc_root: str, pid: int) -> str | None:
    """The Slurm job of a host PID, read from <procfs>/<pid>/cgroup (None when gone or not in a job)."""
    text = read_text(os.path.join(proc_root, str(int(pid)), "cgroup"), 64 << 10)
    return None if text is None else parse_cgroup_jobid(text)


def read_job_map(directory: str) -> dict[str, set[str]]:
    """The mapping directory as {GPU key: job ids}; a missing directory is an empty map."""
    files = {}
    for name in list_dir(directory):
        if not _JOBID.match(name):
            continue
        text = read_text(os.path.join(directory, name), 64 << 10)
        if text is not None:
            files[name] = text
    mapping, bad = parse_job_map(files)
    if bad:
        record_parse_error("gpu_job_map", bad)
        log_once(
            log,
            f"jobmap-bad:{directory}",
            "%s: skipped %d GPU entries that are neither an index nor a GPU-/MIG- UUID",
            directory,
            bad,
        )
    return mapping
