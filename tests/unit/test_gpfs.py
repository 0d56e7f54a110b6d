"""GPFS / Storage Scale: mmpmon `_key_ value` and `-Y` parsers, and the collector over stand-in binaries."""

from __future__ import annotations

import os
import stat

import helpers
import pytest
from hpcwatch.exporters.gpfs.collector import GpfsCollector
from hpcwatch.exporters.gpfs.parse import (
    parse_fs_io_s,
    parse_key_values,
    parse_mmdf,
    parse_mmhealth,
    parse_mmhealth_events,
    parse_y,
)
from hpcwatch.exporters.gpfs.state import parse_mmgetstate, parse_waiters
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gpfs")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def test_fs_io_s():
    errors: list[str] = []
    stats = parse_fs_io_s(fixture("mmpmon_fs_io_s.txt"), errors.append)
    assert errors == []
    assert [(s.cluster, s.filesystem) for s in stats] == [("hpc.example.org", "scratch"), ("hpc.example.org", "home"),
                                                          ("remote.example.org", "archive")]
    s = stats[0]
    assert (s.disks, s.bytes_read, s.bytes_written) == (48, 6291456000, 314572800)
    assert s.operations == {"open": 1041, "close": 1036, "read": 52101, "write": 3300, "readdir": 77,
                            "inode_update": 212}


def test_fs_io_s_without_mounted_filesystems_is_empty_not_an_error():
    errors: list[str] = []
    assert parse_fs_io_s(fixture("mmpmon_no_fs.txt"), errors.append) == []
    assert errors == []


def test_key_value_garbage_is_reported():
    errors: list[str] = []
    assert parse_key_values("mmpmon: not authorized\n_fs_io_s_ _n_\n", errors.append) == []
    assert len(errors) == 2


def test_mmdf():
    u = parse_mmdf(fixture("mmdf_scratch_Y.txt"))
    assert u.size == 3661677723648 * 1024 and u.free == 481202021888 * 1024
    assert u.metadata_size == 13891534848 * 1024
    assert u.pools == {"system": (771751936 * 1024, 320274944 * 1024),
                       "data": (3647786188800 * 1024, 475190722560 * 1024)}
    assert u.inodes == {"used": 430741822, "free": 484301506, "allocated": 915043328, "max": 1332164000}


def test_y_values_are_url_decoded_and_rows_need_a_header():
    errors: list[str] = []
    rows = parse_y(fixture("mmhealth_5.0.txt") + "mmhealth:Other:0:1:::x:\n", errors.append)
    assert rows["State"][0]["laststatuschange"] == "2023-11-14 09:04:17.123456 UTC"
    assert len(errors) == 1


@pytest.mark.parametrize("name", ["mmhealth_5.0.txt", "mmhealth_5.2.txt"])
def test_mmhealth(name):
    states = parse_mmhealth(fixture(name))
    if name == "mmhealth_5.0.txt":
        assert ("NETWORK", "ib0", "NIC", "FAILED") in [(s.component, s.entity, s.entity_type, s.status) for s in states]
        assert ("NETWORK", "mlx5_0/1", "IB_RDMA", "HEALTHY") in [(s.component, s.entity, s.entity_type, s.status)
                                                                  for s in states]
    else:
        # 5.2 prints timestamps with raw colons after the status column; the status is still read right.
        assert [(s.component, s.status) for s in states] == [("NODE", "TIPS"), ("GPFS", "TIPS"),
                                                             ("NETWORK", "HEALTHY"), ("DISK", "HEALTHY"),
                                                             ("NATIVE_RAID", "CHECKING")]


@pytest.mark.parametrize("name,events", [
    ("mmhealth_5.0.txt", [("NETWORK", "ib0", "NIC", "network_ips_down", "")]),
    # 5.2 adds message, eventtype and severity columns.
    ("mmhealth_5.2.txt", [("GPFS", "ess01", "NODE", "quorum_even_nodes_no_tiebreaker", "TIP")]),
])
def test_mmhealth_events(name, events):
    got = parse_mmhealth_events(fixture(name))
    assert [(e.component, e.entity, e.entity_type, e.event, e.severity) for e in got] == events


def test_mmhealth_hidden_events_are_left_out():
    text = fixture("mmhealth_5.0.txt").replace("network_ips_down::2023-11-14 15%3A32%3A38.077722 UTC::no:",
                                               "network_ips_down::2023-11-14 15%3A32%3A38.077722 UTC::yes:")
    assert parse_mmhealth_events(text) == []


@pytest.mark.parametrize("name,state,quorum,up,total", [
    ("mmgetstate_5.1.txt", "active", 3, 412, 420),
    ("mmgetstate_down.txt", "down", 0, 0, 420),
    ("mmgetstate_arbitrating_quorum_node.txt", "arbitrating", 3, 2, 420),
])
def test_mmgetstate(name, state, quorum, up, total):
    s = parse_mmgetstate(fixture(name))
    assert (s.state, s.quorum, s.nodes_up, s.total_nodes) == (state, quorum, up, total)


