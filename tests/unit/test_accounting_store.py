"""The summary dataset: partitioned by cluster and month, appended atomically, one row per (cluster, job id,
submit time), compacted, queried with DuckDB — and read by a second, unrelated engine (chDB, ClickHouse)."""

from __future__ import annotations

import os

import pyarrow.parquet as pq
import pytest
from hpcwatch.accounting.record import GpuUsage, JobSummary, NodeUsage, month_of
from hpcwatch.accounting.schema import SCHEMA
from hpcwatch.accounting.store import SummaryStore
from hypothesis import given, settings
from hypothesis import strategies as st

T0 = 1_767_225_600.0   # 2026-01-01T00:00:00Z


def job(jobid: str, submit: float = T0, cluster: str = "alpha", end: float | None = None, **kw) -> JobSummary:
    end = submit + 3600 if end is None else end
    s = JobSummary(cluster=cluster, jobid=jobid, job_id_raw=int(jobid.split("_")[0]), submit=submit,
                   start=submit + 60, end=end, elapsed_s=end - submit - 60, user="alice", partition="cpu",
                   outcome="success", cause="none", month=month_of(end), written_at=end + 5, **kw)
    return s


def test_layout_append_and_find(tmp_path):
    store = SummaryStore(str(tmp_path))
    rich = job("12", per_node=[NodeUsage("n1", 4, 100.0, 1 << 30, 2 << 30, 5e4),
                               NodeUsage("n2", 4, 90.0, 1 << 30, 2 << 30, 4e4)], nnodes=2,
               per_gpu=[GpuUsage("n1", "0", "GPU-a", "NVIDIA H100", 0.75, 0.5, 3 << 30)], missing=["x: y"])
    assert store.append([rich, job("13", cluster="beta"), job("14", end=T0 + 40 * 86400)]) == 3
    files = [os.path.relpath(f, tmp_path) for f in store.files()]
    assert [os.path.dirname(f) for f in files] == ["cluster=alpha/month=2026-01", "cluster=alpha/month=2026-02",
                                                  "cluster=beta/month=2026-01"]
    assert pq.read_schema(store.files()[0]).remove_metadata() == SCHEMA
    assert store.find("12") == rich
    assert store.find("13", cluster="alpha") is None and store.find("13", cluster="beta").cluster == "beta"
    assert store.find("99") is None


def test_duplicates_are_dropped_in_a_batch_across_appends_and_restarts(tmp_path):
    store = SummaryStore(str(tmp_path))
    assert store.append([job("1"), job("1"), job("2")]) == 2
    assert store.append([job("2"), job("3")]) == 1
    again = SummaryStore(str(tmp_path))            # a restarted writer reads the keys back from the files
    assert again.append([job("1"), job("3"), job("4")]) == 1
    # A requeued run is a new submit: a row of its own.
    assert again.append([job("1", submit=T0 + 10)]) == 1
    n = again.sql("SELECT count(*) FROM summaries")[0][0]
    assert n == 5


def test_a_half_written_file_is_never_read(tmp_path):
    store = SummaryStore(str(tmp_path))
    store.append([job("1")])
    part = os.path.dirname(store.files()[0])
    with open(os.path.join(part, ".part-deadbeef.parquet.partial"), "wb") as fh:
        fh.write(b"PAR1 truncated by a crash")
    assert len(store.files()) == 1
    assert store.find("1") is not None
    assert SummaryStore(str(tmp_path)).append([job("2")]) == 1


def test_compaction_merges_sorts_and_readers_dedup_meanwhile(tmp_path):
    store = SummaryStore(str(tmp_path), compact_files=4)
    for i in range(4):
        store.append([job(str(100 - i))])
    assert len(store.files()) == 4
    store.append([job("50")])              # the fifth file triggers compaction
    files = store.files()
    assert len(files) == 1 and os.path.basename(files[0]).startswith("compact-")
    assert pq.read_table(files[0], columns=["jobid"]).column("jobid").to_pylist() == ["100", "50", "97", "98", "99"]
    # Between the merged file's rename and the small files' removal both exist: readers see each job once.
    pq.write_table(pq.read_table(files[0]), os.path.join(os.path.dirname(files[0]), "part-leftover.parquet"))
    assert store.sql("SELECT count(*) FROM summaries")[0][0] == 5
    assert store.find("97").jobid == "97"


def test_cluster_names_cannot_escape_the_dataset(tmp_path):
    store = SummaryStore(str(tmp_path / "ds"))
    store.append([job("1", cluster="../../etc"), job("2", cluster=".."), job("3", cluster="a/b")])
    for f in store.files():
        assert os.path.realpath(f).startswith(os.path.realpath(tmp_path / "ds") + os.sep)
    assert store.find("1", cluster="../../etc").cluster == "../../etc"


def test_a_second_engine_reads_the_same_files(tmp_path):
    """chDB (in-process ClickHouse) reads the dataset as written, nested per-node columns included."""
    chdb = pytest.importorskip("chdb", reason="chdb is in the test extras: pip install -e '.[test]'")
    store = SummaryStore(str(tmp_path))
    store.append([job("7", per_node=[NodeUsage("n1", 4, 100.0, 1 << 30, 2 << 30, 5e4),
                                     NodeUsage("n2", 4, 50.0, 1 << 29, 2 << 30, 4e4)], energy_j=9e4, nnodes=2),
                  job("8", cluster="beta", energy_j=1e3)])
    pattern = os.path.join(str(tmp_path), "cluster=*", "month=*", "*.parquet")
    out = chdb.query(f"SELECT cluster, jobid, energy_j, arraySum(x -> assumeNotNull(x.cpu_time_s), per_node) AS cpu, "
                     f"length(per_node) AS n FROM file('{pattern}', Parquet) ORDER BY jobid", "CSV")
    assert str(out).strip().splitlines() == ['"alpha","7",90000,150,2', '"beta","8",1000,0,0']
    duck = store.sql("SELECT cluster, jobid, energy_j, list_sum([x.cpu_time_s for x in per_node]) "
                     "FROM summaries ORDER BY jobid")
    assert duck == [("alpha", "7", 90000.0, 150.0), ("beta", "8", 1000.0, None)]


@settings(max_examples=30, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), st.integers(1, 40), st.integers(0, 3)), max_size=60),
       st.integers(1, 8))
def test_property_each_key_once_whatever_the_batching(tmp_path_factory, keys, batch):
    """However jobs (with repeats) are split into appends and compactions, each key is stored once."""
    store = SummaryStore(str(tmp_path_factory.mktemp("ds")), compact_files=3)
    rows = [job(str(j), submit=T0 + 86400 * 20 * s, cluster=c) for c, j, s in keys]
    for i in range(0, len(rows), batch):
        store.append(rows[i:i + batch])
    got = store.sql("SELECT cluster, jobid, epoch(submit)::BIGINT FROM summaries")
    raw = [tuple(r) for r in _all_rows(store)]
    assert len(raw) == len(set(raw)), "a key stored twice"
    assert sorted(got) == sorted({(c, str(j), int(T0 + 86400 * 20 * s)) for c, j, s in keys})


def _all_rows(store: SummaryStore) -> list[tuple]:
    out = []
    for f in store.files():
        t = pq.read_table(f, columns=["cluster", "jobid", "submit"])
        out += list(zip(*(t.column(c).to_pylist() for c in ("cluster", "jobid", "submit"))))
    return out
