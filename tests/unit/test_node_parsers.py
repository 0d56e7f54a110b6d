"""Pure parsers of the node collector: exact records from real-format fixtures, and fuzzing."""

from __future__ import annotations

import math
import os
import re

from hpcwatch.exporters.node.diskstats import parse_diskstats
from hpcwatch.exporters.node.edac import numbered
from hpcwatch.exporters.node.filesystem import parse_mounts, unescape_mount_field
from hpcwatch.exporters.node.loadavg import parse_loadavg
from hpcwatch.exporters.node.meminfo import field_key, parse_meminfo
from hpcwatch.exporters.node.netdev import parse_netdev
from hpcwatch.exporters.node.pressure import parse_pressure
from hpcwatch.exporters.node.stat import parse_stat
from hpcwatch.exporters.node.vmstat import DEFAULT_FIELDS, parse_vmstat
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "node")
METRIC_NAME = re.compile(r"^[a-zA-Z_:][a-zA-Z0-9_:]*$")


def fixture(*parts: str) -> str:
    with open(os.path.join(FIX, *parts)) as fh:
        return fh.read()


# Text that looks like /proc files: digits, words, colons, equals signs, tabs and newlines, plus noise.
proc_text = st.one_of(
    st.text(),
    st.text(alphabet=st.sampled_from(list("0123456789 -.:=\n\tabcdefkBcpusomefulltotal()_\\")), max_size=400),
    st.lists(st.lists(st.sampled_from(["cpu", "cpu0", "cpu1x", "intr", "ctxt", "btime", "processes", "some",
                                       "full", "total=5", "avg10=1.5", "avg10=nan", "kB", "MemTotal:", "x:",
                                       "12", "-3", "1e9", "0x10", "", "loop0", "eth0:", "|"]),
                       max_size=20).map(" ".join), max_size=20).map("\n".join),
)


# --- /proc/stat ------------------------------------------------------------------------------------

def test_stat_real_kernel_6() -> None:
    s = parse_stat(fixture("real", "proc", "stat"))
    assert s.cpus == {"0": (4193, 0, 2109, 30079, 60, 0, 19, 12, 0, 0),
                      "1": (7510, 0, 3422, 25032, 463, 0, 90, 14, 0, 0)}
    assert (s.context_switches, s.interrupts, s.forks) == (651543, 307803, 14907)
    assert (s.boot_time, s.procs_running, s.procs_blocked, s.errors) == (1795273382, 2, 0, 0)


def test_stat_old_kernel_has_fewer_modes_and_bad_lines_are_counted() -> None:
    s = parse_stat("cpu  1 2 3 4\ncpu0 1 2 3 4\ncpu1 1 2\ncpux 1 2 3 4\ncpu2 1 2 x 4\nctxt many\nbtime 5\n")
    assert s.cpus == {"0": (1, 2, 3, 4)}
    assert s.errors == 4  # cpu1 truncated, cpux, cpu2 non-numeric, ctxt non-numeric
    assert s.boot_time == 5 and s.context_switches is None


def test_stat_negative_ticks_are_rejected() -> None:
    s = parse_stat("cpu0 1 -2 3 4 5 6 7 8\n")
    assert s.cpus == {} and s.errors == 1


@settings(max_examples=300)
@given(proc_text)
def test_stat_fuzz(text: str) -> None:
    s = parse_stat(text)
    for num, ticks in s.cpus.items():
        assert num.isdigit() and 4 <= len(ticks) <= 10 and min(ticks) >= 0


# --- /proc/loadavg ---------------------------------------------------------------------------------

def test_loadavg() -> None:
    assert parse_loadavg(fixture("el7", "proc", "loadavg")) == (12.5, 11.75, 10.01)
    assert parse_loadavg("") is None
    assert parse_loadavg("0.1 0.2") is None
    assert parse_loadavg("0.1 x 0.3 1/2 3") is None
    assert parse_loadavg("nan 1 2") is None


@given(proc_text)
def test_loadavg_fuzz(text: str) -> None:
    loads = parse_loadavg(text)
    assert loads is None or (len(loads) == 3 and all(math.isfinite(v) for v in loads))


# --- /proc/meminfo ---------------------------------------------------------------------------------