def test_mmgetstate_without_a_row_is_none_and_reported():
    errors: list[str] = []
    assert parse_mmgetstate("mmgetstate: The GPFS daemon is not running.\n", errors.append) is None
    assert len(errors) == 1


@pytest.mark.parametrize("name", ["mmdiag_waiters_5.1.txt", "mmdiag_waiters_4.2.txt"])
def test_waiters_y_and_text_forms_agree(name):
    errors: list[str] = []
    got = [(w.thread, w.seconds) for w in parse_waiters(fixture(name), errors.append)]
    assert errors == []
    assert got == [("EventsExporterSenderThread", 3611.2201), ("SyncHandlerThread", 312.0457), ("NSDThread", 1.5012),
                   ("NSDThread", 0.2719), ("FileBlockWriteFetchHandlerThread", 0.0093)]


def test_waiters_none_and_garbage():
    errors: list[str] = []
    assert parse_waiters(fixture("mmdiag_waiters_none_5.1.txt"), errors.append) == []
    assert parse_waiters("=== mmdiag: waiters ===\n", errors.append) == [] and errors == []
    bad = fixture("mmdiag_waiters_5.1.txt").replace(":312.0457:", ":soon:")
    assert len(parse_waiters(bad, errors.append)) == 4 and len(errors) == 1


@given(st.text(max_size=400))
@settings(max_examples=300, deadline=None)
def test_fuzz_parsers_never_raise(text):
    ignore = lambda r: None
    parse_fs_io_s(text, ignore)
    parse_mmdf(text, ignore)
    parse_mmhealth(text, ignore)
    parse_mmhealth_events(text, ignore)
    parse_mmgetstate(text, ignore)
    parse_waiters(text, ignore)
    parse_waiters("mmdiag:waiters:HEADER:version:reserved:reserved:threadName:waitTime:\n" + text, ignore)
    parse_mmdf(fixture("mmdf_scratch_Y.txt").split("mmdf:nsd:0")[0] + text, ignore)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_fuzz_mutated_fixtures_never_raise(data):
    for name, fn in (("mmpmon_fs_io_s.txt", parse_fs_io_s), ("mmdf_scratch_Y.txt", parse_mmdf),
                     ("mmhealth_5.0.txt", parse_mmhealth), ("mmhealth_5.2.txt", parse_mmhealth_events),
                     ("mmgetstate_5.1.txt", parse_mmgetstate), ("mmdiag_waiters_5.1.txt", parse_waiters),
                     ("mmdiag_waiters_4.2.txt", parse_waiters)):
        text = fixture(name)
        pos = data.draw(st.integers(0, len(text) - 1))
        fn(text[:pos] + data.draw(st.text(max_size=10)) + text[pos + data.draw(st.integers(0, 10)):], lambda r: None)


# ---------------------------------------------------------------- collector over stand-in binaries
def fake_bin(tmp_path, health: str = "mmhealth_5.0.txt", state: str = "mmgetstate_5.1.txt",
             waiters: str = "mmdiag_waiters_5.1.txt") -> str:
    """mmpmon/mmdf/mmhealth/mmgetstate/mmdiag stand-ins (external binaries, not our code) that print fixtures."""
    d = tmp_path / "bin"
    d.mkdir()
    scripts = {
        # mmpmon must be given the fs_io_s request through its -i command file.
        "mmpmon": f'[ "$1 $2 $3" = "-p -s -i" ] && grep -qx fs_io_s "$4" && cat "{FIX}/mmpmon_fs_io_s.txt" '
                  '|| { echo "bad mmpmon call: $*" >&2; exit 1; }',
        "mmdf": f'[ "$2" = "-Y" ] || exit 1; case "$1" in scratch) cat "{FIX}/mmdf_scratch_Y.txt";; '
                f'*) echo "mmdf: File system $1 is not known" >&2; exit 1;; esac',
        "mmhealth": f'[ "$*" = "node show -Y" ] && cat "{FIX}/{health}"',
        "mmgetstate": f'[ "$*" = "-Y" ] && cat "{FIX}/{state}"',
        "mmdiag": f'[ "$*" = "--waiters -Y" ] && cat "{FIX}/{waiters}"',
    }
    for name, body in scripts.items():
        p = d / name
        p.write_text("#!/bin/sh\n" + body + "\n")
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(d)


