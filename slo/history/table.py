"""CSV and Parquet tables of job records -> neutral job records, vectorised for millions of rows.

Columns (case-insensitive; sacct and `flux jobs` names are accepted as aliases):
  end (required), start, submit, eligible: Unix seconds, or ISO 8601 / sacct times (UTC), or Unknown
  outcome + cause (already neutral), or state [+ exit_code, uid] (Slurm), or result
  [+ exception_type, exception_note] (Flux): mapped by the exporters' tables, once per distinct value
  jobid, cluster, queue (or partition), count (tasks a record stands for; default 1): optional
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hpcwatch.exporters.scheduler.outcomes import (
    CAUSES,
    OUTCOMES,
    UnknownStateError,
    flux_outcome,
    slurm_outcome,
)
from hpcwatch.slo.history.records import TIMES, InputReport, JobRecords, finish, frame_from_columns

ALIASES = {"partition": "queue", "jobidraw": "jobid_raw", "id": "jobid", "exitcode": "exit_code",
           "t_submit": "submit", "t_sched": "eligible", "t_run": "start", "t_inactive": "end",
           "returncode": "exit_code", "exception.type": "exception_type", "exception.note": "exception_note"}


USED = frozenset({"jobid", "cluster", "queue", "outcome", "cause", "state", "exit_code", "uid", "result",
                  "exception_type", "exception_note", "submit", "eligible", "start", "end", "count"})


def _normalise(df: pd.DataFrame) -> pd.DataFrame:
    names = {}
    for c in df.columns:
        key = str(c).strip().lower()
        names[c] = ALIASES.get(key, key)
    return df.rename(columns=names)


def read_table(path: str, fmt: str) -> tuple[pd.DataFrame, int]:
    """(raw frame, data lines the parser could not read); CSV rows with extra fields are counted."""
    if fmt == "parquet":
        import pyarrow.parquet as pq

        # Only the columns a job record uses: a 10-million-row table stays within memory.
        names = pq.read_schema(path).names
        wanted = [c for c in names if ALIASES.get(c.strip().lower(), c.strip().lower()) in USED]
        return pd.read_parquet(path, columns=wanted or None), 0
    df = pd.read_csv(path, dtype=str, keep_default_na=False, on_bad_lines="skip", engine="c")
    with open(path, "rb") as fh:
        lines = sum(chunk.count(b"\n") for chunk in iter(lambda: fh.read(1 << 24), b""))
        fh.seek(max(0, fh.tell() - 1))
        if fh.read(1) not in (b"\n", b""):
            lines += 1
    blank = 0  # pandas skips blank lines; they are not records
    return df, max(0, lines - 1 - len(df) - blank)


def _epoch(ts: pd.Series) -> np.ndarray:
    """Datetimes (any resolution) -> Unix seconds, NaN for NaT."""
    secs = (ts - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    return secs.to_numpy(dtype="float64", na_value=np.nan)


def _times(col: pd.Series | None, n: int, report: InputReport, name: str) -> np.ndarray:
    if col is None:
        return np.full(n, np.nan)
    if pd.api.types.is_numeric_dtype(col):
        out = col.to_numpy(dtype="float64", na_value=np.nan)
        return np.where(out > 0, out, np.nan)
    if pd.api.types.is_datetime64_any_dtype(col):
        return _epoch(pd.to_datetime(col, utc=True))
    s = col.astype(str).str.strip()
    num = pd.to_numeric(s, errors="coerce")
    txt = s[num.isna()]
    out = num.to_numpy(dtype="float64", na_value=np.nan).copy()
    if len(txt):
        out[num.isna().to_numpy()] = _epoch(pd.to_datetime(txt, utc=True, errors="coerce", format="ISO8601"))
    unknown = s.str.lower().isin(("unknown",))
    if unknown.any():
        report.flag("unknown_time", int(unknown.sum()), f"{name}: Unknown")
    return np.where(out > 0, out, np.nan)


def _map_unique(cols: list[pd.Series], fn) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Apply fn(*values) -> (outcome, cause) | None | raises, once per distinct value combination."""
    codes, uniques = [], []
    for c in cols:
        k, u = pd.factorize(c, use_na_sentinel=False)
        codes.append(k.astype("int64"))
        uniques.append(u)
    combined = codes[0]
    for k, u in zip(codes[1:], uniques[1:]):
        combined = combined * len(u) + k
    keys, inverse = np.unique(combined, return_inverse=True)
    outc = np.full(len(keys), -1, dtype="int8")      # codes into OUTCOMES / CAUSES
    cause = np.full(len(keys), -1, dtype="int8")
    status = np.zeros(len(keys), dtype="int8")     # 0 ok, 1 not finished, 2 unknown
    for i, key in enumerate(keys):
        vals = []
        for u in reversed(uniques):
            key, r = divmod(int(key), len(u))
            vals.append(u[r])
        try:
            oc = fn(*reversed(vals))
        except UnknownStateError:
            status[i] = 2
            continue
        if oc is None:
            status[i] = 1
        else:
            outc[i], cause[i] = OUTCOMES.index(oc[0]), CAUSES.index(oc[1])
    return (pd.Categorical.from_codes(outc[inverse], categories=OUTCOMES),
            pd.Categorical.from_codes(cause[inverse], categories=CAUSES), status[inverse])


