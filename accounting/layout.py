"""Where the summary dataset keeps its files: `<root>/cluster=<name>/month=<YYYY-MM>/*.parquet`
(Hive-style partitions, which Spark, Trino, ClickHouse and DuckDB all read)."""

from __future__ import annotations

import glob
import os
import urllib.parse


def part_name(value: str) -> str:
    """A partition value as a directory name: percent-encoded, never '.', '..' or empty."""
    text = urllib.parse.quote(value, safe="")
    if text in ("", ".", ".."):
        return text.replace(".", "%2E") or "__none__"
    return text


def partition_dir(root: str, cluster: str, month: str) -> str:
    return os.path.join(root, f"cluster={part_name(cluster)}", f"month={part_name(month)}")


def data_files(root: str, cluster: str | None = None) -> list[str]:
    """Every data file (of one cluster, or all), sorted; temporary files never match."""
    c = f"cluster={part_name(cluster)}" if cluster is not None else "cluster=*"
    return sorted(glob.glob(os.path.join(glob.escape(root), c, "month=*", "*.parquet")))


def sql_str(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def parquet_listing(files: list[str]) -> str:
    """A DuckDB read_parquet() call over the files (columns by name, so older layouts read too)."""
    return f"read_parquet([{','.join(sql_str(f) for f in files)}], union_by_name=true, hive_partitioning=false)"


def month_of_file(path: str) -> str:
    """The month partition a data file sits in ('2026-03'), percent-decoded."""
    return urllib.parse.unquote(os.path.basename(os.path.dirname(path)).removeprefix("month="))


def deduplicated(files: list[str]) -> str:
    """A relation over the files with one row per (cluster, jobid, submit).

    Keys repeat only inside a partition that holds several files (a compaction between its rename and
    the removal of the parts it merged), so only those partitions pay for the window; a compacted
    month is read as it is.
    """
    by_dir: dict[str, list[str]] = {}
    for f in files:
        by_dir.setdefault(os.path.dirname(f), []).append(f)
    single = [fs[0] for fs in by_dir.values() if len(fs) == 1]
    multi = [f for fs in by_dir.values() if len(fs) > 1 for f in fs]
    parts = []
    if single:
        parts.append(f"SELECT * FROM {parquet_listing(single)}")
    if multi:
        parts.append(f"SELECT * FROM {parquet_listing(multi)} QUALIFY row_number() "
                     "OVER (PARTITION BY cluster, jobid, submit ORDER BY written_at) = 1")
    return "(" + " UNION ALL BY NAME ".join(parts) + ")"
