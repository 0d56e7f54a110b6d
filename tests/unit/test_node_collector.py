"""The node collector on fixture trees (exact values), broken trees, options, and this machine's /proc and /sys."""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import tempfile

import helpers
import nodetrees
import pytest
from hpcwatch.exporters.node.collector import NodeCollector
from hpcwatch.exporters.registry import load_all
from hpcwatch.exporters.selfmetrics import parse_errors
from hpcwatch.exporters.serve import add_serve_arguments, collector_options
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from nodetrees import EL7, REAL, one, scrape
from prometheus_client.parser import text_string_to_metric_families

HZ = os.sysconf("SC_CLK_TCK")
MiB = 1 << 20


def statvfs(blocks: int, bfree: int, bavail: int, files: int, ffree: int, frsize: int = 4096) -> os.statvfs_result:
    return os.statvfs_result((frsize, frsize, blocks, bfree, bavail, files, ffree, ffree, 0, 255))


def fixture_stat(root: str = "") -> dict[str, os.statvfs_result]:
    """statvfs answers for the fixture mounts (keys under `root`, the --path.rootfs)."""
    return {root + "/": statvfs(1000, 400, 300, 5000, 4000),
            root + "/run": statvfs(256, 250, 250, 100, 90),
            root + "/scratch": statvfs(10**9, 5 * 10**8, 5 * 10**8, 10**7, 9 * 10**6),
            root + "/home": statvfs(2048, 1024, 512, 64, 32, frsize=MiB),
            root + "/srv/with space": statvfs(10, 0, 0, 10, 0)}


def table_stat(table: dict[str, os.statvfs_result]):
    def stat(path: str) -> os.statvfs_result:
        if path not in table:
            raise PermissionError(13, "Permission denied", path)
        return table[path]
    return stat


def node(root: str = REAL, stat=None, rootfs: str = "/", **options) -> NodeCollector:
    return nodetrees.node(root, stat or table_stat(fixture_stat()), rootfs, **options)


def test_registered_for_the_node_agent() -> None:
    cls = load_all()["node"]
    assert cls is NodeCollector and cls.default_agents == frozenset({"node"})


def test_serve_flags_reach_the_collector_options() -> None:
    p = argparse.ArgumentParser()
    add_serve_arguments(p, {"node": NodeCollector})
    args = p.parse_args(["--collector.node.filesystem-mount-timeout", "0.5", "--collector.node.pressure-avg10",
                         "--collector.node.diskstats-device-exclude", "^loop"])
    opts = collector_options(args, NodeCollector)
    assert opts["filesystem-mount-timeout"] == 0.5 and opts["pressure-avg10"] is True
    assert opts["diskstats-device-exclude"].pattern == "^loop" and opts["edac-csrows"] is True


def test_cpu_and_kernel_counters_exact() -> None:
    text = scrape(node())
    assert one(text, "node_cpu_seconds_total", cpu="0", mode="user") == pytest.approx(4193 / HZ)
    assert one(text, "node_cpu_seconds_total", cpu="1", mode="steal") == pytest.approx(14 / HZ)
    assert len(helpers.values(text, "node_cpu_seconds_total")) == 16
    assert one(text, "node_context_switches_total") == 651543
    assert one(text, "node_intr_total") == 307803
    assert one(text, "node_forks_total") == 14907
    assert one(text, "node_boot_time_seconds") == 1795273382
    assert (one(text, "node_procs_running"), one(text, "node_procs_blocked")) == (2, 0)
    assert [one(text, f"node_load{m}") for m in (1, 5, 15)] == [0.66, 0.28, 0.13]


def test_memory_pressure_vmstat_exact() -> None:
    text = scrape(node(**{"pressure-avg10": True}))
    assert one(text, "node_memory_MemTotal_bytes") == 24684092 * 1024
    assert one(text, "node_memory_SUnreclaim_bytes") == 27168 * 1024
    assert one(text, "node_memory_HugePages_Total") == 0  # HugePages_Total, a page count
    assert one(text, "node_pressure_cpu_waiting_seconds_total") == pytest.approx(15.261008)
    assert one(text, "node_pressure_io_stalled_seconds_total") == pytest.approx(4.099162)
    assert one(text, "hpc_node_pressure_some_avg10_ratio", resource="cpu") == pytest.approx(0.0632)
    assert one(text, "node_vmstat_oom_kill") == 0
    assert one(text, "node_vmstat_pgfault") > 0


