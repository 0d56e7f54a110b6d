"""NFS mountstats: parser across kernel layouts (per-op errors column, tcp/udp/rdma field counts), collector."""

from __future__ import annotations

import dataclasses
import os

import helpers
import pytest
from hpcwatch.exporters.nfs.collector import NfsCollector
from hpcwatch.exporters.nfs.mounts import exported_mounts, parse_mountinfo
from hpcwatch.exporters.nfs.mountstats import XPRT_FIELDS, parse_mountstats
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "nfs")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def test_old_kernel_layout_v3_tcp_udp_rdma_without_errors_column():
    errors: list[str] = []
    mounts = parse_mountstats(fixture("mountstats_3.10.txt"), errors.append)
    assert errors == []
    assert [(m.export, m.mountpoint, m.version) for m in mounts] == [
        ("nfs01:/export/home", "/home", "3"), ("nfs02:/export/apps", "/apps", "3"),
        ("nfs03:/export/scratch", "/scratch", "3")]
    home = mounts[0]
    assert home.age_seconds == 864000
    assert home.ops["READ"] == {"requests": 1000, "transmissions": 1002, "major_timeouts": 1, "bytes_sent": 150000,
                                "bytes_received": 104857600, "queue_ms": 40, "rtt_ms": 9000, "execute_ms": 9100}
    [tcp] = home.transports
    assert tcp.protocol == "tcp" and tcp.counters["sends"] == 22000 and "max_slots" not in tcp.counters
    [udp] = mounts[1].transports
    assert udp.counters == dict(zip(XPRT_FIELDS["udp"], [901, 1, 3000, 2999, 1, 6000, 0]))
    [rdma] = mounts[2].transports
    assert rdma.counters["bad_reply"] == 0 and "nomsg_call" not in rdma.counters
    assert home.bytes["server_read"] == 104857600
    assert home.events["jukebox_delay"] == 124


def test_new_kernel_layout_v4_errors_column_nconnect_and_long_rdma():
    mounts = parse_mountstats(fixture("mountstats_5.15.txt"))
    assert len(mounts) == 3  # autofs and sysfs skipped; the bind-mount duplicate is still listed here
    assert [(m.position, m.covered) for m in mounts] == [(2, True), (3, False), (4, False)]
    assert len(exported_mounts(mounts)) == 2  # the bind mount repeats the first superblock
    proj = mounts[0]
    assert proj.version == "4" and proj.fstype == "nfs4"
    assert proj.ops["GETATTR"]["errors"] == 3
    assert [t.counters["max_slots"] for t in proj.transports] == [64, 64]
    rdma = mounts[2].transports[0]
    assert rdma.counters["reply_waits_for_send"] == 0 and rdma.counters["mrs_allocated"] == 100
    assert len(rdma.counters) == 27


def test_stacked_mount_the_later_one_at_a_mount_point_hides_the_earlier():
    mounts = parse_mountstats(fixture("mountstats_stacked.txt"))
    assert [(m.mountpoint, m.version, m.position, m.covered) for m in mounts] == [
        ("/home", "4", 2, True), ("/home", "3", 3, False), ("/srv/home", "3", 4, False), ("/projects", "3", 5, False)]
    info = parse_mountinfo(fixture("mountinfo_stacked.txt"))
    assert [(i.device, i.mountpoint) for i in info[2:6]] == [("0:50", "/home"), ("0:53", "/home"),
                                                              ("0:53", "/srv/home"), ("0:53", "/projects")]
    # mountinfo: one superblock (0:53) behind /home, /srv/home and /projects; the v4 mount is hidden.
    [only] = exported_mounts(mounts, info)
    assert (only.mountpoint, only.version, only.ops["READ"]["requests"]) == ("/home", "3", 90000)
    # Without mountinfo the bind mount still folds in (same export and options); the second path of
    # the same server filesystem cannot be told apart from a superblock of its own.
    assert [(m.mountpoint, m.export) for m in exported_mounts(mounts)] == [
        ("/home", "fs01.example.org:/vol/home"), ("/projects", "fs01.example.org:/vol/home/projects")]


def test_mountinfo_that_does_not_line_up_is_not_trusted():
    mounts = parse_mountstats(fixture("mountstats_stacked.txt"))
    shifted = parse_mountinfo("\n" + fixture("mountinfo_stacked.txt"))  # a mount appeared between the reads
    assert [m.mountpoint for m in exported_mounts(mounts, shifted)] == ["/home", "/projects"]
    nosharecache = [dataclasses.replace(m, opts=m.opts + ",nosharecache") for m in mounts]
    assert [m.mountpoint for m in exported_mounts(nosharecache)] == ["/home", "/srv/home", "/projects"]


