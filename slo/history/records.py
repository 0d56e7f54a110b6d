"""Job records in scheduler-neutral form (one pandas row per finished run) and the account of bad input.

Every loader returns a `JobRecords`: the frame (columns below) and an `InputReport` that says how
many lines or records were read, which were dropped and why, and which were kept but are worth
knowing about (requeues, array tasks, jobs that never started). Nothing is dropped uncounted.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable

import numpy as np
import pandas as pd
from hpcwatch.exporters.scheduler.model import FinishedJob
from hpcwatch.exporters.scheduler.outcomes import CAUSES, OUTCOMES

# Frame columns: labels of the neutral families, then times (Unix seconds, NaN when unknown), weight.
LABELS = ("cluster", "queue", "outcome", "cause")
TIMES = ("submit", "eligible", "start", "end")
COLUMNS = ("jobid", *LABELS, *TIMES, "count")

DROPPED = {
    "malformed": "lines or records that could not be read",
    "truncated": "lines or records cut short (fewer fields than the header, an unfinished JSON object)",
    "step": "job steps (not jobs: sacct without -X)",
    "unknown_state": "states or results not in the scheduler's outcome table",
    "not_finished": "records that are not a job's end (running, pending, a requeued run)",
    "duplicate": "the same run seen more than once (same id, submit and start)",
    "no_end_time": "finished records whose end time is Unknown (cannot be placed in time)",
    "outside_range": "runs that ended outside --from/--to",
}
FLAGGED = {
    "requeued": "job ids with more than one run (requeues); each finished run counts",
    "array_tasks": "array tasks (each task is a job)",
    "array_collapsed": "never-started array records standing for several tasks (counted per task)",
    "never_started": "finished runs that never started (no queue wait)",
    "unknown_time": "records with an Unknown time field",
    "het_merged": "heterogeneous-job components merged into their leader",
}


@dataclasses.dataclass
class InputReport:
    """What a loader read, dropped (and why) and flagged; shown in every report format."""

    source: str
    fmt: str
    records: int = 0
    used: int = 0
    dropped: Counter = dataclasses.field(default_factory=Counter)
    flagged: Counter = dataclasses.field(default_factory=Counter)
    examples: dict[str, list[str]] = dataclasses.field(default_factory=dict)

    def drop(self, reason: str, n: int = 1, example: str | None = None) -> None:
        assert reason in DROPPED, reason
        if n:
            self.dropped[reason] += n
            self._example(reason, example)

    def flag(self, reason: str, n: int = 1, example: str | None = None) -> None:
        assert reason in FLAGGED, reason
        if n:
            self.flagged[reason] += n
            self._example(reason, example)

    def _example(self, reason: str, example: str | None) -> None:
        if example is not None and len(self.examples.setdefault(reason, [])) < 3:
            self.examples[reason].append(example[:160])

    def merge(self, other: InputReport) -> None:
        self.records += other.records
        self.used += other.used
        self.dropped.update(other.dropped)
        self.flagged.update(other.flagged)
        for k, v in other.examples.items():
            self.examples.setdefault(k, []).extend(v[: 3 - len(self.examples.get(k, []))])

    def lines(self) -> list[tuple[str, int, str]]:
        """(kind, n, description) for every non-zero count, dropped first."""
        out = [("dropped", n, DROPPED[k]) for k, n in sorted(self.dropped.items())]
        out += [("kept", n, FLAGGED[k]) for k, n in sorted(self.flagged.items())]
        return out

    def to_dict(self) -> dict:
        return {"source": self.source, "format": self.fmt, "records": self.records, "used": self.used,
                "dropped": {k: {"count": n, "meaning": DROPPED[k]} for k, n in sorted(self.dropped.items())},
                "kept_flagged": {k: {"count": n, "meaning": FLAGGED[k]} for k, n in sorted(self.flagged.items())},
                "examples": self.examples}


@dataclasses.dataclass
class JobRecords:
    frame: pd.DataFrame
    report: InputReport


def empty_frame() -> pd.DataFrame:
    return frame_from_columns({c: [] for c in COLUMNS})


def frame_from_columns(cols: dict) -> pd.DataFrame:
    """A frame with the canonical dtypes: categorical labels, float64 times, int64 count."""
    n = len(cols["end"])
    df = pd.DataFrame({
        "jobid": pd.Series(cols["jobid"]) if "jobid" in cols and len(cols["jobid"]) else pd.Series([None] * n,
                                                                                                 dtype=object),
        "cluster": _categorical(cols["cluster"]),
        "queue": _categorical(cols["queue"]),
        "outcome": _categorical(cols["outcome"], OUTCOMES),
        "cause": _categorical(cols["cause"], CAUSES),
        **{t: pd.to_numeric(pd.Series(cols.get(t, [np.nan] * n)), errors="coerce").astype("float64")
           for t in TIMES},
        "count": pd.Series(cols.get("count", [1] * n)).astype("int64"),
    })
    return df


def _categorical(values, categories=None) -> pd.Categorical:
    if isinstance(values, (pd.Series, pd.Categorical)) and isinstance(values.dtype, pd.CategoricalDtype):
        cat = pd.Categorical(values)
        if categories is not None and list(cat.categories) != list(categories):
            cat = cat.set_categories(categories)
        if categories is None and not all(isinstance(c, str) for c in cat.categories):
            cat = cat.rename_categories([str(c) for c in cat.categories])
        return cat
    return pd.Categorical(values, categories=categories)


def frame_from_finished(runs: Iterable[FinishedJob]) -> pd.DataFrame:
    """FinishedJob runs (from the exporters' own sacct/flux conversion) -> the neutral frame."""
    cols: dict[str, list] = {c: [] for c in COLUMNS}
    for r in runs:
        cols["jobid"].append(r.key)
        for c in LABELS:
            cols[c].append(getattr(r, c))
        for t in TIMES:
            v = getattr(r, t)
            cols[t].append(np.nan if v is None else v)
        cols["count"].append(r.count)
    return frame_from_columns(cols)


def finish(frame: pd.DataFrame, report: InputReport, run_id: pd.Series | None = None) -> JobRecords:
    """Drop duplicate runs and runs without an end time (counted), flag the rest, fill `used`."""
    ident = frame["jobid"] if run_id is None else run_id
    if len(frame):
        # Without a job id two runs cannot be told apart from two jobs: nothing is called a duplicate.
        known = ident.notna().to_numpy()
        if ident.dtype == object:
            known &= (ident != "").to_numpy()
        dup = pd.DataFrame({"k": ident, "s": frame["submit"], "t": frame["start"]}).duplicated().to_numpy() & known
        if dup.any():
            report.drop("duplicate", int(dup.sum()), f"run {ident[dup].iloc[0]}")
            frame = frame[~dup]
        no_end = frame["end"].isna().to_numpy()
        if no_end.any():
            report.drop("no_end_time", int(no_end.sum()), f"job {frame['jobid'][no_end].iloc[0]}")
            frame = frame[~no_end]
        report.flag("never_started", int(frame["start"].isna().sum()))
    frame = frame.reset_index(drop=True)
    report.used = len(frame)
    return JobRecords(frame, report)


def concat(parts: list[JobRecords], source: str, fmt: str) -> JobRecords:
    report = InputReport(source, fmt)
    frames = []
    for p in parts:
        report.merge(p.report)
        frames.append(p.frame)
    if not frames:
        return JobRecords(empty_frame(), report)
    if len(frames) == 1:
        return JobRecords(frames[0], report)
    frame = pd.concat(frames, ignore_index=True)
    for c in ("cluster", "queue"):
        frame[c] = frame[c].astype(str).astype("category")
    for c, cats in (("outcome", OUTCOMES), ("cause", CAUSES)):
        frame[c] = pd.Categorical(frame[c].astype(str), categories=cats)
    return JobRecords(frame, report)