def test_pressure_avg10_is_opt_in() -> None:
    text = scrape(node())
    assert "hpc_node_pressure_some_avg10_ratio" not in helpers.all_names(text)
    assert {n for n in helpers.all_names(text) if n.startswith("node_pressure_")} == {
        "node_pressure_cpu_waiting_seconds", "node_pressure_io_waiting_seconds", "node_pressure_io_stalled_seconds",
        "node_pressure_memory_waiting_seconds", "node_pressure_memory_stalled_seconds",
        "node_pressure_irq_stalled_seconds"}


def test_diskstats_exact_and_partitions_loops_ram_skipped() -> None:
    text = scrape(node())
    devices = {d["device"] for d in helpers.series_labels(text, "node_disk_reads_completed_total")}
    assert devices == {"vda", "nvme0n1"}
    assert one(text, "node_disk_reads_completed_total", device="vda") == 46143
    assert one(text, "node_disk_read_bytes_total", device="vda") == 2724314 * 512
    assert one(text, "node_disk_written_bytes_total", device="nvme0n1") == 304567890 * 512
    assert one(text, "node_disk_io_time_seconds_total", device="vda") == pytest.approx(9.556)
    assert one(text, "node_disk_io_now", device="nvme0n1") == 3
    assert one(text, "node_disk_discarded_sectors_total", device="vda") == 1669064
    assert one(text, "node_disk_flush_requests_total", device="nvme0n1") == 4567


def test_diskstats_exclude_option() -> None:
    text = scrape(node(**{"diskstats-device-exclude": "^nvme"}))
    devices = {d["device"] for d in helpers.series_labels(text, "node_disk_reads_completed_total")}
    assert "nvme0n1" not in devices and {"vda", "vda1", "loop0", "zram0"} <= devices


def test_netdev_exact_and_exclude() -> None:
    text = scrape(node(EL7, **{"netdev-device-exclude": "^lo$"}))
    assert one(text, "node_network_receive_bytes_total", device="eth0") == 98765432101
    assert one(text, "node_network_receive_drop_total", device="eth0") == 7
    assert one(text, "node_network_transmit_packets_total", device="ib0") == 3333333
    assert one(text, "node_network_transmit_drop_total", device="eth0") == 1
    assert not helpers.values(text, "node_network_receive_bytes_total", device="lo")


def test_filesystems_exact_with_default_exclusions() -> None:
    text = scrape(node())
    points = {d["mountpoint"] for d in helpers.series_labels(text, "node_filesystem_device_error")}
    assert points == {"/", "/run", "/scratch", "/home", "/lustre", "/srv/with space"}
    home = {"device": "nfs01:/export/home", "fstype": "nfs4", "mountpoint": "/home"}
    assert one(text, "node_filesystem_size_bytes", **home) == 2048 * MiB
    assert one(text, "node_filesystem_free_bytes", **home) == 1024 * MiB
    assert one(text, "node_filesystem_avail_bytes", **home) == 512 * MiB
    assert (one(text, "node_filesystem_files", **home), one(text, "node_filesystem_files_free", **home)) \
        == (64, 32)
    assert one(text, "node_filesystem_readonly", mountpoint="/srv/with space") == 1
    assert one(text, "node_filesystem_readonly", mountpoint="/") == 0
    # statvfs on /lustre fails (permission denied): flagged, no sizes, the scrape goes on.
    assert one(text, "node_filesystem_device_error", mountpoint="/lustre") == 1
    assert not helpers.values(text, "node_filesystem_size_bytes", mountpoint="/lustre")