def test_collector_exports_the_visible_stacked_mount(tmp_path):
    # NFSv3/UDP mounted over NFSv4/TCP of the same export at /home: the v3 mount carries the traffic.
    helpers.write_tree(str(tmp_path), {"proc/self/mountstats": fixture("mountstats_stacked.txt"),
                                       "proc/self/mountinfo": fixture("mountinfo_stacked.txt")})
    c = NfsCollector(helpers.make_context(procfs=str(tmp_path / "proc"), cls=NfsCollector))
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.series_labels(text, "hpc_nfs_mount_info") == [
        {"export": "fs01.example.org:/vol/home", "mountpoint": "/home", "fstype": "nfs", "version": "3",
         "protocol": "udp"}]
    assert helpers.values(text, "hpc_nfs_requests_total", mountpoint="/home", operation="READ") == [90000]
    assert helpers.values(text, "hpc_nfs_transport_sends_total", mountpoint="/home") == [401000]


def test_bad_lines_are_skipped_and_reported():
    text = fixture("mountstats_3.10.txt").replace("\t        READ: 1000 1002", "\t        READ: x 1002", 1)
    errors: list[str] = []
    mounts = parse_mountstats(text, errors.append)
    assert len(errors) == 1
    assert "READ" not in mounts[0].ops and "WRITE" in mounts[0].ops


@given(st.text(max_size=500))
@settings(max_examples=300, deadline=None)
def test_fuzz_arbitrary_text_never_raises(text):
    exported_mounts(parse_mountstats(text, lambda r: None), parse_mountinfo(text))
    parse_mountstats("device a:/b mounted on /c with fstype nfs4 statvers=1.1\n" + text, lambda r: None)


@given(st.data())
@settings(max_examples=150, deadline=None)
def test_fuzz_mutated_fixture_never_raises(data):
    text = fixture("mountstats_5.15.txt")
    pos = data.draw(st.integers(0, len(text) - 1))
    mutated = text[:pos] + data.draw(st.text(max_size=15)) + text[pos + data.draw(st.integers(0, 20)):]
    for m in parse_mountstats(mutated, lambda r: None):
        assert all(v >= 0 for op in m.ops.values() for v in op.values())


@pytest.mark.parametrize("name", ["mountstats_3.10.txt", "mountstats_5.15.txt"])
def test_collector_renders_clean(tmp_path, name):
    helpers.write_tree(str(tmp_path), {"proc/self/mountstats": fixture(name)})
    c = NfsCollector(helpers.make_context(procfs=str(tmp_path / "proc"), cls=NfsCollector))
    assert c.available() is None
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"nfs": 1}
    if name == "mountstats_3.10.txt":
        m = {"export": "nfs01:/export/home", "mountpoint": "/home"}
        assert helpers.values(text, "hpc_nfs_requests_total", operation="READ", **m) == [1000]
        assert helpers.values(text, "hpc_nfs_rtt_seconds_total", operation="READ", **m) == [9.0]
        assert helpers.values(text, "hpc_nfs_execute_time_seconds_total", operation="READ", **m) == \
            [pytest.approx(9.1)]
        assert helpers.values(text, "hpc_nfs_errors_total") == []  # no errors column on this kernel
        assert helpers.values(text, "hpc_nfs_transport_sends_total", protocol="udp") == [3000]
        assert helpers.values(text, "hpc_nfs_mount_info", protocol="rdma") == [1]
    else:
        m = {"export": "fs01.example.org:/vol/projects", "mountpoint": "/projects"}
        assert helpers.values(text, "hpc_nfs_errors_total", operation="GETATTR", **m) == [3]
        # nconnect=2: both connections summed; the bind-mount duplicate does not add a second series.
        assert helpers.values(text, "hpc_nfs_transport_sends_total", **m) == [40000]
        assert helpers.values(text, "hpc_nfs_transport_bad_xids_total", **m) == [2]
        assert helpers.values(text, "hpc_nfs_io_bytes_total", kind="direct_read", **m) == [4096]
        assert helpers.values(text, "hpc_nfs_mount_info", version="4", **m) == [1]


def test_collector_skips_hosts_without_nfs(tmp_path):
    helpers.write_tree(str(tmp_path), {"proc/self/mountstats": "device proc mounted on /proc with fstype proc\n"})
    c = NfsCollector(helpers.make_context(procfs=str(tmp_path / "proc"), cls=NfsCollector))
    assert "no NFS mounts" in c.available()


def test_collector_ignores_mountpoints(tmp_path):
    helpers.write_tree(str(tmp_path), {"proc/1/mountstats": fixture("mountstats_3.10.txt")})
    c = NfsCollector(helpers.make_context(procfs=str(tmp_path / "proc"), cls=NfsCollector, pid="1",
                                          **{"ignored-mountpoints": "^/(apps|scratch)$"}))
    text = helpers.render(c)
    assert {d["mountpoint"] for d in helpers.series_labels(text, "hpc_nfs_mount_info")} == {"/home"}
