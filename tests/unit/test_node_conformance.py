"""Conformance: the values node_exporter's end-to-end test and prometheus/procfs' tests expect, read from
their own fixture trees (copied with origin noted in each tree's README.md) by our collectors.

Families we deliberately do not export are listed in NOT_EXPORTED with the reason; every other
sample node_exporter expects must be there with its value, and we may add no series to its families.
"""

from __future__ import annotations

import os

import helpers
import pytest
from hpcwatch.exporters.node.collector import NodeCollector
from hpcwatch.exporters.node.diskstats import parse_diskstats
from hpcwatch.exporters.node.loadavg import parse_loadavg
from hpcwatch.exporters.node.meminfo import parse_meminfo
from hpcwatch.exporters.node.netdev import parse_netdev
from hpcwatch.exporters.node.rapl import read_rapl_zones
from hpcwatch.exporters.node.stat import parse_stat
from hpcwatch.exporters.textfile.collector import TextfileCollector

FIX = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "fixtures", "node"))
NE = os.path.join(FIX, "node_exporter")
PROCFS = os.path.join(FIX, "procfs")
HZ = os.sysconf("SC_CLK_TCK")

# Families of e2e-output.txt we leave out on purpose (also in docs/node-exporter-compat.md).
NOT_EXPORTED = {
    "node_disk_info": "udev properties (/run/udev/data): model, serial, WWN; not read by the node collector",
    "node_disk_ata_rotation_rate_rpm": "udev property",
    "node_disk_ata_write_cache": "udev property",
    "node_disk_ata_write_cache_enabled": "udev property",
    "node_disk_filesystem_info": "udev property",
    "node_disk_device_mapper_info": "udev property",
    "node_network_receive_nohandler_total": "only in netlink statistics; /proc/net/dev has no such column",
}
# node_exporter's e2e test reads netdev from the host's netlink, not from its fixtures: those values are
# the test machine's loopback, so netdev is held to procfs' /proc/net/dev fixture below instead.
HOST_DEPENDENT_PREFIXES = ("node_network_receive_", "node_network_transmit_")
NETCLASS_OK = ("node_network_transmit_queue_length",)
# node_exporter's end-to-end-test.sh flags that touch the shared collectors.
E2E_OPTIONS = {"hwmon-chip-include": "(applesmc|asus_nb_wmi|coretemp|hwmon4|ieee80211|nct6779)",
               "netclass-ignore-invalid-speed": True, "netclass-device-exclude": "(dmz|int)"}


def _skip(name: str) -> bool:
    return name in NOT_EXPORTED or (name.startswith(HOST_DEPENDENT_PREFIXES) and name not in NETCLASS_OK)


@pytest.fixture(scope="module")
def e2e() -> tuple[dict, dict]:
    ctx = helpers.make_context(procfs=os.path.join(NE, "proc"), sysfs=os.path.join(NE, "sys"), cls=NodeCollector,
                               **E2E_OPTIONS)
    node = NodeCollector(ctx)
    textfile = TextfileCollector(helpers.make_context(
        cls=TextfileCollector, directory=os.path.join(FIX, "textfile", "node_exporter", "two_metric_files")))
    try:
        text = helpers.render([node, textfile])
    finally:
        node.close()
    helpers.assert_promtool_clean(text)
    sysfs = os.path.join(NE, "sys")
    ours = {(n, tuple((k, v.replace(sysfs, "collector/fixtures/sys")) for k, v in labels)): v
            for (n, labels), v in helpers.samples(text).items()}
    with open(os.path.join(NE, "e2e-output-shared.prom")) as fh:
        want = helpers.samples(fh.read())
    return ours, want


def test_every_expected_sample_has_node_exporters_value(e2e) -> None:
    ours, want = e2e
    checked = 0
    for key, value in want.items():
        if _skip(key[0]):
            continue
        assert key in ours, f"missing {key}"
        assert ours[key] == pytest.approx(value, rel=1e-12, abs=1e-12), key
        checked += 1
    assert checked > 550  # cpu, stat, meminfo, NUMA, PSI incl. irq, vmstat, disks, netclass, hwmon, EDAC, RAPL


def test_no_series_node_exporter_would_not_have_in_its_families(e2e) -> None:
    ours, want = e2e
    families = {n for n, _ in want}
    extra = [k for k in ours if k[0] in families and k not in want and not _skip(k[0])]
    assert extra == []


def test_not_exported_families_are_the_listed_ones(e2e) -> None:
    ours, want = e2e
    missing = {n for (n, labels) in want if (n, labels) not in ours and not n.startswith(HOST_DEPENDENT_PREFIXES)}
    assert missing == {n for n in NOT_EXPORTED if not n.startswith(HOST_DEPENDENT_PREFIXES)}


def test_e2e_situations_we_fixed(e2e) -> None:
    ours, _ = e2e
    chips = {dict(labels)["chip"] for (n, labels) in ours if n == "node_hwmon_chip_names"}
    # three radios of one card and asus + asus_wmi_sensors on one device stay apart
    assert {"ieee80211_phy0_mt7996_phy0_0", "ieee80211_phy0_mt7996_phy0_1", "ieee80211_phy0_mt7996_phy0_2",
            "platform_asus_nb_wmi_asus", "platform_asus_nb_wmi_asus_wmi_sensors"} <= chips
    assert ours[("node_pressure_irq_stalled_seconds_total", ())] == pytest.approx(0.008494)  # no trailing newline
    unknown = {dict(labels)["controller"]: v for (n, labels), v in ours.items()
               if n == "node_edac_csrow_correctable_errors_total" and dict(labels)["csrow"] == "unknown"}
    assert unknown == {"0": 2.0}  # ce_noinfo_count


