"""The summary dataset: Parquet files under `<root>/cluster=<name>/month=<YYYY-MM>/`, queried with DuckDB.

Appends are atomic (exporters.atomicfile: a temporary name in the partition directory without the
`.parquet` suffix, so no reader's glob sees it, fsynced and renamed into place); a reader sees the whole file
or nothing. Rows are unique by (cluster, job id, submit time): the writer drops keys the partition
already holds (it keeps the partition's keys in memory after reading them once), and readers
de-duplicate too, since compaction renames its merged file in before it removes the small ones.
Compaction merges a partition's files into one, sorted by job id in row groups of ROW_GROUP rows,
so a look-up by job id reads one row group per month. One writer per dataset (the cluster agent).
"""

from __future__ import annotations

import glob
import logging
import os
import uuid

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
from hpcwatch.accounting import lookup
from hpcwatch.accounting.layout import data_files, deduplicated, partition_dir
from hpcwatch.accounting.record import JobSummary
from hpcwatch.accounting.schema import SCHEMA, to_table
from hpcwatch.exporters.atomicfile import write_atomically

log = logging.getLogger("hpcwatch.accounting.store")

ROW_GROUP = 32_768
COMPACT_FILES = 32       # a partition with more files than this is compacted after an append


class StoreError(RuntimeError):
    """The dataset could not be read or written (the message names the path and why)."""


class SummaryStore:
    """The dataset under `root`: append summaries, compact partitions, look jobs up."""

    def __init__(self, root: str, compact_files: int = COMPACT_FILES) -> None:
        self.root = os.path.abspath(root)
        self.compact_files = compact_files
        self._keys: dict[str, set[tuple[str, int | None]]] = {}   # partition dir -> (jobid, submit)

    # -- layout --
    def partition_dir(self, cluster: str, month: str) -> str:
        return partition_dir(self.root, cluster, month)

    def files(self, cluster: str | None = None) -> list[str]:
        """Every data file (of one cluster, or all), sorted."""
        return data_files(self.root, cluster)

    # -- writing --
    def append(self, summaries: list[JobSummary]) -> int:
        """Write the summaries not already in the dataset; returns how many were written."""
        groups: dict[str, list[JobSummary]] = {}
        for s in summaries:
            groups.setdefault(self.partition_dir(s.cluster, s.month), []).append(s)
        written = 0
        for directory, rows in sorted(groups.items()):
            keys = self._partition_keys(directory)
            fresh = []
            for s in rows:
                k = (s.jobid, None if s.submit is None else int(s.submit))
                if k not in keys:
                    keys.add(k)
                    fresh.append(s)
            if fresh:
                self._write(directory, to_table(fresh), "part")
                written += len(fresh)
            if len(self._dir_files(directory)) > self.compact_files:
                self.compact_dir(directory)
        return written

    def _dir_files(self, directory: str) -> list[str]:
        return sorted(glob.glob(os.path.join(glob.escape(directory), "*.parquet")))

    def _partition_keys(self, directory: str) -> set[tuple[str, int | None]]:
        keys = self._keys.get(directory)
        if keys is None:
            keys = set()
            for path in self._dir_files(directory):
                t = self._read(path, columns=["jobid", "submit"])
                subs = _epoch_s(t.column("submit")).to_pylist()
                keys.update(zip(t.column("jobid").to_pylist(), subs))
            self._keys[directory] = keys
        return keys

    def _read(self, path: str, columns: list[str] | None = None) -> pa.Table:
        try:
            return pq.read_table(path, columns=columns)
        except (OSError, pa.ArrowException) as exc:
            raise StoreError(f"{path}: cannot read: {exc}") from None

    def _write(self, directory: str, table: pa.Table, prefix: str) -> str:
        """Write `table` atomically as a new file in `directory`; returns its path."""
        final = os.path.join(directory, f"{prefix}-{uuid.uuid4().hex}.parquet")
        try:
            write_atomically(final, lambda fh: pq.write_table(table, fh, compression="zstd",
                                                              row_group_size=ROW_GROUP))
        except OSError as exc:
            raise StoreError(f"{final}: cannot write: {exc.strerror or exc}") from None
        return final

    def compact_dir(self, directory: str) -> str | None:
        """Merge a partition's files into one, sorted by job id, duplicates dropped; returns its path."""
        paths = self._dir_files(directory)
        if len(paths) < 2:
            return None
        tables = [self._read(p) for p in paths]
        merged = pa.concat_tables(tables, promote_options="permissive").cast(SCHEMA)
        merged = _dedup(merged).sort_by([("jobid", "ascending"), ("submit", "ascending")])
        out = self._write(directory, merged, "compact")
        for p in paths:
            try:
                os.unlink(p)
            except OSError as exc:
                log.warning("%s: merged into %s but not removed: %s", p, out, exc)
        return out

    def compact(self) -> int:
        """Compact every partition with more than one file; returns how many were compacted."""
        dirs = sorted({os.path.dirname(p) for p in self.files()})
        return sum(1 for d in dirs if self.compact_dir(d) is not None)

    # -- reading --
    def find(self, jobid: str, cluster: str | None = None) -> JobSummary | None:
        """The summary of a job id (the latest submit when several clusters or runs share it)."""
        try:
            return lookup.find(self.root, jobid, cluster)
        except lookup.LookupError_ as exc:
            raise StoreError(str(exc)) from None

    def sql(self, query: str, params: list | None = None) -> list[tuple]:
        """Rows of SQL over the view `summaries`: the whole dataset, de-duplicated by key."""
        files = self.files()
        con = duckdb.connect()
        if files:
            con.execute(f"CREATE VIEW summaries AS SELECT * FROM {deduplicated(files)}")
        else:
            con.register("summaries", SCHEMA.empty_table())
        try:
            return con.execute(query, params or []).fetchall()
        except duckdb.Error as exc:
            raise StoreError(f"{self.root}: query failed: {exc}") from None


def _dedup(table: pa.Table) -> pa.Table:
    """First row of each (cluster, jobid, submit)."""
    keys = list(zip(table.column("cluster").to_pylist(), table.column("jobid").to_pylist(),
                    _epoch_s(table.column("submit")).to_pylist()))
    seen: set = set()
    keep = []
    for i, k in enumerate(keys):
        if k not in seen:
            seen.add(k)
            keep.append(i)
    return table if len(keep) == len(keys) else table.take(keep)


def _epoch_s(column: pa.ChunkedArray) -> pa.ChunkedArray:
    """Timestamps as whole Unix seconds (the unit the keys use)."""
    return pc.cast(pc.cast(column, pa.timestamp("s", tz="UTC"), safe=False), pa.int64())
