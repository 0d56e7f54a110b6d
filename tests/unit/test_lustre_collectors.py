"""Lustre collectors on fixture trees in the 2.10 (procfs) and 2.12+ (sysfs/debugfs) layouts, and via lctl."""

from __future__ import annotations

import errno
import os
import stat

import helpers
import pytest
from hpcwatch.exporters.lustre.collector import LustreCollector, mount_fs
from hpcwatch.exporters.lustre.stats import param_device, parse_stats, split_get_param
from hpcwatch.exporters.lustre.target import RecoveryStatusError, parse_recovery_status
from hpcwatch.exporters.lustre_server.collector import LustreServerCollector
from hpcwatch.exporters.selfmetrics import parse_errors, read_errors
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lustre")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


# ---------------------------------------------------------------- stats parser
def test_stats_2_10_layout():
    errors: list[str] = []
    cs = {c.name: c for c in parse_stats(fixture("llite_stats_2.10.txt"), errors.append)}
    assert errors == []
    assert cs["read_bytes"].samples == 3 and cs["read_bytes"].total == 1056768 and cs["read_bytes"].is_bytes
    assert cs["open"].samples == 12 and cs["open"].unit == "regs" and cs["open"].total is None


def test_stats_2_15_layout_with_sumsq_and_time_headers():
    [(param, body), (param2, _)] = list(split_get_param(fixture("lctl_llite_stats_2.15.txt")))
    assert param == "llite.scratch-ffff8d52c8d2e800.stats" and param2 == "llite.home-ffff8d52c8d2f000.stats"
    assert param_device(param) == ("llite", "scratch-ffff8d52c8d2e800")
    cs = {c.name: c for c in parse_stats(body)}
    assert "snapshot_time" not in cs and "elapsed_time" not in cs
    assert cs["read"].seconds == pytest.approx(3220e-6)
    assert cs["opencount"].total == 7


def test_split_get_param_one_line_values():
    out = "osd-ldiskfs.scratch-OST0000.kbytestotal=1000\nosd-ldiskfs.scratch-OST0000.kbytesfree=400\n"
    assert list(split_get_param(out)) == [("osd-ldiskfs.scratch-OST0000.kbytestotal", "1000"),
                                          ("osd-ldiskfs.scratch-OST0000.kbytesfree", "400")]


def test_mount_fs():
    assert mount_fs("scratch-ffff8d52c8d2e800") == "scratch"
    assert mount_fs("my-fs-ffff8d52c8d2e800") == "my-fs"


@given(st.text(max_size=400))
@settings(max_examples=200, deadline=None)
def test_fuzz_stats_and_get_param_never_raise(text):
    for c in parse_stats(text, on_error=lambda r: None):
        assert c.samples >= 0
    for param, _ in split_get_param(text):
        param_device(param)


def test_stats_2_10_oss_keeps_the_request_counter_of_a_name_printed_twice():
    # 2.10 OSTs print the OFD request counters, then the obd-method counters: statfs, get_info and
    # create appear twice. The first is what clients asked for; summing them is neither number.
    cs = {c.name: c for c in parse_stats(fixture("obdfilter_stats_2.10_oss.txt"))}
    assert (cs["statfs"].samples, cs["get_info"].samples, cs["create"].samples) == (300, 2, 4)
    assert cs["ping"].samples == 10000


@pytest.mark.parametrize("name,status,done,expected,connected,remaining,duration", [
    ("recovery_status_complete.txt", "COMPLETE", 3, 3, None, None, 28),
    # RECOVERING prints `connected_clients: 3/7` and a bare `completed_clients: 3` (no total).
    ("recovery_status_recovering.txt", "RECOVERING", 3, 7, 3, 119, None),
    ("recovery_status_inactive.txt", "INACTIVE", None, None, None, None, None),
    ("recovery_status_waiting_for_clients.txt", "WAITING_FOR_CLIENTS", None, None, None, None, None),
    ("recovery_status_waiting_dne.txt", "WAITING", None, None, None, None, None),
])
def test_recovery_status(name, status, done, expected, connected, remaining, duration):
    r = parse_recovery_status(fixture(name))
    assert (r.status, r.completed_clients, r.expected_clients, r.connected_clients, r.time_remaining_seconds,
            r.duration_seconds) == (status, done, expected, connected, remaining, duration)


@given(st.text(max_size=200))
@settings(max_examples=200, deadline=None)
def test_fuzz_recovery_status_only_raises_its_error(text):
    try:
        parse_recovery_status(text)
    except RecoveryStatusError:
        pass


