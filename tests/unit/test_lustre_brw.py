"""OSD brw_stats: the parser on 2.10 (ldiskfs and ZFS), 2.15 and 2.16 layouts, the histogram families, and
the `lustre_server` collector reading them from files (2.15 debugfs, 2.10 procfs) and through lctl."""

from __future__ import annotations

import os

import helpers
import pytest
from hpcwatch.exporters.lustre.brw import BRW_TABLES, brw_families, parse_brw_stats
from hpcwatch.exporters.lustre_server.collector import LustreServerCollector
from hypothesis import given, settings
from hypothesis import strategies as st
from test_lustre_collectors import fake_lctl

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lustre")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


@pytest.mark.parametrize("name,tables", [
    ("brw_stats_2.10.txt", 7), ("brw_stats_2.10_zfs.txt", 5), ("brw_stats_2.15.txt", 7), ("brw_stats_2.16.txt", 8),
    ("brw_stats_2.15_idle.txt", 7),
])
def test_layouts(name, tables):
    errors: list[str] = []
    got = parse_brw_stats(fixture(name), errors.append)
    assert errors == [] and len(got) == tables
    assert all(t.title in BRW_TABLES for t in got)


def test_rows_are_bounds_with_k_and_m_suffixes():
    tables = {t.title: t for t in parse_brw_stats(fixture("brw_stats_2.15.txt"))}
    size = tables["disk I/O size"]
    assert size.unit == "ios" and size.rows[0] == (4096, 23, 153) and size.rows[-1] == (1048576, 400, 59065)
    assert tables["pages per bulk r/w"].rows[-1] == (512, 0, 120)
    assert tables["discontiguous pages"].rows[-1] == (31, 0, 10)


def test_garbage_lines_are_reported():
    errors: list[str] = []
    text = fixture("brw_stats_2.15.txt").replace("4K:\t\t", "4Q:\t\t", 1)
    tables = {t.title: t for t in parse_brw_stats(text, errors.append)}
    assert len(errors) == 1 and tables["disk I/O size"].rows[0][0] == 8192


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_fuzz_never_raises(text):
    tables = parse_brw_stats(text, lambda r: None)
    list(brw_families({"t": tables}))


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_fuzz_mutated_fixture_renders(data):
    text = fixture("brw_stats_2.16.txt")
    pos = data.draw(st.integers(0, len(text) - 1))
    mutated = text[:pos] + data.draw(st.text(max_size=12)) + text[pos + data.draw(st.integers(0, 12)):]
    for fam in brw_families({"t": parse_brw_stats(mutated, lambda r: None)}):
        for s in fam.samples:
            assert s.value >= 0


def samples(brw: dict) -> dict:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value for fam in brw_families(brw) for s in fam.samples}


def test_histograms_are_cumulative_with_count_and_no_sum():
    got = samples({"scratch-OST0000": parse_brw_stats(fixture("brw_stats_2.15.txt"))})

    def bucket(name: str, op: str, le: str) -> float:
        return got[(name + "_bucket", (("le", le), ("operation", op), ("target", "scratch-OST0000")))]
    assert bucket("hpc_lustre_brw_io_size_bytes", "read", "4096.0") == 23
    assert bucket("hpc_lustre_brw_io_size_bytes", "read", "1048576.0") == 423
    assert bucket("hpc_lustre_brw_pages_per_rpc", "write", "16.0") == 153 + 1367
    assert bucket("hpc_lustre_brw_pages_per_rpc", "write", "+Inf") == 153 + 1367 + 58945 + 120
    # I/O time in millisecond rows becomes seconds.
    assert bucket("hpc_lustre_brw_io_time_seconds", "write", "0.001") == 30000
    assert bucket("hpc_lustre_brw_io_time_seconds", "write", "0.512") == 60585
    # Row 31 of a linear table holds 31 and more: it reaches +Inf only.
    assert bucket("hpc_lustre_brw_discontiguous_pages", "write", "30.0") == 60575
    assert bucket("hpc_lustre_brw_discontiguous_pages", "write", "+Inf") == 60585
    assert ("hpc_lustre_brw_discontiguous_pages_bucket",
            (("le", "31.0"), ("operation", "write"), ("target", "scratch-OST0000"))) not in got
    count = got[("hpc_lustre_brw_io_size_bytes_count", (("operation", "write"), ("target", "scratch-OST0000")))]
    assert count == 153 + 1367 + 59065
    assert not any(name.endswith("_sum") for name, _ in got)