def test_collector_node_agent_runs_no_mmdf_by_default(tmp_path):
    ctx = helpers.make_context(cls=GpfsCollector, **{"bin-dir": fake_bin(tmp_path)})
    c = GpfsCollector(ctx)
    assert c.available() is None
    assert [s.name for s in c.sources()] == ["gpfs_mmpmon", "gpfs_mmhealth", "gpfs_mmgetstate", "gpfs_waiters"]
    for s in c.sources():
        assert s.refresh_now(), s.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"gpfs": 1}
    assert helpers.values(text, "hpc_gpfs_read_bytes_total", fs="scratch") == [6291456000]
    # The GPFS cluster name rides in gpfs_cluster: `cluster` is the HPC cluster's target label.
    assert helpers.values(text, "hpc_gpfs_read_bytes_total", gpfs_cluster="hpc.example.org",
                          fs="scratch") == [6291456000]
    assert all("cluster" not in labels for labels in helpers.series_labels(text, "hpc_gpfs_read_bytes_total"))
    assert helpers.values(text, "hpc_gpfs_operations_total", fs="home", operation="readdir") == [9]
    assert helpers.values(text, "hpc_gpfs_health_status", component="NETWORK", entity="ib0", status="FAILED") == [1]
    assert helpers.values(text, "hpc_gpfs_health_status", component="NETWORK", entity="ib0", status="HEALTHY") == [0]
    assert helpers.values(text, "hpc_gpfs_fs_size_bytes") == []
    assert helpers.values(text, "hpc_gpfs_health_event", component="NETWORK", entity="ib0",
                          event="network_ips_down") == [1]
    assert helpers.values(text, "hpc_gpfs_state", state="active") == [1]
    assert helpers.values(text, "hpc_gpfs_state", state="down") == [0]
    assert helpers.values(text, "hpc_gpfs_cluster_nodes_up") == [412]
    # EventsExporterSenderThread waits by design and is excluded by default.
    assert helpers.values(text, "hpc_gpfs_waiters", thread="NSDThread") == [2]
    assert helpers.values(text, "hpc_gpfs_waiters", thread="EventsExporterSenderThread") == []
    assert helpers.values(text, "hpc_gpfs_waiter_longest_seconds") == [312.0457]
    assert helpers.values(text, "hpc_gpfs_waiter_seconds_bucket", le="1.0") == [2]
    assert helpers.values(text, "hpc_gpfs_waiter_seconds_bucket", le="300.0") == [3]
    assert helpers.values(text, "hpc_gpfs_waiter_seconds_count") == [4]
    assert helpers.values(text, "hpc_gpfs_waiter_seconds_sum") == [pytest.approx(312.0457 + 1.5012 + 0.2719 + 0.0093)]


def test_collector_daemon_down_and_no_waiters(tmp_path):
    ctx = helpers.make_context(cls=GpfsCollector, **{"bin-dir": fake_bin(tmp_path, state="mmgetstate_down.txt",
                                                                         waiters="mmdiag_waiters_none_5.1.txt"),
                                                     "waiters-buckets": "10,1"})
    c = GpfsCollector(ctx)
    for s in (c.state, c.waiters):
        assert s.refresh_now(), s.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_gpfs_state", state="down") == [1]
    assert helpers.values(text, "hpc_gpfs_waiter_longest_seconds") == [0]
    assert [d["le"] for d in helpers.series_labels(text, "hpc_gpfs_waiter_seconds_bucket")] == ["1.0", "10.0", "+Inf"]


def test_collector_state_and_waiters_can_be_turned_off_and_bad_buckets_are_rejected(tmp_path):
    ctx = helpers.make_context(cls=GpfsCollector, **{"bin-dir": fake_bin(tmp_path), "state-interval": 0,
                                                     "waiters-interval": 0})
    assert [s.name for s in GpfsCollector(ctx).sources()] == ["gpfs_mmpmon", "gpfs_mmhealth"]
    with pytest.raises(ValueError, match="waiters-buckets"):
        GpfsCollector(helpers.make_context(cls=GpfsCollector, **{"waiters-buckets": "1,soon"}))


def test_collector_cluster_agent_runs_mmdf_for_the_filesystems_mmpmon_reports(tmp_path):
    ctx = helpers.make_context(cls=GpfsCollector, agent="cluster",
                               **{"bin-dir": fake_bin(tmp_path, "mmhealth_5.2.txt")})
    c = GpfsCollector(ctx)
    names = [s.name for s in c.sources()]
    assert names == ["gpfs_mmpmon", "gpfs_mmhealth", "gpfs_mmgetstate", "gpfs_waiters", "gpfs_mmdf"]
    assert c.usage.interval == 600
    c.io.refresh_now()
    c.health.refresh_now()
    # home and archive are not known to (the stand-in) mmdf: the usage refresh fails and says why.
    assert not c.usage.refresh_now()
    assert "not known" in c.usage.last_error
    ctx = helpers.make_context(cls=GpfsCollector, agent="cluster", filesystems="scratch",
                               **{"bin-dir": str(tmp_path / "bin")})
    c = GpfsCollector(ctx)
    for s in c.sources():
        assert s.refresh_now(), s.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_gpfs_pool_free_bytes", fs="scratch", pool="data") == [475190722560 * 1024]
    assert helpers.values(text, "hpc_gpfs_inodes_max", fs="scratch") == [1332164000]
    assert helpers.values(text, "hpc_gpfs_health_status", component="NATIVE_RAID", status="CHECKING") == [1]
    assert helpers.values(text, "hpcwatch_source_up", source="gpfs_mmdf") == [1]


def test_collector_unavailable_without_storage_scale(tmp_path):
    c = GpfsCollector(helpers.make_context(cls=GpfsCollector, **{"bin-dir": str(tmp_path)}))
    assert "no Storage Scale" in c.available()
