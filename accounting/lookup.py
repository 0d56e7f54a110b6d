"""Find one job's summary in the dataset with DuckDB: partition pruning by cluster, row-group pruning by
job id (compacted files are sorted by it), no Arrow import on the way (`job report` starts fast)."""

from __future__ import annotations

import duckdb
from hpcwatch.accounting.layout import data_files, parquet_listing
from hpcwatch.accounting.record import JobSummary


class LookupError_(RuntimeError):
    """The dataset could not be queried (the message names it and why)."""


def find(root: str, jobid: str, cluster: str | None = None) -> JobSummary | None:
    """The summary of a job id (the latest submit when several clusters or runs share it)."""
    files = data_files(root, cluster)
    if not files:
        return None
    sql = (f"SELECT * FROM {parquet_listing(files)} WHERE jobid = ? "
           "ORDER BY submit DESC NULLS LAST, written_at ASC LIMIT 1")
    try:
        cur = duckdb.connect().execute(sql, [jobid])
        names = [d[0] for d in cur.description]
        row = cur.fetchone()
    except duckdb.Error as exc:
        raise LookupError_(f"{root}: query failed: {exc}") from None
    return None if row is None else JobSummary.from_row(dict(zip(names, row)))