# ---------------------------------------------------------------- client collector
def client_tree(tmp_path, layout: str):
    llite = "scratch-ffff88003ad5c000"
    if layout == "2.10":
        base = "proc/fs/lustre"
        files = {f"{base}/llite/{llite}/stats": fixture("llite_stats_2.10.txt")}
    else:
        base = "sys/kernel/debug/lustre"
        files = {f"{base}/llite/{llite}/stats": fixture("lctl_llite_stats_2.15.txt").split("\n", 1)[1]
                 .split("llite.home")[0]}
    files[f"{base}/mdc/scratch-MDT0000-mdc-ffff88003ad5c000/md_stats"] = fixture("mdc_md_stats_2.15.txt")
    files[f"{base}/osc/scratch-OST0000-osc-ffff88003ad5c000/stats"] = fixture("osc_stats_2.15.txt")
    helpers.write_tree(str(tmp_path), files)
    ctx = helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"), cls=LustreCollector,
                               lctl=str(tmp_path / "no-lctl"))
    return LustreCollector(ctx)


@pytest.mark.parametrize("layout", ["2.10", "2.15"])
def test_client_collector_on_files(tmp_path, layout):
    c = client_tree(tmp_path, layout)
    assert c.available() is None
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"lustre": 1}
    labels = {"fs": "scratch", "client": "scratch-ffff88003ad5c000"}
    if layout == "2.10":
        assert helpers.values(text, "hpc_lustre_client_operations_total", operation="read", **labels) == [3]
        assert helpers.values(text, "hpc_lustre_client_operations_total", operation="open", **labels) == [12]
        assert helpers.values(text, "hpc_lustre_client_operation_time_seconds_total", **labels) == []
        # getxattr_hits are getxattr calls the cache answered: already counted as getxattr operations.
        assert helpers.values(text, "hpc_lustre_client_operations_total", operation="getxattr_hits") == []
        assert helpers.values(text, "hpc_lustre_client_operations_total", operation="getxattr", **labels) == [8]
        assert helpers.values(text, "hpc_lustre_client_xattr_cache_hits_total", **labels) == [3]
    else:
        # 2.14+: `read` has its own usecs counter; read_bytes must not add its samples again.
        assert helpers.values(text, "hpc_lustre_client_operations_total", operation="read", **labels) == [4]
        assert helpers.values(text, "hpc_lustre_client_operation_time_seconds_total", operation="read",
                              **labels) == [pytest.approx(0.00322)]
    assert helpers.values(text, "hpc_lustre_client_bytes_total", operation="write", **labels) == \
        [2105344 if layout == "2.10" else 2097152]
    assert helpers.values(text, "hpc_lustre_client_target_operations_total", layer="mdc",
                          operation="intent_lock") == [30]
    assert helpers.values(text, "hpc_lustre_client_target_bytes_total", layer="osc", operation="read") == [1064960]
    assert helpers.values(text, "hpc_lustre_client_target_time_seconds_total", layer="osc",
                          operation="req_waittime") == [pytest.approx(0.04)]


def test_client_open_tracking_counters_are_not_operations(tmp_path):
    # 2.14+ llite: opencount repeats every open (5000) and openclosetime sums close-to-reopen gaps
    # (4185 s); as operations they doubled opens and dwarfed the real operation time.
    llite = "scratch-ffff88003ad5c000"
    helpers.write_tree(str(tmp_path), {f"sys/kernel/debug/lustre/llite/{llite}/stats": fixture("llite_stats_2.14.txt")})
    ctx = helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"), cls=LustreCollector,
                               lctl=str(tmp_path / "no-lctl"))
    text = helpers.render(LustreCollector(ctx))
    helpers.assert_promtool_clean(text)
    ops = {d["operation"] for d in helpers.series_labels(text, "hpc_lustre_client_operations_total")}
    assert "opencount" not in ops and "openclosetime" not in ops and "open" in ops
    assert sum(helpers.values(text, "hpc_lustre_client_operations_total")) == 120 + 40 + 14 + 5000 + 5000 + 5010 \
        + 2500 + 18 + 62930
    assert sum(helpers.values(text, "hpc_lustre_client_operation_time_seconds_total")) == pytest.approx(
        (240000 + 160000 + 339365 + 540209 + 231702 + 384629 + 10257 + 196719) / 1e6)
    assert helpers.values(text, "hpc_lustre_client_reopens_total", fs="scratch") == [2500]
    assert helpers.values(text, "hpc_lustre_client_reopen_interval_seconds_total", fs="scratch") == \
        [pytest.approx(4185.265858)]


