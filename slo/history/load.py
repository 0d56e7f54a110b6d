"""`--jobs FILE`: find the format (sacct dump, flux jobs JSON, CSV, Parquet) and load neutral job records."""

from __future__ import annotations

import os

from hpcwatch.slo.history.flux import load_flux
from hpcwatch.slo.history.records import InputReport, JobRecords, concat, empty_frame
from hpcwatch.slo.history.sacct import load_sacct, looks_like_sacct
from hpcwatch.slo.history.table import load_table

FORMATS = ("auto", "sacct", "flux", "csv", "parquet")


class JobsInputError(ValueError):
    """A --jobs file that cannot be opened or whose format cannot be told (the message says which)."""


def detect_format(path: str) -> str:
    ext = os.path.splitext(path)[1].lower()
    if ext in (".parquet", ".pq"):
        return "parquet"
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise JobsInputError(f"{path}: {exc.strerror or exc}") from None
    if head.startswith(b"PAR1"):
        return "parquet"
    text = head.decode("utf-8", "replace").lstrip()
    first = text.splitlines()[0] if text else ""
    if ext in (".json", ".jsonl") or text.startswith(("{", "[")):
        return "flux"
    if ext == ".csv":
        return "csv"
    if looks_like_sacct(first) or "|" in first:
        return "sacct"
    if "," in first:
        return "csv"
    raise JobsInputError(f"{path}: cannot tell the format (give --jobs-format sacct|flux|csv|parquet)")


def load_jobs(paths: list[str], fmt: str = "auto", cluster: str = "default", progress=None) -> JobRecords:
    """Every file's records in one frame; each file's format detected unless `fmt` is given."""
    parts = []
    for path in paths:
        kind = detect_format(path) if fmt == "auto" else fmt
        try:
            if kind == "sacct":
                with open(path, encoding="utf-8", errors="replace") as fh:
                    parts.append(load_sacct(fh, path, cluster, progress))
            elif kind == "flux":
                with open(path, encoding="utf-8", errors="replace") as fh:
                    text = fh.read()
                if progress:
                    progress(len(text))
                parts.append(load_flux(text, path, cluster))
            else:
                parts.append(load_table(path, kind, cluster))
                if progress:
                    progress(os.path.getsize(path))
        except OSError as exc:
            raise JobsInputError(f"{path}: {exc.strerror or exc}") from None
        except (ValueError, ImportError) as exc:
            if isinstance(exc, JobsInputError):
                raise
            bad = InputReport(path, kind)
            bad.records = 1
            bad.drop("malformed", 1, f"{kind} reader: {str(exc).splitlines()[0][:140]}")
            parts.append(JobRecords(empty_frame(), bad))
    fmts = sorted({p.report.fmt for p in parts})
    return concat(parts, ", ".join(paths), "+".join(fmts))