def test_filesystem_mount_points_are_mapped_under_rootfs() -> None:
    seen: list[str] = []
    table = fixture_stat("/host")

    def stat(path: str) -> os.statvfs_result:
        seen.append(path)
        return table_stat(table)(path)

    text = scrape(node(stat=stat, rootfs="/host"))
    assert "/host/home" in seen and "/home" not in seen
    assert one(text, "node_filesystem_size_bytes", mountpoint="/home") == 2048 * MiB  # label: the host path


def test_filesystem_type_and_mount_point_options() -> None:
    text = scrape(node(**{"filesystem-fs-types-exclude": "^(nfs4|lustre)$",
                          "filesystem-mount-points-exclude": "^/(run|proc|sys|dev|var)($|/)"}))
    points = {d["mountpoint"] for d in helpers.series_labels(text, "node_filesystem_device_error")}
    assert points == {"/", "/scratch", "/srv/with space", "/media/cdrom"}  # iso9660 no longer excluded


def test_el7_mounts_fallback_escapes_and_old_kernel_without_psi() -> None:
    table = {"/": statvfs(100, 50, 40, 10, 5), "/data set\ttab\\back": statvfs(8, 4, 2, 4, 2)}
    text = scrape(node(EL7, stat=table_stat(table)))
    assert one(text, "node_filesystem_size_bytes", mountpoint="/data set\ttab\\back") == 8 * 4096
    assert one(text, "node_filesystem_device_error", fstype="xfs", mountpoint="/") == 0
    names = helpers.all_names(text)
    assert not any(n.startswith("node_pressure") for n in names)  # 3.10 has no PSI
    assert "node_vmstat_oom_kill" not in names  # oom_kill appeared in vmstat with 4.13
    assert one(text, "node_vmstat_pswpin") == 12
    assert one(text, "node_memory_HardwareCorrupted_bytes") == 0
    assert one(text, "node_memory_HugePages_Free") == 60
    assert one(text, "node_disk_io_time_weighted_seconds_total", device="dm-0") == pytest.approx(363.0)
    assert not helpers.values(text, "node_disk_discards_completed_total")  # 14-field diskstats
    assert len(helpers.values(text, "node_cpu_seconds_total")) == 16


def test_hwmon_chips_sensors_and_thresholds() -> None:
    text = scrape(node())
    core = {"chip": "platform_coretemp_0"}
    assert one(text, "node_hwmon_temp_celsius", sensor="temp1", **core) == 52.0
    assert one(text, "node_hwmon_temp_celsius", sensor="temp10", **core) == 49.5
    assert one(text, "node_hwmon_temp_max_celsius", sensor="temp1", **core) == 84.0
    assert one(text, "node_hwmon_temp_crit_celsius", sensor="temp2", **core) == 100.0
    assert one(text, "node_hwmon_temp_celsius", chip="acpitz", sensor="temp1") == -2.5
    # node_exporter keeps the colons of the PCI address (its cleanMetricName allows [a-z0-9:_]).
    assert one(text, "node_hwmon_temp_celsius", chip="pci0000:00_0000:00:18_3", sensor="temp1") == 61.125
    assert one(text, "node_hwmon_chip_names", chip="platform_coretemp_0", chip_name="coretemp") == 1
    assert one(text, "node_hwmon_sensor_label", chip="platform_coretemp_0", sensor="temp1",
               label="Package id 0") == 1


def test_edac_per_controller_csrow_and_channel_by_default() -> None:
    text = scrape(node())
    assert one(text, "node_edac_correctable_errors_total", controller="0") == 3
    assert one(text, "node_edac_uncorrectable_errors_total", controller="1") == 2
    assert one(text, "node_edac_csrow_correctable_errors_total", controller="0", csrow="1") == 1
    assert len(helpers.values(text, "node_edac_csrow_uncorrectable_errors_total")) == 4  # 2 csrows, 2 unknown
    assert one(text, "node_edac_channel_correctable_errors_total", controller="0", csrow="0", channel="0",
               dimm_label="CPU_SrcID0_Ha0_Chan0_DIMM0") == 2  # node_exporter drops the #
    assert len(helpers.values(text, "node_edac_channel_correctable_errors_total")) == 3
    # no chN_ue_count files in this layout: no channel uncorrectable series
    assert "node_edac_channel_uncorrectable_errors" not in helpers.all_names(text)
    text = scrape(node(**{"edac-csrows": False}))
    assert "node_edac_csrow_correctable_errors" not in helpers.all_names(text)
    assert one(text, "node_edac_correctable_errors_total", controller="1") == 17