def test_meminfo_real_kernel_6_named_as_node_exporter_names_it() -> None:
    fields, errors = parse_meminfo(fixture("real", "proc", "meminfo"))
    by_key = {f.key: f for f in fields}
    assert errors == 0
    assert by_key["MemTotal_bytes"].value == 24684092 * 1024 and by_key["MemTotal_bytes"].field == "MemTotal"
    assert by_key["Active_anon_bytes"].value == 1580 * 1024 and by_key["Active_anon_bytes"].field == "Active(anon)"
    assert by_key["HugePages_Total"].value == 0 and not by_key["HugePages_Total"].is_bytes
    assert by_key["SReclaimable_bytes"].is_bytes
    assert by_key["DirectMap1G_bytes"].value == 25165824 * 1024


def test_meminfo_el7_variant() -> None:
    fields, errors = parse_meminfo(fixture("el7", "proc", "meminfo"))
    by_key = {f.key: f for f in fields}
    assert errors == 0 and len(fields) == 47
    assert by_key["HardwareCorrupted_bytes"].value == 0
    assert by_key["HugePages_Total"].value == 64 and by_key["HugePages_Rsvd"].value == 2
    assert by_key["VmallocChunk_bytes"].value == 34358947836 * 1024


def test_meminfo_bad_lines() -> None:
    fields, errors = parse_meminfo("MemTotal: 10 kB\nMemFree: x kB\nBroken\nOdd: 1 MB\nWeird-name: 1 kB\nHuge: 7\n")
    assert [(f.key, f.value, f.is_bytes) for f in fields] == [("MemTotal_bytes", 10240.0, True), ("Huge", 7.0, False)]
    assert errors == 4


def test_field_key_is_node_exporters_rule() -> None:
    assert field_key("MemTotal", True) == "MemTotal_bytes"
    assert field_key("Inactive(file)", True) == "Inactive_file_bytes"
    assert field_key("NFS_Unstable", True) == "NFS_Unstable_bytes"
    assert field_key("HugePages_Surp", False) == "HugePages_Surp"
    assert field_key("a-b", True) is None and field_key("", False) is None and field_key("1x", False) is None


@settings(max_examples=300)
@given(proc_text)
def test_meminfo_fuzz(text: str) -> None:
    fields, errors = parse_meminfo(text)
    assert errors >= 0
    for f in fields:
        assert METRIC_NAME.match("node_memory_" + f.key), f.key
        assert f.key.endswith("_bytes") == f.is_bytes


@given(st.text(max_size=30), st.booleans())
def test_field_key_fuzz(field: str, is_bytes: bool) -> None:
    key = field_key(field, is_bytes)
    assert key is None or METRIC_NAME.match(key)


# --- /proc/pressure --------------------------------------------------------------------------------

def test_pressure_real() -> None:
    lines, errors = parse_pressure(fixture("real", "proc", "pressure", "io"))
    assert errors == 0
    assert [(ln.kind, ln.stalled_seconds, ln.avg10_ratio) for ln in lines] == [
        ("some", 4.614018, 0.0001), ("full", 4.099162, 0.0001)]


def test_pressure_old_kernel_cpu_has_only_some_and_bad_lines_count() -> None:
    lines, errors = parse_pressure("some avg10=1.00 avg60=0 avg300=0 total=100\n")
    assert [ln.kind for ln in lines] == ["some"] and errors == 0
    lines, errors = parse_pressure("some avg10=1.00 total=\nfull avg10=x total=5\nhalf avg10=1 total=3\n")
    assert lines == [] and errors == 3


@settings(max_examples=300)
@given(proc_text)
def test_pressure_fuzz(text: str) -> None:
    lines, _ = parse_pressure(text)
    for ln in lines:
        assert ln.kind in ("some", "full") and ln.stalled_seconds >= 0 and 0 <= ln.avg10_ratio <= 1


# --- /proc/diskstats -------------------------------------------------------------------------------

def test_diskstats_20_fields() -> None:
    disks, errors = parse_diskstats(fixture("real", "proc", "diskstats"))
    by = {d.device: d.stats for d in disks}
    assert errors == 0 and len(by) == 13
    assert by["vda"] == (46143, 9106, 2724314, 15706, 55019, 22512, 4213632, 19095, 0, 9556, 36258,
                         10593, 84, 1669064, 870, 13409, 585)


def test_diskstats_14_and_18_fields() -> None:
    disks, errors = parse_diskstats(fixture("el7", "proc", "diskstats"))
    assert errors == 0 and [len(d.stats) for d in disks] == [11, 11, 11]
    assert disks[2] == ("dm-0", (120000, 0, 9800000, 23000, 230000, 0, 12000000, 340000, 2, 120000, 363000))
    disks, errors = parse_diskstats(fixture("variants", "diskstats-4.18"))
    assert errors == 0 and [len(d.stats) for d in disks] == [15, 15, 15] and disks[0].stats[14] == 35