def test_client_unavailable_without_lustre(tmp_path):
    ctx = helpers.make_context(procfs=str(tmp_path), sysfs=str(tmp_path), cls=LustreCollector,
                               lctl=str(tmp_path / "no-lctl"))
    assert "no Lustre mounts" in LustreCollector(ctx).available()


def fake_lctl(tmp_path, outputs: dict[str, str]) -> str:
    """An lctl stand-in (an external binary, not our code): prints a fixture per parameter, else fails."""
    data = tmp_path / "lctl-data"
    data.mkdir()
    cases = []
    for i, (param, out) in enumerate(outputs.items()):
        (data / f"{i}.txt").write_text(out)
        cases.append(f'  "{param}") cat "{data}/{i}.txt"; exit 0;;')
    script = tmp_path / "lctl"
    script.write_text("#!/bin/sh\nlast=\"\"\nfor a in \"$@\"; do last=\"$a\"; done\ncase \"$1 $last\" in\n"
                      + "\n".join(c.replace('  "', '  "', 1) for c in cases)
                      + "\nesac\necho \"error: $1: $last: No such file or directory\" >&2\nexit 2\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_client_falls_back_to_lctl(tmp_path):
    lctl = fake_lctl(tmp_path, {
        "list_param llite.*.stats": "llite.scratch-ffff8d52c8d2e800.stats\nllite.home-ffff8d52c8d2f000.stats\n",
        "get_param llite.*.stats": fixture("lctl_llite_stats_2.15.txt"),
    })
    ctx = helpers.make_context(procfs=str(tmp_path / "p"), sysfs=str(tmp_path / "s"), cls=LustreCollector, lctl=lctl)
    c = LustreCollector(ctx)
    assert c.available() is None
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_lustre_client_operations_total", fs="home", operation="getattr") == [3]
    assert helpers.values(text, "hpc_lustre_client_bytes_total", fs="scratch", operation="read") == [1064960]


# ---------------------------------------------------------------- server collector
def server_tree(tmp_path, ost_job_stats: str = "job_stats_ost_2.15.txt"):
    files = {
        "proc/fs/lustre/obdfilter/scratch-OST0000/job_stats": fixture(ost_job_stats),
        "proc/fs/lustre/obdfilter/scratch-OST0000/stats": fixture("obdfilter_stats_2.15.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0000/recovery_status": fixture("recovery_status_complete.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0001/job_stats": fixture("job_stats_broken.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0001/stats": fixture("obdfilter_stats_2.10_oss.txt"),
        "proc/fs/lustre/obdfilter/scratch-OST0001/recovery_status": fixture("recovery_status_recovering.txt"),
        "proc/fs/lustre/mdt/scratch-MDT0000/job_stats": fixture("job_stats_mdt_2.15.txt"),
        "proc/fs/lustre/mdt/scratch-MDT0000/md_stats": fixture("mdt_md_stats_2.15.txt"),
        "proc/fs/lustre/mdt/scratch-MDT0000/recovery_status": fixture("recovery_status_inactive.txt"),
        "sys/fs/lustre/osd-ldiskfs/scratch-OST0000/kbytestotal": "1000000\n",
        "sys/fs/lustre/osd-ldiskfs/scratch-OST0000/kbytesfree": "400000\n",
        "sys/fs/lustre/osd-ldiskfs/scratch-OST0000/kbytesavail": "350000\n",
        "sys/fs/lustre/osd-ldiskfs/scratch-OST0000/filestotal": "65536\n",
        "sys/fs/lustre/osd-ldiskfs/scratch-OST0000/filesfree": "60000\n",
        "sys/fs/lustre/osd-zfs/scratch-MDT0000/kbytestotal": "2000\n",
        "sys/fs/lustre/osd-zfs/scratch-MDT0000/filesfree": "garbage\n",
    }
    helpers.write_tree(str(tmp_path), files)


def server(tmp_path, **options) -> LustreServerCollector:
    ctx = helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"), agent="cluster",
                               cls=LustreServerCollector, lctl=str(tmp_path / "no-lctl"), **options)
    return LustreServerCollector(ctx)


def scrape(c: LustreServerCollector) -> str:
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"lustre_server": 1}
    return text


def test_server_collector_families(tmp_path):
    server_tree(tmp_path)
    before = parse_errors("lustre_job_stats")
    c = server(tmp_path, **{"jobid-format": "%j:%u:%H,%j.%u,%e.%u"})
    assert c.available() is None
    text = scrape(c)
    assert parse_errors("lustre_job_stats") == before + 4
    assert helpers.values(text, "hpcwatch_parse_errors_total", source="lustre_job_stats") == \
        [parse_errors("lustre_job_stats")]
    job = {"target": "scratch-OST0000", "jobid": "4243", "uid": "1001", "host": "cn003"}
    assert helpers.values(text, "hpc_lustre_job_bytes_total", operation="read", **job) == [16384]
    assert helpers.values(text, "hpc_lustre_job_operations_total", operation="setattr", **job) == [2]
    assert helpers.values(text, "hpc_lustre_job_operation_time_seconds_total", operation="read", **job) == \
        [pytest.approx(80e-6)]
    assert helpers.values(text, "hpc_lustre_job_bytes_total", target="scratch-OST0000", jobid="my job",
                          uid="1001", operation="write") == [524288]
    assert helpers.values(text, "hpc_lustre_job_operations_total", target="scratch-MDT0000", jobid="rsync",
                          uid="0", operation="getattr") == [20000]
    # The duplicated good.1 record on OST0001 became one summed series.
    assert helpers.values(text, "hpc_lustre_job_operations_total", target="scratch-OST0001", jobid="good", uid="1",
                          operation="getattr") == [5]
    assert helpers.values(text, "hpc_lustre_target_jobs", target="scratch-OST0001") == [1]
    assert helpers.values(text, "hpc_lustre_target_operations_total", target="scratch-MDT0000",
                          operation="getattr") == [21820]
    assert helpers.values(text, "hpc_lustre_target_bytes_total", target="scratch-OST0001", operation="write") == \
        [52428800]
    assert helpers.values(text, "hpc_lustre_target_operations_total", target="scratch-OST0001",
                          operation="read") == [22]
    assert helpers.values(text, "hpc_lustre_target_capacity_bytes", target="scratch-OST0000") == [1024000000]
    assert helpers.values(text, "hpc_lustre_target_available_bytes", target="scratch-OST0000") == [358400000]
    assert helpers.values(text, "hpc_lustre_target_files_free", target="scratch-OST0000") == [60000]
    assert helpers.values(text, "hpc_lustre_target_capacity_bytes", target="scratch-MDT0000") == [2048000]
    assert helpers.values(text, "hpc_lustre_target_files_free", target="scratch-MDT0000") == []
    assert helpers.values(text, "hpc_lustre_target_recovery_status", target="scratch-OST0001", status="RECOVERING") \
        == [1]
    assert helpers.values(text, "hpc_lustre_target_recovery_status", target="scratch-OST0001", status="COMPLETE") \
        == [0]
    assert helpers.values(text, "hpc_lustre_target_recovery_completed_clients", target="scratch-OST0001") == [3]
    assert helpers.values(text, "hpc_lustre_target_recovery_expected_clients", target="scratch-OST0001") == [7]
    assert helpers.values(text, "hpc_lustre_target_recovery_connected_clients", target="scratch-OST0001") == [3]
    assert helpers.values(text, "hpc_lustre_target_recovery_time_remaining_seconds",
                          target="scratch-OST0001") == [119]
    assert helpers.values(text, "hpc_lustre_target_recovery_duration_seconds", target="scratch-OST0000") == [28]
    assert helpers.values(text, "hpc_lustre_target_recovery_time_remaining_seconds",
                          target="scratch-OST0000") == []
    assert helpers.values(text, "hpc_lustre_target_recovery_completed_clients", target="scratch-MDT0000") == []
    # 2.10 OSS stats: statfs is the request counter (300), not 300 + the obd-method counter's 1254.
    assert helpers.values(text, "hpc_lustre_target_operations_total", target="scratch-OST0001",
                          operation="statfs") == [300]


def test_server_cap_puts_the_rest_in_one_remainder(tmp_path):
    server_tree(tmp_path)
    c = server(tmp_path, **{"top-jobs-by-bytes": 1, "top-jobs-by-metadata": 1})
    text = scrape(c)
    mdt = helpers.series_labels(text, "hpc_lustre_job_operations_total")
    mdt_jobs = {d["jobid"] for d in mdt if d["target"] == "scratch-MDT0000"}
    # rsync.0 has the most metadata ops; no MDT job moved bytes; the other two are summed.
    assert mdt_jobs == {"rsync.0", "__other__"}
    assert helpers.values(text, "hpc_lustre_job_operations_total", target="scratch-MDT0000", jobid="__other__",
                          operation="open") == [125]
    # One series per (target, job, operation): no duplicates anywhere.
    keys = [tuple(sorted(d.items())) for d in mdt]
    assert len(keys) == len(set(keys))


def test_server_job_stats_can_be_turned_off(tmp_path):
    server_tree(tmp_path)
    text = scrape(server(tmp_path, **{"job-stats": False}))
    assert helpers.series_labels(text, "hpc_lustre_job_operations_total") == []
    assert helpers.values(text, "hpc_lustre_target_operations_total", target="scratch-MDT0000", operation="open") \
        == [725]


def test_server_unavailable_on_a_client(tmp_path):
    assert "not a Lustre server" in server(tmp_path).available()


def test_server_lctl_fallback(tmp_path):
    lctl = fake_lctl(tmp_path, {
        "list_param obdfilter.*.job_stats": "obdfilter.scratch-OST0000.job_stats\n",
        "list_param mdt.*.job_stats": "mdt.scratch-MDT0000.job_stats\n",
        "get_param obdfilter.scratch-OST0000.job_stats": fixture("job_stats_ost_2.14.txt"),
        "get_param mdt.scratch-MDT0000.job_stats": fixture("job_stats_mdt_2.15.txt"),
        "get_param obdfilter.*.stats": "obdfilter.scratch-OST0000.stats=\n" + fixture("obdfilter_stats_2.15.txt"),
        "get_param osd-*.*.kbytestotal": "osd-ldiskfs.scratch-OST0000.kbytestotal=1000\n",
        "get_param obdfilter.*.recovery_status": "obdfilter.scratch-OST0000.recovery_status=\n"
                                                 + fixture("recovery_status_complete.txt"),
    })
    ctx = helpers.make_context(procfs=str(tmp_path / "p"), sysfs=str(tmp_path / "s"), agent="cluster",
                               cls=LustreServerCollector, lctl=lctl, **{"jobid-format": "%j:%u:%H"})
    c = LustreServerCollector(ctx)
    assert c.available() is None
    text = scrape(c)
    assert helpers.values(text, "hpc_lustre_job_bytes_total", target="scratch-OST0000", jobid="4242",
                          host="cn002", operation="write") == [16 * 1048576]
    assert helpers.values(text, "hpc_lustre_job_operations_total", target="scratch-MDT0000", jobid="4242.1000",
                          operation="open") == [120]
    assert helpers.values(text, "hpc_lustre_target_capacity_bytes", target="scratch-OST0000") == [1024000]
    assert helpers.values(text, "hpc_lustre_target_recovery_status", target="scratch-OST0000", status="COMPLETE") \
        == [1]


def test_server_read_error_in_a_refresh_fails_each_scrape_of_that_snapshot(tmp_path, monkeypatch):
    """A refresh runs in the background: a file it cannot read (EIO from the kernel, made at the OS
    boundary) is counted for lustre_server and every scrape of that snapshot reports success 0."""
    server_tree(tmp_path)
    bad = os.path.realpath(tmp_path / "sys/fs/lustre/osd-ldiskfs/scratch-OST0000/filesfree")
    real_read = os.read

    def read(fd: int, n: int) -> bytes:
        if os.readlink(f"/proc/self/fd/{fd}") == bad:
            raise OSError(errno.EIO, os.strerror(errno.EIO))
        return real_read(fd, n)

    c = server(tmp_path)
    before = read_errors("lustre_server")
    with monkeypatch.context() as m:
        m.setattr(os, "read", read)
        assert c.source.refresh_now(), c.source.last_error
    for _ in range(2):
        text = helpers.render(c)
        assert helpers.collector_success(text) == {"lustre_server": 0}
        assert helpers.values(text, "hpcwatch_read_errors_total", source="lustre_server") == [before + 1]
        assert helpers.values(text, "hpc_lustre_target_capacity_bytes", target="scratch-OST0000")
        assert not helpers.values(text, "hpc_lustre_target_files_free", target="scratch-OST0000")
    assert c.source.refresh_now()
    assert helpers.collector_success(helpers.render(c)) == {"lustre_server": 1}