# --- prometheus/procfs' expectations ---------------------------------------------------------------

def _proc(name: str) -> str:
    with open(os.path.join(PROCFS, "proc", name)) as fh:
        return fh.read()


def test_procfs_meminfo() -> None:  # procfs meminfo_test.go TestMeminfo
    fields, errors = parse_meminfo(_proc("meminfo"))
    by = {f.key: f.value for f in fields}
    assert errors == 0
    want_kb = {"MemTotal": 15666184, "MemFree": 440324, "Buffers": 1020128, "Cached": 12007640, "Active_anon": 267256,
               "Inactive_file": 6532440, "Zswap": 22414, "Zswapped": 10502, "Committed_AS": 530844,
               "VmallocTotal": 34359738367, "Percpu": 26176, "Hugepagesize": 2048, "DirectMap2M": 16039936}
    for key, kb in want_kb.items():
        assert by[f"{key}_bytes"] == kb * 1024, key
    assert by["MemTotal_bytes"] == 16042172416 and by["Zswap_bytes"] == 22951936  # procfs' *Bytes values
    assert by["HugePages_Total"] == 0 and by["HugePages_Surp"] == 0


def test_procfs_stat() -> None:  # procfs stat_test.go TestStat
    s = parse_stat(_proc("stat"))
    assert s.cpus["7"][6] == 31  # cpu7 softirq ticks (procfs divides by USER_HZ, as the collector does)
    assert s.cpus["0"][:7] == (44490, 19, 21045, 1087069, 220, 1, 3410) and len(s.cpus) == 8
    # the `cpu` line (301854 user ticks in procfs' test) is the sum node_exporter does not export either
    assert (s.interrupts, s.context_switches, s.boot_time) == (73777505, 38014093, 1418183276)
    assert (s.forks, s.procs_running, s.procs_blocked) == (26442, 2, 1)


def test_procfs_loadavg() -> None:  # procfs loadavg_test.go TestLoadAvg
    assert parse_loadavg(_proc("loadavg")) == (0.02, 0.04, 0.05)


def test_procfs_net_dev() -> None:  # procfs net_dev_test.go TestNetDev
    devs = {d.device: d.counters for d in parse_netdev(_proc("net/dev"))[0]}
    want = {"vethf345468": (648, 8, 438, 5), "lo": (1664039048, 1566805, 1664039048, 1566805),
            "docker0": (2568, 38, 438, 5), "eth0": (874354587, 1036395, 563352563, 732147)}
    assert {d: (c[0], c[1], c[8], c[9]) for d, c in devs.items()} == want
    assert all(sum(c) - (c[0] + c[1] + c[8] + c[9]) == 0 for c in devs.values())


def test_procfs_diskstats() -> None:  # procfs blockdevice/stats_test.go TestDiskstats
    disks, errors = parse_diskstats(_proc("diskstats"))
    assert errors == 0 and len(disks) == 52 and disks[0].device == "ram0"
    assert len(disks[1].stats) + 3 == 14  # IoStatsCount counts major, minor and name
    assert disks[24].stats[4] == 28444756  # WriteIOs
    assert disks[48].stats[14] == 11130 and len(disks[48].stats) + 3 == 18  # DiscardTicks
    assert len(disks[49].stats) + 3 == 20 and disks[49].stats[15:17] == (127, 182)  # flushes, flush time


def test_procfs_collector_values() -> None:
    """The same trees through the node collector: node_exporter's names over procfs' values."""
    ctx = helpers.make_context(procfs=os.path.join(PROCFS, "proc"), sysfs=os.path.join(PROCFS, "sys"),
                               cls=NodeCollector, **{"diskstats-device-exclude": ""})
    c = NodeCollector(ctx, stat=lambda _p: os.statvfs_result((4096,) * 2 + (1,) * 8))
    text = helpers.render(c)
    c.close()
    helpers.assert_promtool_clean(text)

    def one(name: str, **labels: str) -> float:
        [v] = helpers.values(text, name, **labels)
        return v

    assert one("node_network_receive_bytes_total", device="lo") == 1664039048
    assert one("node_network_transmit_packets_total", device="eth0") == 732147
    assert one("node_disk_writes_completed_total", device="sda") == 28444756
    assert one("node_disk_discard_time_seconds_total", device="sdb2") == pytest.approx(11.130)
    assert one("node_disk_flush_requests_total", device="sdc") == 127
    assert one("node_pressure_cpu_waiting_seconds_total") == pytest.approx(15e-6)  # total=15 µs
    assert one("node_pressure_memory_stalled_seconds_total") == pytest.approx(25e-6)
    assert one("node_memory_MemTotal_bytes") == 16042172416
    # procfs sysfs/net_class_test.go TestNetClass: eth0
    assert one("node_network_flags", device="eth0") == 4867 and one("node_network_device_id", device="eth0") == 32
    assert one("node_network_speed_bytes", device="eth0") == 1000 * 1000 * 1000 / 8
    assert one("node_network_carrier_down_changes_total", device="eth0") == 1
    assert one("node_network_info", device="eth0", address="01:01:01:01:01:01", duplex="full", operstate="up") == 1
    assert one("node_network_dormant", device="eth0") == 1 and one("node_network_iface_link_mode", device="eth0") == 1


def test_procfs_rapl_zones() -> None:  # procfs sysfs/class_powercap_test.go TestNewRaplValues
    zones = read_rapl_zones(os.path.join(PROCFS, "sys", "class", "powercap"))
    assert len(zones) == 3 and zones[2].index == 10 and zones[2].name == "package"
    with open(os.path.join(zones[0].path, "energy_uj")) as fh:
        assert int(fh.read()) == 240422366267