def test_diskstats_bad_lines() -> None:
    disks, errors = parse_diskstats("8 0 sda 1 2 3\n8 0 sdb 1 2 3 4 5 6 7 8 9 10 x\n8 0 sdc 1 2 3 4 5 6 7 8 9 10 -1\n")
    assert disks == [] and errors == 3


@settings(max_examples=300)
@given(proc_text)
def test_diskstats_fuzz(text: str) -> None:
    disks, _ = parse_diskstats(text)
    assert all(11 <= len(d.stats) <= 17 and min(d.stats) >= 0 for d in disks)


# --- /proc/net/dev ---------------------------------------------------------------------------------

def test_netdev_el7() -> None:
    devs, errors = parse_netdev(fixture("el7", "proc", "net", "dev"))
    assert errors == 0
    assert devs[0].device == "eth0" and len(devs[0].counters) == 16
    rx, tx = devs[0].counters[:8], devs[0].counters[8:]
    assert (rx[:4], tx[:4]) == ((98765432101, 87654321, 3, 7), (12345678901, 23456789, 0, 1))
    assert [d.device for d in devs] == ["eth0", "lo", "ib0"]


def test_netdev_bad_lines() -> None:
    devs, errors = parse_netdev("eth0: 1 2 3\nnocolon 1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16\n"
                                "eth1: 1 2 3 4 5 6 7 8 x 10 11 12 13 14 15 16\n")
    assert devs == [] and errors == 3


@settings(max_examples=300)
@given(proc_text)
def test_netdev_fuzz(text: str) -> None:
    devs, _ = parse_netdev(text)
    assert all(d.device and ":" not in d.device and min(d.counters) >= 0 for d in devs)


# --- /proc/vmstat ----------------------------------------------------------------------------------

def test_vmstat_default_fields_are_node_exporters() -> None:
    wanted = re.compile(DEFAULT_FIELDS)
    values, errors = parse_vmstat(fixture("el7", "proc", "vmstat"), wanted)
    assert errors == 0 and values["pswpin"] == 12 and values["pgfault"] == 1234567890
    assert set(values) <= {"pgpgin", "pgpgout", "pswpin", "pswpout", "pgfault", "pgmajfault", "oom_kill"}
    values, errors = parse_vmstat(fixture("real", "proc", "vmstat"), wanted)
    assert set(values) == {"pgpgin", "pgpgout", "pswpin", "pswpout", "pgfault", "pgmajfault", "oom_kill"}
    assert parse_vmstat("oom_kill 3\npgfault x\nnr_free_pages 5\n", wanted) == ({"oom_kill": 3}, 1)


@given(proc_text)
def test_vmstat_fuzz(text: str) -> None:
    values, errors = parse_vmstat(text, re.compile(DEFAULT_FIELDS))
    assert all(re.match(DEFAULT_FIELDS, k) for k in values) and errors >= 0


# --- mount table -----------------------------------------------------------------------------------

def test_mounts_real_dedupe_and_escapes() -> None:
    mounts, errors = parse_mounts(fixture("real", "proc", "1", "mounts"))
    by = {m.mountpoint: m for m in mounts}
    assert errors == 0 and len(mounts) == 13  # /run is mounted twice: one entry, the later one
    assert by["/run"].device == "tmpfs" and list(by)[-1] == "/var/lib/docker/overlay2/abc/merged"
    assert by["/srv/with space"] == ("/dev/vdb", "/srv/with space", "ext4", True)
    assert by["/home"] == ("nfs01:/export/home", "/home", "nfs4", False)


def test_unescape_mount_field() -> None:
    assert unescape_mount_field(r"/data\040set\011tab\134back") == "/data set\ttab\\back"
    assert unescape_mount_field("\\04") == "\\04" and unescape_mount_field("\\999") == "\\999"


@settings(max_examples=300)
@given(proc_text)
def test_mounts_fuzz(text: str) -> None:
    mounts, errors = parse_mounts(text)
    assert len({m.mountpoint for m in mounts}) == len(mounts) and errors >= 0


@given(st.text())
def test_unescape_fuzz(text: str) -> None:
    assert isinstance(unescape_mount_field(text), str)


# --- EDAC helpers ---------------------------------------------------------------------------------

def test_edac_numbered() -> None:
    assert numbered(["mc10", "mc2", "mcx", "power", "mc"], "mc") == ["2", "10"]


@given(st.lists(st.text(max_size=12), max_size=20))
def test_edac_numbered_fuzz(entries: list[str]) -> None:
    assert all(n.isdigit() for n in numbered(entries, "mc"))