def _take(v, ok: np.ndarray):
    if isinstance(v, pd.Series):
        return v[ok]
    return v[ok] if isinstance(v, (np.ndarray, pd.Categorical)) else v


def _slurm(state, exit_code, uid):
    return slurm_outcome(str(state), str(exit_code) if exit_code is not None else "0:0",
                         int(uid) if str(uid).isdigit() else None)


def _flux(result, etype, note):
    return flux_outcome(str(result), str(etype or ""), str(note or ""))


def load_table(path: str, fmt: str, cluster: str) -> JobRecords:
    report = InputReport(path, fmt)
    raw, bad_lines = read_table(path, fmt)
    report.records = bad_lines
    report.drop("malformed", bad_lines, "rows with more fields than the header" if bad_lines else None)
    return records_from_table(raw, report, cluster)


def records_from_table(raw: pd.DataFrame, report: InputReport, cluster: str) -> JobRecords:
    """A table already in memory (columns as in a CSV) -> neutral job records, bad rows counted in `report`."""
    df = _normalise(raw)
    n = len(df)
    report.records += n
    if "end" not in df.columns or not ({"outcome", "cause"} <= set(df.columns) or "state" in df.columns
                                       or "result" in df.columns):
        report.drop("malformed", n, f"columns {list(df.columns)[:12]}: need end and outcome+cause, state or result")
        return finish(frame_from_columns({"end": [], "cluster": [], "queue": [], "outcome": [], "cause": []}), report)
    ok = np.ones(n, dtype=bool)
    if {"outcome", "cause"} <= set(df.columns):
        outcome = df["outcome"].astype(str).str.strip().to_numpy(dtype=object)
        cause = df["cause"].astype(str).str.strip().to_numpy(dtype=object)
        bad = ~(pd.Series(outcome).isin(OUTCOMES).to_numpy() & pd.Series(cause).isin(CAUSES).to_numpy())
        report.drop("unknown_state", int(bad.sum()),
                    f"outcome {outcome[bad][0]!r}, cause {cause[bad][0]!r}" if bad.any() else None)
        ok &= ~bad
    else:
        if "state" in df.columns:
            cols = [df["state"], df.get("exit_code", pd.Series(["0:0"] * n)), df.get("uid", pd.Series([""] * n))]
            outcome, cause, status = _map_unique(cols, _slurm)
        else:
            cols = [df["result"].astype(str), df.get("exception_type", pd.Series([""] * n)).astype(str),
                    df.get("exception_note", pd.Series([""] * n)).astype(str)]
            outcome, cause, status = _map_unique(cols, _flux)
        report.drop("not_finished", int((status == 1).sum()))
        unknown = status == 2
        report.drop("unknown_state", int(unknown.sum()),
                    f"state {cols[0][unknown].iloc[0]!r}" if unknown.any() else None)
        ok &= status == 0
    numeric_ids = "jobid" in df.columns and pd.api.types.is_numeric_dtype(df["jobid"])
    jobid = df["jobid"].to_numpy() if "jobid" in df.columns else None
    if jobid is not None and not numeric_ids:
        jobid = df["jobid"].astype(str).to_numpy(dtype=object)
        s = pd.Series(jobid)
        steps = s.str.contains(".", regex=False).to_numpy()
        report.drop("step", int((steps & ok).sum()), f"job {jobid[steps][0]}" if steps.any() else None)
        ok &= ~steps
        report.flag("array_tasks", int((s.str.contains("_", regex=False) & pd.Series(ok)).sum()))
    cols_out = {
        "cluster": (df["cluster"].astype("category") if "cluster" in df.columns
                    else pd.Categorical.from_codes(np.zeros(n, dtype="int8"), categories=[cluster])),
        "queue": (df["queue"].astype("category") if "queue" in df.columns
                  else pd.Categorical.from_codes(np.zeros(n, dtype="int8"), categories=[""])),
        "outcome": outcome, "cause": cause,
        "count": pd.to_numeric(df["count"], errors="coerce").fillna(1).to_numpy() if "count" in df.columns
        else np.ones(n, dtype="int64"),
    }
    for t in TIMES:
        cols_out[t] = _times(df.get(t), n, report, t)
    if jobid is not None:
        cols_out["jobid"] = jobid
        ids = pd.Series(cols_out["jobid"])[ok]
        report.flag("requeued", int((ids.value_counts() > 1).sum()))
    del df
    if ok.all():
        frame = frame_from_columns(cols_out)
    else:
        frame = frame_from_columns({k: _take(v, ok) for k, v in cols_out.items()})
    return finish(frame, report)