def test_edac_errors_not_tied_to_a_csrow_are_exported_as_csrow_unknown() -> None:
    # mc1's driver placed none of its 17 corrected and 2 uncorrected errors (ce/ue_noinfo_count):
    # node_exporter exports those as csrow="unknown"; before, they were nowhere but the controller total.
    text = scrape(node())
    assert one(text, "node_edac_csrow_correctable_errors_total", controller="1", csrow="unknown") == 17
    assert one(text, "node_edac_csrow_uncorrectable_errors_total", controller="1", csrow="unknown") == 2
    assert one(text, "node_edac_csrow_correctable_errors_total", controller="0", csrow="unknown") == 0


def test_psi_irq_without_trailing_newline() -> None:
    # Kernel 6.1+ /proc/pressure/irq: one `full` line; this fixture has no trailing newline.
    with open(os.path.join(REAL, "proc", "pressure", "irq"), "rb") as fh:
        raw = fh.read()
    assert raw.startswith(b"full ") and not raw.endswith(b"\n")
    text = scrape(node(**{"pressure-avg10": True}))
    assert one(text, "node_pressure_irq_stalled_seconds_total") == pytest.approx(1.863512)
    assert one(text, "hpc_node_pressure_full_avg10_ratio", resource="irq") == pytest.approx(0.0012)
    assert not helpers.values(text, "hpc_node_pressure_some_avg10_ratio", resource="irq")


# --- broken trees: every one still scrapes with success 1 and promtool-clean text -----------------------

def _copy_real(tmp: str) -> str:
    root = os.path.join(tmp, "tree")
    shutil.copytree(REAL, root, symlinks=True)
    return root


def _replace(root: str, rel: str, content: str | bytes | None = None, kind: str = "file") -> None:
    path = os.path.join(root, rel)
    if os.path.lexists(path):
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        else:
            os.remove(path)
    if kind == "dir":
        os.makedirs(os.path.join(path, "inside"))
    elif kind == "dangling":
        os.symlink(os.path.join(root, "vanished-before-read"), path)
    elif content is not None:
        helpers.write_tree(root, {rel: content})


def _truncate(root: str, rel: str, keep: int) -> None:
    path = os.path.join(root, rel)
    with open(path, "rb") as fh:
        data = fh.read(keep)
    with open(path, "wb") as fh:
        fh.write(data)


PROC_FILES = ["proc/stat", "proc/loadavg", "proc/meminfo", "proc/diskstats", "proc/net/dev", "proc/vmstat",
              "proc/pressure/cpu", "proc/1/mounts"]


@pytest.mark.parametrize("damage", ["empty", "truncated", "non-numeric", "directory", "vanished", "binary"])
def test_broken_files_never_fail_the_scrape(tmp_path, damage: str) -> None:
    root = _copy_real(str(tmp_path))
    for rel in PROC_FILES + ["sys/class/hwmon/hwmon0/temp1_input", "sys/devices/system/edac/mc/mc0/ce_count"]:
        if damage == "empty":
            _replace(root, rel, "")
        elif damage == "truncated":
            _truncate(root, rel, 37)
        elif damage == "non-numeric":
            with open(os.path.join(root, rel)) as fh:
                text = fh.read()
            _replace(root, rel, "".join("x" if c in "0123456789" else c for c in text))
        elif damage == "directory":
            _replace(root, rel, kind="dir")
        elif damage == "vanished":
            _replace(root, rel, kind="dangling")
        else:
            _replace(root, rel, bytes(range(256)) * 3)
    # A directory in place of a file is a read error: its families are missing and the scrape says so.
    text = nodetrees.scrape(node(root), success=0.0 if damage == "directory" else 1.0)
    names = helpers.all_names(text)
    # What does not depend on the damaged files is still there.
    assert one(text, "node_hwmon_temp_celsius", chip="acpitz", sensor="temp1") == -2.5
    assert one(text, "node_edac_correctable_errors_total", controller="1") == 17
    assert one(text, "node_pressure_io_waiting_seconds_total") == pytest.approx(4.614018)
    if damage != "truncated":  # a truncated one-number sysfs file is still a number
        assert not helpers.values(text, "node_edac_correctable_errors_total", controller="0")
        assert not helpers.values(text, "node_hwmon_temp_celsius", chip="platform_coretemp_0",
                                  sensor="temp1")
    if damage in ("non-numeric", "empty"):
        assert "node_load1" not in names and "node_memory_MemTotal_bytes" not in names


