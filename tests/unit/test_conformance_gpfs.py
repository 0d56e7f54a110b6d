"""Conformance with treydock `gpfs_exporter`'s tests: the command outputs its tests are built on, reproduced in
tests/fixtures/conformance/gpfs_exporter (make_gpfs_exporter_situations.py), run through our collector over
stand-in binaries; every value its tests assert for a family we share is asserted here under our names.
Deliberate differences are named in the tests and in docs/conformance.md."""

from __future__ import annotations

import os
import stat

import helpers
import pytest
from hpcwatch.exporters.gpfs.collector import HEALTH_STATES, GpfsCollector

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "conformance", "gpfs_exporter")


def scrape(tmp_path, mmdf: str = "mmdf_project_Y.txt") -> str:
    """One cluster-agent scrape over stand-ins that print the situation (external binaries, not our code)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    outputs = {"mmpmon": "mmpmon_fs_io_s.txt", "mmdf": mmdf, "mmhealth": "mmhealth_node_show_Y.txt",
               "mmgetstate": "mmgetstate_Y.txt", "mmdiag": "mmdiag_waiters_Y.txt"}
    for tool, name in outputs.items():
        p = bindir / tool
        p.write_text(f'#!/bin/sh\nexec cat "{FIX}/{name}"\n')
        p.chmod(p.stat().st_mode | stat.S_IEXEC)
    c = GpfsCollector(helpers.make_context(cls=GpfsCollector, agent="cluster", filesystems="project",
                                           **{"bin-dir": str(bindir)}))
    for s in c.sources():
        assert s.refresh_now(), (s.name, s.last_error)
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    return text


def test_mmpmon(tmp_path):
    text = scrape(tmp_path)
    # gpfs_perf_{read,write}_bytes_total and gpfs_perf_operations_total (opens, closes, reads, writes, read_dir,
    # inode_updates), by fs.
    theirs = {("scratch", "read_bytes"): 205607400434, ("scratch", "write_bytes"): 74839282351,
              ("project", "read_bytes"): 0, ("project", "write_bytes"): 0}
    for (fs, what), v in theirs.items():
        assert helpers.values(text, f"hpc_gpfs_{what}_total", fs=fs) == [v]
    ops = {"opens": "open", "closes": "close", "reads": "read", "writes": "write", "read_dir": "readdir",
           "inode_updates": "inode_update"}
    expected = {"scratch": {"closes": 2201576, "inode_updates": 544768, "opens": 2377656, "read_dir": 40971,
                            "reads": 59420404, "writes": 18874626},
                "project": {"closes": 513, "inode_updates": 169, "opens": 513, "read_dir": 0, "reads": 0,
                            "writes": 0}}
    for fs, by_op in expected.items():
        for theirs_op, v in by_op.items():
            assert helpers.values(text, "hpc_gpfs_operations_total", fs=fs, operation=ops[theirs_op]) == [v]


MMDF = {  # gpfs_fs_* family (theirs) -> (ours, labels), with the value their test expects
    ("gpfs_fs_size_bytes", ""): ("hpc_gpfs_fs_size_bytes", {}, 3749557989015552),
    ("gpfs_fs_free_bytes", ""): ("hpc_gpfs_fs_free_bytes", {}, 492750870413312),
    ("gpfs_fs_metadata_size_bytes", ""): ("hpc_gpfs_metadata_size_bytes", {}, 14224931684352),
    ("gpfs_fs_metadata_free_bytes", ""): ("hpc_gpfs_metadata_free_bytes", {}, 6155570511872),
    ("gpfs_fs_pool_total_bytes", "data"): ("hpc_gpfs_pool_size_bytes", {"pool": "data"}, 3138000816963584),
    ("gpfs_fs_pool_total_bytes", "system"): ("hpc_gpfs_pool_size_bytes", {"pool": "system"}, 802107691106304),
    ("gpfs_fs_pool_free_bytes", "data"): ("hpc_gpfs_pool_free_bytes", {"pool": "data"}, 1374578991431680),
    ("gpfs_fs_pool_free_bytes", "system"): ("hpc_gpfs_pool_free_bytes", {"pool": "system"}, 389698396618752),
    ("gpfs_fs_used_inodes", ""): ("hpc_gpfs_inodes_used", {}, 430741822),
    ("gpfs_fs_free_inodes", ""): ("hpc_gpfs_inodes_free", {}, 484301506),
    ("gpfs_fs_allocated_inodes", ""): ("hpc_gpfs_inodes_allocated", {}, 915043328),
    ("gpfs_fs_inodes", ""): ("hpc_gpfs_inodes_max", {}, 1332164000),
}
# Theirs also exports gpfs_fs_pool_free_fragments_bytes and gpfs_fs_pool_max_disk_size_bytes; ours does not.


@pytest.mark.parametrize("mmdf", ["mmdf_project_Y.txt", "mmdf_project_no_metadata_Y.txt"])
def test_mmdf(tmp_path, mmdf):
    text = scrape(tmp_path, mmdf)
    for (family, _), (ours, labels, v) in MMDF.items():
        got = helpers.values(text, ours, fs="project", **labels)
        if "metadata" in family and "no_metadata" in mmdf:
            assert got == [], family  # theirs leaves the metadata families out too
        else:
            assert got == [v], family


def test_mmhealth_states_and_events(tmp_path):
    text = scrape(tmp_path)
    node = "ib-haswell1.example.com"
    theirs = {("FILESYSTEM", node, "NODE"): "HEALTHY", ("FILESYSTEM", "project", "FILESYSTEM"): "HEALTHY",
              ("FILESYSTEM", "scratch", "FILESYSTEM"): "HEALTHY", ("FILESYSTEM", "ess", "FILESYSTEM"): "HEALTHY",
              ("GPFS", node, "NODE"): "TIPS", ("NETWORK", node, "NODE"): "HEALTHY",
              ("NETWORK", "ib0", "NIC"): "HEALTHY",
              ("NETWORK", "mlx5_0/1", "IB_RDMA"): "UNKNOWN", ("NODE", node, "NODE"): "TIPS"}
    for (component, entity, etype), status in theirs.items():
        labels = {"component": component, "entity": entity, "entity_type": etype}
        got = {d["status"]: v for d, v in zip(helpers.series_labels(text, "hpc_gpfs_health_status"),
                                              helpers.values(text, "hpc_gpfs_health_status"))
               if all(d[k] == v for k, v in labels.items())}
        if status == "UNKNOWN":
            # Theirs folds a status it does not know (FOO) into UNKNOWN=1; ours keeps it as read, UNKNOWN=0.
            assert got["FOO"] == 1 and got["UNKNOWN"] == 0
            continue
        assert {s: got[s] for s in HEALTH_STATES} == {s: int(s == status) for s in HEALTH_STATES}, labels
    # gpfs_health_event: one series per (component, entity, type, event), the repeated event once.
    events = [(d["component"], d["entity"], d["entity_type"], d["event"])
              for d in helpers.series_labels(text, "hpc_gpfs_health_event")]
    assert sorted(events) == [("GPFS", node, "NODE", "cluster_connections_down"),
                              ("GPFS", node, "NODE", "gpfs_pagepool_small")]
    assert helpers.values(text, "hpc_gpfs_health_event") == [1, 1]


def test_mmgetstate(tmp_path):
    text = scrape(tmp_path)
    for state, v in {"active": 1, "arbitrating": 0, "down": 0, "unknown": 0}.items():
        assert helpers.values(text, "hpc_gpfs_state", state=state) == [v]


def test_waiters(tmp_path):
    text = scrape(tmp_path)
    # gpfs_waiter_seconds (buckets 1s 5s 15s 1m 5m 60m) and gpfs_waiter_info_count, with their default exclude
    # pattern (EventsExporterSenderThread|Fsck), which is ours too.
    buckets = {"1.0": 22, "5.0": 22, "15.0": 22, "60.0": 24, "300.0": 25, "3600.0": 25, "+Inf": 25}
    for le, v in buckets.items():
        assert helpers.values(text, "hpc_gpfs_waiter_seconds_bucket", le=le) == [v], le
    assert helpers.values(text, "hpc_gpfs_waiter_seconds_sum") == [pytest.approx(155.1957)]
    assert helpers.values(text, "hpc_gpfs_waiter_seconds_count") == [25]
    assert helpers.values(text, "hpc_gpfs_waiters", thread="NSDThread") == [3]
    assert helpers.values(text, "hpc_gpfs_waiters", thread="RebuildWorkThread") == [22]
    assert helpers.values(text, "hpc_gpfs_waiter_longest_seconds") == [64.3]