def test_idle_target_has_zero_counts_and_unknown_tables_are_skipped():
    future = ("\n                           read      |     write\n"
              "future table     ops   % cum % |  ops         % cum %\n1:\t\t 1 100 100   |    0   0   0\n")
    got = samples({"t": parse_brw_stats(fixture("brw_stats_2.15_idle.txt") + future)})
    assert got[("hpc_lustre_brw_io_size_bytes_count", (("operation", "read"), ("target", "t")))] == 0
    assert not any("future" in name for name, _ in got)


def brw_server(tmp_path, files: dict[str, str], **options) -> str:
    helpers.write_tree(str(tmp_path), files)
    ctx = helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"), agent="cluster",
                               cls=LustreServerCollector, lctl=str(tmp_path / "no-lctl"), **options)
    c = LustreServerCollector(ctx)
    assert c.available() is None
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    return text


def test_server_reads_2_15_debugfs_brw_stats(tmp_path):
    text = brw_server(tmp_path, {
        "sys/kernel/debug/lustre/obdfilter/scratch-OST0000/stats": fixture("obdfilter_stats_2.15.txt"),
        "sys/kernel/debug/lustre/osd-ldiskfs/scratch-OST0000/brw_stats": fixture("brw_stats_2.15.txt"),
        "sys/kernel/debug/lustre/osd-ldiskfs/scratch-MDT0000/brw_stats": fixture("brw_stats_2.15_idle.txt"),
    })
    assert helpers.values(text, "hpc_lustre_brw_io_size_bytes_bucket", target="scratch-OST0000", operation="read",
                          le="+Inf") == [423]
    assert helpers.values(text, "hpc_lustre_brw_io_size_bytes_count", target="scratch-MDT0000",
                          operation="write") == [0]


def test_server_2_10_prefers_the_osd_file_over_an_empty_obdfilter_one(tmp_path):
    text = brw_server(tmp_path, {
        "proc/fs/lustre/obdfilter/scratch-OST0000/stats": fixture("obdfilter_stats_2.10_oss.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0000/brw_stats": "",
        "proc/fs/lustre/osd-zfs/scratch-OST0000/brw_stats": fixture("brw_stats_2.10_zfs.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0001/stats": fixture("obdfilter_stats_2.10_oss.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0001/brw_stats": fixture("brw_stats_2.10.txt"),
    })
    assert helpers.values(text, "hpc_lustre_brw_pages_per_rpc_count", target="scratch-OST0000", operation="read") \
        == [423]
    assert helpers.values(text, "hpc_lustre_brw_fragmented_ios_count", target="scratch-OST0000") == []  # ZFS
    assert helpers.values(text, "hpc_lustre_brw_fragmented_ios_count", target="scratch-OST0001",
                          operation="write") == [60585]


def test_server_brw_stats_can_be_turned_off(tmp_path):
    text = brw_server(tmp_path, {
        "proc/fs/lustre/obdfilter/scratch-OST0000/stats": fixture("obdfilter_stats_2.10_oss.txt"),
        "proc/fs/lustre/osd-ldiskfs/scratch-OST0000/brw_stats": fixture("brw_stats_2.10.txt"),
    }, **{"brw-stats": False})
    assert not [n for n in helpers.all_names(text) if n.startswith("hpc_lustre_brw_")]


def test_server_brw_stats_through_lctl(tmp_path):
    lctl = fake_lctl(tmp_path, {
        "list_param obdfilter.*.job_stats": "obdfilter.scratch-OST0000.job_stats\n",
        "get_param obdfilter.scratch-OST0000.job_stats": fixture("job_stats_ost_2.15.txt"),
        "get_param osd-*.*.brw_stats": "osd-ldiskfs.scratch-OST0000.brw_stats=\n" + fixture("brw_stats_2.16.txt"),
    })
    ctx = helpers.make_context(procfs=str(tmp_path / "p"), sysfs=str(tmp_path / "s"), agent="cluster",
                               cls=LustreServerCollector, lctl=lctl)
    c = LustreServerCollector(ctx)
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_lustre_brw_block_map_time_seconds_bucket", target="scratch-OST0000",
                          operation="read", le="0.001") == [12689]
