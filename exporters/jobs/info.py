"""Who a job belongs to beyond its uid: the per-job file the Slurm prolog writes
(deploy/slurm/prolog.d/hpcwatch-job-info.sh), parsed purely, and its one reader.

Format: `NAME=value` entries, each ended by a NUL byte, as in /proc/<pid>/environ; the names are the
prolog's SLURM_JOB_ACCOUNT, SLURM_JOB_PARTITION, SLURM_JOB_USER and SLURM_JOB_UID (and SLURM_JOB_ID,
which a task's environment holds). Because the format is the environment's, the same parser reads a
job task's /proc/<pid>/environ, the collector's fallback where a job has no prolog file. An environment
value cannot contain a NUL, so any account name (newlines, quotes, `|`, UTF-8) stays one entry; label
values then follow exporters/labels.py. Unknown names are ignored (a newer prolog may write more);
an entry without `=`, or a last entry without its NUL (a file cut short), is counted as a parse error.
Where the file is absent (prolog not installed, or not run yet) the account and partition are unknown:
the collector exports them empty and never guesses.
"""

from __future__ import annotations

import dataclasses
import os
import re

from hpcwatch.exporters import labels
from hpcwatch.exporters.files import read_bytes

DEFAULT_DIR = "/run/hpcwatch/jobs"
LIMIT = 16 << 10  # bytes read of one file: the prolog writes at most ~3 KiB
_JOBID = re.compile(r"[0-9]{1,20}")  # ASCII digits only (\d is any Unicode digit), whole value
# entry name -> JobIdentity field
FIELDS = {"SLURM_JOB_ACCOUNT": "account", "SLURM_JOB_PARTITION": "partition", "SLURM_JOB_USER": "user",
          "SLURM_JOB_UID": "uid", "SLURM_JOB_ID": "jobid"}


@dataclasses.dataclass(frozen=True)
class JobIdentity:
    """What the prolog (or a task's environment) says of a job, as label values ("" where it said nothing);
    uid None when absent; jobid the numeric job id without leading zeros, "" when absent."""

    account: str = ""
    partition: str = ""
    user: str = ""
    uid: int | None = None
    jobid: str = ""


def parse_job_info(data: bytes) -> tuple[JobIdentity, int]:
    """The identity in one prolog file and how many entries were malformed."""
    found: dict[str, str] = {}
    bad = 0
    entries = data.split(b"\0")
    if entries[-1]:  # no NUL after the last entry: the file was cut short
        bad += 1
    for raw in entries[:-1]:
        name, sep, value = raw.partition(b"=")
        if not sep:
            bad += 1
            continue
        field = FIELDS.get(name.decode("ascii", "replace"))
        if field is not None:
            found[field] = value.decode("utf-8", "replace")
    uid_text = found.pop("uid", "")
    uid = int(uid_text) if uid_text.isascii() and uid_text.isdigit() else None
    if uid_text and uid is None:
        bad += 1
    jobid_text = found.pop("jobid", "")
    jobid = str(int(jobid_text)) if _JOBID.fullmatch(jobid_text) else ""
    if jobid_text and not jobid:
        bad += 1
    return JobIdentity(**{k: labels.value(v) for k, v in found.items()}, uid=uid, jobid=jobid), bad


def read_job_info(directory: str, jobid: str) -> tuple[JobIdentity | None, int]:
    """The prolog's file of `jobid` in `directory`, parsed; (None, 0) when there is none."""
    if not _JOBID.fullmatch(jobid):
        return None, 0
    data = read_bytes(os.path.join(directory, jobid), LIMIT)
    if data is None:
        return None, 0
    return parse_job_info(data)
