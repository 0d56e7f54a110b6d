"""`sacct --parsable2` dumps (with or without a header line) -> neutral job records.

The fields are put in the exporter's order and read by the exporter's own parser and conversion
(`hpcwatch.exporters.slurm.parse.parse_sacct` / `sacct_to_finished`), so states map to outcome and
cause by the one Slurm table. This module only does what a dump adds: a header in any field order,
a `Cluster` column, step records, truncated lines, and counting what the conversion leaves out.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from hpcwatch.exporters.scheduler.outcomes import UnknownStateError, slurm_outcome
from hpcwatch.exporters.slurm.parse import SACCT_FIELDS, parse_sacct, sacct_to_finished
from hpcwatch.slo.history.records import InputReport, JobRecords, finish, frame_from_finished

# Fields a dump may leave out, and what stands in for them.
OPTIONAL = {"JobIDRaw": None, "ExitCode": "0:0", "Submit": "Unknown", "Eligible": "Unknown", "Start": "Unknown",
            "User": "", "UID": "", "Account": "", "NNodes": "0", "Partition": ""}
REQUIRED = ("JobID", "State", "End")
TIME_FIELDS = ("Submit", "Eligible", "Start", "End")
CHUNK = 20000


def looks_like_sacct(first_line: str) -> bool:
    cols = first_line.strip().split("|")
    return cols[0] in ("JobID", "JobIDRaw") or (len(cols) == len(SACCT_FIELDS) and "|" in first_line)


def load_sacct(lines: Iterable[str], source: str, cluster: str, progress=None) -> JobRecords:
    """Read a dump line by line; `progress(n_bytes)` is called as lines are consumed."""
    report = InputReport(source, "sacct")
    it = iter(lines)
    header = None
    for first in it:
        if progress:
            progress(len(first))
        if first.strip():
            header = first.rstrip("\n").split("|")
            break
    if header is None:
        return finish(frame_from_finished([]), report)
    pending: list[str] = []
    if header[0] not in ("JobID", "JobIDRaw"):
        pending.append("|".join(header))      # no header: the exporter's own field order
        header = list(SACCT_FIELDS)
    missing = [f for f in REQUIRED if f not in header]
    if missing:
        report.drop("malformed", 1, f"header lacks {', '.join(missing)}: {'|'.join(header)}")
        return finish(frame_from_finished([]), report)
    idx = {f: header.index(f) for f in header}
    by_cluster: dict[str, list[str]] = {}
    ids: Counter = Counter()
    seen: set[int] = set()
    lineno = 1

    def take(line: str) -> None:
        nonlocal lineno
        lineno += 1
        text = line.rstrip("\n")
        if not text.strip():
            return
        report.records += 1
        p = text.split("|")
        if len(p) != len(header):
            kind = "truncated" if 1 < len(p) < len(header) else "malformed"
            report.drop(kind, 1, f"line {lineno}: {text}")
            return
        jobid = p[idx["JobID"]].strip()
        if "." in jobid:
            report.drop("step", 1, f"line {lineno}: {jobid}")
            return
        if any(p[idx[f]].strip() == "Unknown" for f in TIME_FIELDS if f in idx):
            report.flag("unknown_time", 1, f"line {lineno}: {text}")
        key = hash(text)
        if key not in seen:             # an exact repeat is a duplicate, not a requeue
            seen.add(key)
            ids[jobid] += 1
        row = []
        for f in SACCT_FIELDS:
            if f in idx:
                row.append(p[idx[f]])
            elif f == "JobIDRaw":
                row.append(jobid.split("_", 1)[0])
            else:
                row.append(OPTIONAL[f])
        name = p[idx["Cluster"]].strip() if "Cluster" in idx else cluster
        by_cluster.setdefault(name or cluster, []).append("|".join(row))

    for line in pending:
        lineno -= 1
        take(line)
    for line in it:
        if progress:
            progress(len(line))
        take(line)
    runs = []
    for name, rows in by_cluster.items():
        for i in range(0, len(rows), CHUNK):
            runs.extend(_convert(rows[i:i + CHUNK], name, report))
    report.flag("requeued", sum(1 for n in ids.values() if n > 1))
    report.flag("array_tasks", sum(1 for j in ids if "_" in j and "_[" not in j))
    report.flag("array_collapsed", sum(1 for r in runs if r.count > 1))
    return finish(frame_from_finished(runs), report)


def _convert(rows: list[str], cluster: str, report: InputReport):
    records, skipped = parse_sacct("\n".join(rows))
    report.drop("malformed", skipped, None)
    runs, unknown = sacct_to_finished(records, cluster)
    unknown_examples = []
    not_finished = het = 0
    outcome_of: dict[str, tuple | None | str] = {}
    for r in records:
        if r.state not in outcome_of:
            try:
                outcome_of[r.state] = slurm_outcome(r.state, r.exit_code, r.uid)
            except UnknownStateError:
                outcome_of[r.state] = "unknown"
        oc = outcome_of[r.state]
        if oc is None:
            not_finished += 1
        elif oc == "unknown":
            unknown_examples.append(f"job {r.jobid}: state {r.state!r}")
        elif "+" in r.jobid:
            het += 1
    report.drop("unknown_state", unknown, unknown_examples[0] if unknown_examples else None)
    report.drop("not_finished", not_finished, None)
    leaders = len({r.jobid.split("+", 1)[0] for r in records if "+" in r.jobid and outcome_of.get(r.state)
                   not in (None, "unknown")})
    report.flag("het_merged", het - leaders)
    return runs
