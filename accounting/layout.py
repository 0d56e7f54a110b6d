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