def test_bad_lines_are_counted_as_parse_errors(tmp_path) -> None:
    root = _copy_real(str(tmp_path))
    _replace(root, "proc/diskstats", "   8 0 sda 1 2 3\n 254 0 vda 1 2 3 4 5 6 7 8 9 10 11\n")
    before = parse_errors("node_diskstats")
    text = scrape(node(root))
    assert parse_errors("node_diskstats") == before + 1
    assert one(text, "node_disk_reads_completed_total", device="vda") == 1
    assert one(text, "hpcwatch_parse_errors_total", source="node_diskstats") >= 1


def test_missing_source_is_logged_once(tmp_path, caplog) -> None:
    root = _copy_real(str(tmp_path))
    shutil.rmtree(os.path.join(root, "proc", "pressure"))
    c = node(root)
    caplog.set_level(logging.DEBUG, logger="hpcwatch.collector.node")
    for _ in range(3):
        helpers.render(c)
    c.close()
    about_psi = [r for r in caplog.records if "pressure/cpu" in r.getMessage()]
    assert len(about_psi) == 3
    assert [r.levelno for r in about_psi] == [logging.INFO, logging.DEBUG, logging.DEBUG]


def test_no_procfs_is_reported_unavailable(tmp_path) -> None:
    c = node(str(tmp_path / "nowhere"))
    assert "not found" in c.available()
    c.close()
    assert node().available() is None


# --- fuzzing the whole collector over random file contents --------------------------------------------

@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(PROC_FILES), st.binary(max_size=300) | st.text(max_size=300), min_size=1))
def test_collector_fuzz_renders_valid_exposition(contents: dict[str, bytes | str]) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        root = _copy_real(tmp)
        for rel, data in contents.items():
            _replace(root, rel, data)
        text = helpers.render(c := node(root))
        c.close()
    assert helpers.collector_success(text) == {"node": 1.0}
    list(text_string_to_metric_families(text))


# --- this machine ---------------------------------------------------------------------------------------

def test_real_proc_and_sys_of_this_machine() -> None:
    c = NodeCollector(helpers.make_context(cls=NodeCollector, **{"pressure-avg10": True, "edac-csrows": True}))
    text = scrape(c)
    names = helpers.all_names(text)
    for family in ("node_cpu_seconds", "node_load1", "node_memory_MemTotal_bytes",
                   "node_context_switches", "node_intr", "node_forks", "node_boot_time_seconds",
                   "node_procs_running", "node_network_receive_bytes", "node_vmstat_pgfault"):
        assert family in names, family
    assert one(text, "node_cpu_seconds_total", cpu="0", mode="idle") > 0
    assert one(text, "node_memory_MemTotal_bytes") > 0


# --- the file reader --------------------------------------------------------------------------------

def test_read_text_reads_past_one_chunk_and_answers_none_for_non_files(tmp_path) -> None:
    from hpcwatch.exporters.files import CHUNK, read_text

    big = "x" * (CHUNK * 2 + 17)
    helpers.write_tree(str(tmp_path), {"big": big, "dir/inside": "1"})
    assert read_text(str(tmp_path / "big")) == big
    assert read_text(str(tmp_path / "big"), limit=10) == "x" * 10
    assert read_text(str(tmp_path / "dir"), quiet=True) is None
    assert read_text(str(tmp_path / "missing")) is None
    assert read_text("bad\0path") is None
    os.symlink(str(tmp_path / "gone"), str(tmp_path / "dangling"))
    assert read_text(str(tmp_path / "dangling")) is None
