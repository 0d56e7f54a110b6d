"""Conformance with other Lustre exporters' test suites: our fixture trees reproduce the situations their
tests are built on, and every value they assert for a family we share is asserted here, mapped to our
names. Deliberate differences are listed in NOT_EXPORTED / docs/conformance.md.

HPE/GSI `lustre_exporter` (Go, Lustre 2.10 on ZFS, /proc/fs/lustre): tests/fixtures/conformance/lustre_2.10,
written by make_lustre_2_10_tree.py. whamcloud `lustrefs-exporter` (Rust, 2.14 and DDN 2.14, lctl output):
tests/fixtures/conformance/lustrefs_exporter, written by make_lustrefs_exporter_situations.py.
"""

from __future__ import annotations

import os

import helpers
import pytest
from hpcwatch.exporters.lnet.collector import LnetCollector
from hpcwatch.exporters.lustre.collector import LustreCollector
from hpcwatch.exporters.lustre_health.collector import LustreHealthCollector
from hpcwatch.exporters.lustre_server.collector import LustreServerCollector
from test_lustre_collectors import fake_lctl
from test_lustre_host import fake_lnetctl

CONF = os.path.join(os.path.dirname(__file__), "..", "fixtures", "conformance")

# lustre_exporter families with no counterpart here, and why (docs/conformance.md has the same table).
NOT_EXPORTED = {
    "lustre_read_minimum_size_bytes": "min/max of a counter since its reset says little; rates come from sums",
    "lustre_read_maximum_size_bytes": "as above",
    "lustre_write_minimum_size_bytes": "as above",
    "lustre_write_maximum_size_bytes": "as above",
    "lustre_job_read_minimum_size_bytes": "as above",
    "lustre_job_read_maximum_size_bytes": "as above",
    "lustre_job_write_minimum_size_bytes": "as above",
    "lustre_job_write_maximum_size_bytes": "as above",
    # and lustre_{capacity,free,available}_kilobytes / inodes_* with component="client": a client's df of
    # the whole filesystem, which the node collector's filesystem families already give.
}
LNET = {  # lustre_exporter LNet family -> (ours, labels)
    "lustre_send_count_total": ("hpc_lustre_lnet_messages_total", {"direction": "sent"}),
    "lustre_receive_count_total": ("hpc_lustre_lnet_messages_total", {"direction": "received"}),
    "lustre_route_count_total": ("hpc_lustre_lnet_messages_total", {"direction": "routed"}),
    "lustre_send_bytes_total": ("hpc_lustre_lnet_bytes_total", {"direction": "sent"}),
    "lustre_receive_bytes_total": ("hpc_lustre_lnet_bytes_total", {"direction": "received"}),
    "lustre_route_bytes_total": ("hpc_lustre_lnet_bytes_total", {"direction": "routed"}),
    "lustre_drop_count_total": ("hpc_lustre_lnet_dropped_messages_total", {}),
    "lustre_drop_bytes_total": ("hpc_lustre_lnet_dropped_bytes_total", {}),
    "lustre_allocated": ("hpc_lustre_lnet_messages_allocated", {}),
    "lustre_maximum": ("hpc_lustre_lnet_messages_allocated_max", {}),
    "lustre_errors_total": ("hpc_lustre_lnet_errors_total", {}),
}
CAPACITY = {"lustre_capacity_kilobytes": "hpc_lustre_target_capacity_bytes",
            "lustre_free_kilobytes": "hpc_lustre_target_free_bytes",
            "lustre_available_kilobytes": "hpc_lustre_target_available_bytes",
            "lustre_inodes_maximum": "hpc_lustre_target_files", "lustre_inodes_free": "hpc_lustre_target_files_free"}


def hpe_to_ours(family: str, labels: dict[str, str]) -> tuple[str, dict[str, str], float, bool] | None:
    """(our family, our labels, what to divide ours by, whether absent means 0) for one of their samples."""
    comp, target, op = labels.get("component"), labels.get("target", ""), labels.get("operation")
    client = comp == "client"
    where = {"client": target} if client else {"target": target}
    if family == "lustre_health_check":
        return "hpc_lustre_healthy", {}, 1, False
    if family in LNET:
        name, ours = LNET[family]
        return name, ours, 1, False
    if family in CAPACITY:
        if client:  # llite kbytes*: a client's df of the whole filesystem
            return None
        kib = family.endswith("_kilobytes")
        # Their MGS label is the OSD directory's parent ("osd"); ours is the target, MGS.
        return CAPACITY[family], {"target": "MGS" if comp == "mgs" else target}, 1024 if kib else 1, False
    if family == "lustre_stats_total":
        name = "hpc_lustre_client_operations_total" if client else "hpc_lustre_target_operations_total"
        return name, {**where, "operation": op}, 1, False
    for rw in ("read", "write"):
        if family == f"lustre_{rw}_samples_total":
            name = "hpc_lustre_client_operations_total" if client else "hpc_lustre_target_operations_total"
            return name, {**where, "operation": rw}, 1, False
        if family == f"lustre_{rw}_bytes_total":
            name = "hpc_lustre_client_bytes_total" if client else "hpc_lustre_target_bytes_total"
            return name, {**where, "operation": rw}, 1, False
        job = {"target": target, "jobid": labels.get("jobid", "")}
        if family == f"lustre_job_{rw}_samples_total":
            return "hpc_lustre_job_operations_total", {**job, "operation": rw}, 1, True
        if family == f"lustre_job_{rw}_bytes_total":
            return "hpc_lustre_job_bytes_total", {**job, "operation": rw}, 1, True
    if family == "lustre_job_stats_total":
        return "hpc_lustre_job_operations_total", {"target": target, "jobid": labels["jobid"], "operation": op}, 1, True
    return None


@pytest.fixture(scope="module")
def lustre_2_10() -> str:
    root = os.path.join(CONF, "lustre_2.10")
    proc, sys_ = os.path.join(root, "proc"), os.path.join(root, "sys")
    server = LustreServerCollector(helpers.make_context(procfs=proc, sysfs=sys_, agent="cluster",
                                                       cls=LustreServerCollector, lctl="/nonexistent/lctl"))
    assert server.source.refresh_now(), server.source.last_error
    node = [LustreCollector(helpers.make_context(procfs=proc, sysfs=sys_, cls=LustreCollector,
                                                 lctl="/nonexistent/lctl")),
            LustreHealthCollector(helpers.make_context(procfs=proc, sysfs=sys_, cls=LustreHealthCollector))]
    node.append(LnetCollector(helpers.make_context(procfs=proc, sysfs=sys_, cls=LnetCollector, source="file")))
    text = helpers.render([server, *node])
    helpers.assert_promtool_clean(text)
    assert set(helpers.collector_success(text).values()) == {1}
    return text


def test_lustre_exporter_2_10_every_shared_value(lustre_2_10):
    checked = 0
    for family, label_text, expected in HPE_SAMPLES:
        labels = dict(kv.split("=", 1) for kv in label_text.split(", "))
        mapped = hpe_to_ours(family, labels)
        if mapped is None:
            assert family in NOT_EXPORTED or (family in CAPACITY and labels["component"] == "client"), family
            continue
        name, ours, divisor, zero_if_absent = mapped
        got = helpers.values(lustre_2_10, name, **ours)
        if not got and zero_if_absent:
            got = [0]  # job_stats counters with zero samples are not exported
        assert [v / divisor for v in got] == [expected], f"{family}{labels} -> {name}{ours}"
        checked += 1
    assert checked == 153  # of 176: the rest are min/max sizes and a client's df (NOT_EXPORTED)


def brw_rows(text: str, family: str, target: str, op: str) -> tuple[dict[int, float], float]:
    """Per-row counts back from our cumulative buckets, and what lies past the last bucket (+Inf only)."""
    scale = 1000 if family.endswith("_seconds") else 1  # millisecond rows
    buckets, inf = [], None
    for (name, labels), v in helpers.samples(text).items():
        d = dict(labels)
        if name == family + "_bucket" and d["target"] == target and d["operation"] == op:
            if d["le"] == "+Inf":
                inf = v
            else:
                buckets.append((float(d["le"]), v))
    rows, prev = {}, 0.0
    for le, cum in sorted(buckets):
        rows[round(le * scale)] = cum - prev
        prev = cum
    assert inf is not None, (family, target, op)
    return rows, inf - prev


def test_lustre_exporter_2_10_brw_stats_rows(lustre_2_10):
    for (family, target, op), expected in HPE_BRW_ROWS.items():
        rows, beyond = brw_rows(lustre_2_10, family, target, op)
        for bound, count in expected.items():
            if bound == 31 and family == "hpc_lustre_brw_discontiguous_pages":
                assert beyond == count  # Lustre's last slot holds 31 and more: +Inf only
            else:
                assert rows.get(bound) == count, (family, target, op, bound)


def test_lustre_exporter_2_10_differences_we_keep(lustre_2_10):
    # Ours also exports the MDT's and MGS's brw_stats; theirs reads OSTs only.
    assert helpers.values(lustre_2_10, "hpc_lustre_brw_io_size_bytes_count", target="MGS", operation="read") == []
    # 2.10 obd-method counters they skip (preprw, commitrw, reconnect) are operations here too.
    assert helpers.values(lustre_2_10, "hpc_lustre_target_operations_total", target="lustrefs-OST0000",
                          operation="reconnect") == [1]
    # getxattr_hits: theirs drops it, ours exports it apart from operations.
    assert helpers.values(lustre_2_10, "hpc_lustre_client_xattr_cache_hits_total") == [20]


HPE_SAMPLES = [  # (lustre_exporter family, its labels, the value its test expects)
    ('lustre_allocated', 'component=lnet, target=lnet', 0),
    ('lustre_available_kilobytes', 'component=client, target=lustrefs-ffff88105db50000', 283000299520),
    ('lustre_available_kilobytes', 'component=mdt, target=lustrefs-MDT0000', 2241498368),
    ('lustre_available_kilobytes', 'component=mgs, target=osd', 1120746880),
    ('lustre_available_kilobytes', 'component=ost, target=lustrefs-OST0000', 47025124352),
    ('lustre_available_kilobytes', 'component=ost, target=lustrefs-OST0002', 47168396288),
    ('lustre_available_kilobytes', 'component=ost, target=lustrefs-OST0004', 31445593088),
    ('lustre_available_kilobytes', 'component=ost, target=lustrefs-OST0006', 31445593088),
    ('lustre_capacity_kilobytes', 'component=client, target=lustrefs-ffff88105db50000', 283010362368),
    ('lustre_capacity_kilobytes', 'component=mdt, target=lustrefs-MDT0000', 2241506560),
    ('lustre_capacity_kilobytes', 'component=mgs, target=osd', 1120753280),
    ('lustre_capacity_kilobytes', 'component=ost, target=lustrefs-OST0000', 47168367616),
    ('lustre_capacity_kilobytes', 'component=ost, target=lustrefs-OST0002', 47168409600),
    ('lustre_capacity_kilobytes', 'component=ost, target=lustrefs-OST0004', 31445606400),
    ('lustre_capacity_kilobytes', 'component=ost, target=lustrefs-OST0006', 31445606400),
    ('lustre_drop_bytes_total', 'component=lnet, target=lnet', 0),
    ('lustre_drop_count_total', 'component=lnet, target=lnet', 0),
    ('lustre_errors_total', 'component=lnet, target=lnet', 0),
    ('lustre_free_kilobytes', 'component=client, target=lustrefs-ffff88105db50000', 283007085568),
    ('lustre_free_kilobytes', 'component=mdt, target=lustrefs-MDT0000', 2241500416),
    ('lustre_free_kilobytes', 'component=mgs, target=osd', 1120748928),
    ('lustre_free_kilobytes', 'component=ost, target=lustrefs-OST0000', 47029440512),
    ('lustre_free_kilobytes', 'component=ost, target=lustrefs-OST0002', 47168398336),
    ('lustre_free_kilobytes', 'component=ost, target=lustrefs-OST0004', 31445595136),
    ('lustre_free_kilobytes', 'component=ost, target=lustrefs-OST0006', 31445595136),
    ('lustre_health_check', 'component=health, target=lustre', 1),
    ('lustre_inodes_free', 'component=client, target=lustrefs-ffff88105db50000', 430405267),
    ('lustre_inodes_free', 'component=mdt, target=lustrefs-MDT0000', 430405292),
    ('lustre_inodes_free', 'component=mgs, target=osd', 231003975),
    ('lustre_inodes_free', 'component=ost, target=lustrefs-OST0000', 45927188),
    ('lustre_inodes_free', 'component=ost, target=lustrefs-OST0002', 1474012448),
    ('lustre_inodes_free', 'component=ost, target=lustrefs-OST0004', 982674848),
    ('lustre_inodes_free', 'component=ost, target=lustrefs-OST0006', 982674848),
    ('lustre_inodes_maximum', 'component=client, target=lustrefs-ffff88105db50000', 430405497),
    ('lustre_inodes_maximum', 'component=mdt, target=lustrefs-MDT0000', 430405522),
    ('lustre_inodes_maximum', 'component=mgs, target=osd', 231004127),
    ('lustre_inodes_maximum', 'component=ost, target=lustrefs-OST0000', 45927444),
    ('lustre_inodes_maximum', 'component=ost, target=lustrefs-OST0002', 1474012704),
    ('lustre_inodes_maximum', 'component=ost, target=lustrefs-OST0004', 982675104),
    ('lustre_inodes_maximum', 'component=ost, target=lustrefs-OST0006', 982675104),
    ('lustre_job_read_bytes_total', 'component=ost, jobid=24, target=lustrefs-OST0000', 0),
    ('lustre_job_read_bytes_total', 'component=ost, jobid=26, target=lustrefs-OST0000', 0),
    ('lustre_job_read_bytes_total', 'component=ost, jobid=43, target=lustrefs-OST0000', 0),
    ('lustre_job_read_maximum_size_bytes', 'component=ost, jobid=24, target=lustrefs-OST0000', 0),
    ('lustre_job_read_maximum_size_bytes', 'component=ost, jobid=26, target=lustrefs-OST0000', 0),
    ('lustre_job_read_maximum_size_bytes', 'component=ost, jobid=43, target=lustrefs-OST0000', 0),
    ('lustre_job_read_minimum_size_bytes', 'component=ost, jobid=24, target=lustrefs-OST0000', 0),
    ('lustre_job_read_minimum_size_bytes', 'component=ost, jobid=26, target=lustrefs-OST0000', 0),
    ('lustre_job_read_minimum_size_bytes', 'component=ost, jobid=43, target=lustrefs-OST0000', 0),
    ('lustre_job_read_samples_total', 'component=ost, jobid=24, target=lustrefs-OST0000', 0),
    ('lustre_job_read_samples_total', 'component=ost, jobid=26, target=lustrefs-OST0000', 0),
    ('lustre_job_read_samples_total', 'component=ost, jobid=43, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=close, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=crossdir_rename, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=getattr, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=getxattr, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=link, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=mkdir, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=mknod, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=open, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=rename, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=rmdir, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=samedir_rename, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=setattr, target=lustrefs-MDT0000', 1),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=setxattr, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=statfs, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=sync, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=43, operation=unlink, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=close, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=crossdir_rename, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=getattr, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=getxattr, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=link, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=mkdir, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=mknod, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=open, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=rename, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=rmdir, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=samedir_rename, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=setattr, target=lustrefs-MDT0000', 1),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=setxattr, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=statfs, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=sync, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=mdt, jobid=44, operation=unlink, target=lustrefs-MDT0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=create, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=destroy, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=get_info, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=getattr, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=punch, target=lustrefs-OST0000', 1),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=quotactl, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=set_info, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=setattr, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=statfs, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=24, operation=sync, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=create, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=destroy, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=get_info, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=getattr, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=punch, target=lustrefs-OST0000', 1),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=quotactl, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=set_info, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=setattr, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=statfs, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=26, operation=sync, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=create, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=destroy, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=get_info, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=getattr, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=punch, target=lustrefs-OST0000', 1),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=quotactl, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=set_info, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=setattr, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=statfs, target=lustrefs-OST0000', 0),
    ('lustre_job_stats_total', 'component=ost, jobid=43, operation=sync, target=lustrefs-OST0000', 0),
    ('lustre_job_write_bytes_total', 'component=ost, jobid=24, target=lustrefs-OST0000', 215147593728),
    ('lustre_job_write_bytes_total', 'component=ost, jobid=26, target=lustrefs-OST0000', 185838792704),
    ('lustre_job_write_bytes_total', 'component=ost, jobid=43, target=lustrefs-OST0000', 21711745024),
    ('lustre_job_write_maximum_size_bytes', 'component=ost, jobid=24, target=lustrefs-OST0000', 4194304),
    ('lustre_job_write_maximum_size_bytes', 'component=ost, jobid=26, target=lustrefs-OST0000', 4194304),
    ('lustre_job_write_maximum_size_bytes', 'component=ost, jobid=43, target=lustrefs-OST0000', 4194304),
    ('lustre_job_write_minimum_size_bytes', 'component=ost, jobid=24, target=lustrefs-OST0000', 4096),
    ('lustre_job_write_minimum_size_bytes', 'component=ost, jobid=26, target=lustrefs-OST0000', 4096),
    ('lustre_job_write_minimum_size_bytes', 'component=ost, jobid=43, target=lustrefs-OST0000', 4096),
    ('lustre_job_write_samples_total', 'component=ost, jobid=24, target=lustrefs-OST0000', 64575),
    ('lustre_job_write_samples_total', 'component=ost, jobid=26, target=lustrefs-OST0000', 56048),
    ('lustre_job_write_samples_total', 'component=ost, jobid=43, target=lustrefs-OST0000', 7906),
    ('lustre_maximum', 'component=lnet, target=lnet', 28),
    ('lustre_read_bytes_total', 'component=client, target=lustrefs-ffff88105db50000', 4194304),
    ('lustre_read_maximum_size_bytes', 'component=client, target=lustrefs-ffff88105db50000', 4194304),
    ('lustre_read_minimum_size_bytes', 'component=client, target=lustrefs-ffff88105db50000', 4194304),
    ('lustre_read_samples_total', 'component=client, target=lustrefs-ffff88105db50000', 1),
    ('lustre_receive_bytes_total', 'component=lnet, target=lnet', 53029565353720),
    ('lustre_receive_count_total', 'component=lnet, target=lnet', 101719291),
    ('lustre_route_bytes_total', 'component=lnet, target=lnet', 0),
    ('lustre_route_count_total', 'component=lnet, target=lnet', 0),
    ('lustre_send_bytes_total', 'component=lnet, target=lnet', 21201322992),
    ('lustre_send_count_total', 'component=lnet, target=lnet', 101719323),
    ('lustre_stats_total', 'component=client, operation=alloc_inode, target=lustrefs-ffff88105db50000', 2),
    ('lustre_stats_total', 'component=client, operation=close, target=lustrefs-ffff88105db50000', 96),
    ('lustre_stats_total', 'component=client, operation=getattr, target=lustrefs-ffff88105db50000', 41),
    ('lustre_stats_total', 'component=client, operation=getxattr, target=lustrefs-ffff88105db50000', 85),
    ('lustre_stats_total', 'component=client, operation=inode_permission, target=lustrefs-ffff88105db50000', 398),
    ('lustre_stats_total', 'component=client, operation=open, target=lustrefs-ffff88105db50000', 136),
    ('lustre_stats_total', 'component=client, operation=readdir, target=lustrefs-ffff88105db50000', 12),
    ('lustre_stats_total', 'component=client, operation=removexattr, target=lustrefs-ffff88105db50000', 134),
    ('lustre_stats_total', 'component=client, operation=truncate, target=lustrefs-ffff88105db50000', 134),
    ('lustre_stats_total', 'component=mdt, operation=close, target=lustrefs-MDT0000', 9),
    ('lustre_stats_total', 'component=mdt, operation=getattr, target=lustrefs-MDT0000', 16),
    ('lustre_stats_total', 'component=mdt, operation=getxattr, target=lustrefs-MDT0000', 2),
    ('lustre_stats_total', 'component=mdt, operation=open, target=lustrefs-MDT0000', 10),
    ('lustre_stats_total', 'component=mdt, operation=setattr, target=lustrefs-MDT0000', 57),
    ('lustre_stats_total', 'component=mdt, operation=statfs, target=lustrefs-MDT0000', 1),
    ('lustre_stats_total', 'component=ost, operation=connect, target=lustrefs-OST0000', 1),
    ('lustre_stats_total', 'component=ost, operation=connect, target=lustrefs-OST0002', 1),
    ('lustre_stats_total', 'component=ost, operation=connect, target=lustrefs-OST0004', 1),
    ('lustre_stats_total', 'component=ost, operation=connect, target=lustrefs-OST0006', 1),
    ('lustre_stats_total', 'component=ost, operation=create, target=lustrefs-OST0000', 2),
    ('lustre_stats_total', 'component=ost, operation=create, target=lustrefs-OST0002', 2),
    ('lustre_stats_total', 'component=ost, operation=create, target=lustrefs-OST0004', 2),
    ('lustre_stats_total', 'component=ost, operation=create, target=lustrefs-OST0006', 2),
    ('lustre_stats_total', 'component=ost, operation=ping, target=lustrefs-OST0000', 141),
    ('lustre_stats_total', 'component=ost, operation=ping, target=lustrefs-OST0002', 645),
    ('lustre_stats_total', 'component=ost, operation=ping, target=lustrefs-OST0004', 645),
    ('lustre_stats_total', 'component=ost, operation=ping, target=lustrefs-OST0006', 645),
    ('lustre_stats_total', 'component=ost, operation=statfs, target=lustrefs-OST0000', 35359),
    ('lustre_stats_total', 'component=ost, operation=statfs, target=lustrefs-OST0002', 35354),
    ('lustre_stats_total', 'component=ost, operation=statfs, target=lustrefs-OST0004', 35350),
    ('lustre_stats_total', 'component=ost, operation=statfs, target=lustrefs-OST0006', 35347),
    ('lustre_write_bytes_total', 'component=client, target=lustrefs-ffff88105db50000', 93813797294080),
    ('lustre_write_bytes_total', 'component=ost, target=lustrefs-OST0000', 16552048697344),
    ('lustre_write_maximum_size_bytes', 'component=client, target=lustrefs-ffff88105db50000', 1048576),
    ('lustre_write_maximum_size_bytes', 'component=ost, target=lustrefs-OST0000', 4194304),
    ('lustre_write_minimum_size_bytes', 'component=client, target=lustrefs-ffff88105db50000', 4096),
    ('lustre_write_minimum_size_bytes', 'component=ost, target=lustrefs-OST0000', 4096),
    ('lustre_write_samples_total', 'component=client, target=lustrefs-ffff88105db50000', 89467810),
    ('lustre_write_samples_total', 'component=ost, target=lustrefs-OST0000', 4298711),
]
HPE_BRW_ROWS = {  # (our family, target, operation): {row: count}, one lustre_exporter sample per row
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0000', 'read'):
        {0: 23, 1: 0, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 0, 11: 0, 12: 0, 13: 0, 14: 0, 15: 0,
         16: 0, 17: 0, 18: 0, 19: 0, 20: 0, 21: 0, 22: 0, 23: 0, 24: 0, 25: 0, 26: 0, 27: 0, 28: 0, 29: 0, 30: 0,
         31: 0},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0000', 'write'):
        {0: 153, 1: 157, 2: 158, 3: 200, 4: 156, 5: 175, 6: 163, 7: 185, 8: 159, 9: 160, 10: 176, 11: 164, 12: 187,
         13: 185, 14: 168, 15: 168, 16: 186, 17: 181, 18: 170, 19: 164, 20: 187, 21: 174, 22: 168, 23: 178,
         24: 179, 25: 205, 26: 192, 27: 160, 28: 192, 29: 192, 30: 195, 31: 4293275},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0002', 'read'):
        {0: 23},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0002', 'write'):
        {0: 0},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0004', 'read'):
        {0: 23},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0004', 'write'):
        {0: 0},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0006', 'read'):
        {0: 23},
    ('hpc_lustre_brw_discontiguous_pages', 'lustrefs-OST0006', 'write'):
        {0: 0},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0000', 'read'):
        {8: 4, 16: 0, 32: 1, 64: 1, 128: 1, 256: 1, 512: 1, 1024: 2, 2048: 0, 4096: 0, 8192: 12, 16384: 0,
         32768: 0, 65536: 0, 131072: 0, 262144: 0, 524288: 0, 1048576: 0, 2097152: 0, 4194304: 0},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0000', 'write'):
        {8: 0, 16: 0, 32: 0, 64: 0, 128: 0, 256: 0, 512: 0, 1024: 0, 2048: 0, 4096: 153, 8192: 157, 16384: 358,
         32768: 679, 65536: 1367, 131072: 2911, 262144: 6161, 524288: 13817, 1048576: 58945, 2097152: 154861,
         4194304: 4059303},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0002', 'read'):
        {8: 4, 16: 0, 32: 1, 64: 1, 128: 1, 256: 1, 512: 1, 1024: 2, 2048: 0, 4096: 0, 8192: 12},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0002', 'write'):
        {8: 0, 16: 0, 32: 0, 64: 0, 128: 0, 256: 0, 512: 0, 1024: 0, 2048: 0, 4096: 0, 8192: 0},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0004', 'read'):
        {8: 4, 16: 0, 32: 1, 64: 1, 128: 1, 256: 1, 512: 1, 1024: 2, 2048: 0, 4096: 0, 8192: 12},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0004', 'write'):
        {8: 0, 16: 0, 32: 0, 64: 0, 128: 0, 256: 0, 512: 0, 1024: 0, 2048: 0, 4096: 0, 8192: 0},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0006', 'read'):
        {8: 4, 16: 0, 32: 1, 64: 1, 128: 1, 256: 1, 512: 1, 1024: 2, 2048: 0, 4096: 0, 8192: 12},
    ('hpc_lustre_brw_io_size_bytes', 'lustrefs-OST0006', 'write'):
        {8: 0, 16: 0, 32: 0, 64: 0, 128: 0, 256: 0, 512: 0, 1024: 0, 2048: 0, 4096: 0, 8192: 0},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0000', 'read'):
        {1: 1},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0000', 'write'):
        {1: 0},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0002', 'read'):
        {1: 1},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0002', 'write'):
        {1: 0},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0004', 'read'):
        {1: 1},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0004', 'write'):
        {1: 0},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0006', 'read'):
        {1: 1},
    ('hpc_lustre_brw_io_time_seconds', 'lustrefs-OST0006', 'write'):
        {1: 0},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0000', 'read'):
        {1: 23, 2: 0, 3: 0, 4: 0, 5: 0, 6: 0, 7: 0, 8: 0, 9: 0, 10: 0},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0000', 'write'):
        {1: 4096740, 2: 174382, 3: 20244, 4: 4037, 5: 1577, 6: 925, 7: 579, 8: 190, 9: 35, 10: 3},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0002', 'read'):
        {1: 23},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0002', 'write'):
        {1: 0},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0004', 'read'):
        {1: 23},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0004', 'write'):
        {1: 0},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0006', 'read'):
        {1: 23},
    ('hpc_lustre_brw_ios_in_flight', 'lustrefs-OST0006', 'write'):
        {1: 0},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0000', 'read'):
        {1: 13, 2: 10, 4: 0, 8: 0, 16: 0, 32: 0, 64: 0, 128: 0, 256: 0, 512: 0, 1024: 0},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0000', 'write'):
        {1: 153, 2: 157, 4: 358, 8: 679, 16: 1367, 32: 2911, 64: 6161, 128: 13817, 256: 58945, 512: 154861,
         1024: 4059303},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0002', 'read'):
        {1: 13, 2: 10},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0002', 'write'):
        {1: 0, 2: 0},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0004', 'read'):
        {1: 13, 2: 10},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0004', 'write'):
        {1: 0, 2: 0},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0006', 'read'):
        {1: 13, 2: 10},
    ('hpc_lustre_brw_pages_per_rpc', 'lustrefs-OST0006', 'write'):
        {1: 0, 2: 0},
}


# ---------------------------------------------------------------- whamcloud lustrefs-exporter (lustre-collector)
WHAM = os.path.join(CONF, "lustrefs_exporter")


def wham(name: str) -> str:
    with open(os.path.join(WHAM, name)) as fh:
        return fh.read()


def lctl_server(tmp_path, situation: str) -> str:
    """lustre_server through a stand-in lctl that prints the situation's recovery_status for each pattern."""
    lctl = fake_lctl(tmp_path, {
        "list_param obdfilter.*.job_stats": "obdfilter.fs-OST0000.job_stats\n",
        "get_param obdfilter.fs-OST0000.job_stats": "job_stats:\n",
        "get_param obdfilter.*.recovery_status": wham(f"recovery_{situation}.obdfilter.txt"),
        "get_param mdt.*.recovery_status": wham(f"recovery_{situation}.mdt.txt"),
    })
    c = LustreServerCollector(helpers.make_context(procfs=str(tmp_path / "p"), sysfs=str(tmp_path / "s"),
                                                   agent="cluster", cls=LustreServerCollector, lctl=lctl))
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    return text


# lustre-collector's recovery_status records (RecoveryStatus, Duration, CompletedClients, TimeRemaining,
# ConnectedClients, TotalClients) per target, and the family each lands in here.
WHAM_RECOVERY = {
    "multiple_recovering": {
        "fs-OST0000": {"status": "COMPLETE", "duration": 150, "completed": 4},
        "fs-OST0001": {"status": "COMPLETE", "duration": 150, "completed": 4},
        "fs-OST0004": {"status": "COMPLETE", "duration": 13, "completed": 8},
        "fs-MDT0000": {"status": "COMPLETE", "duration": 1760, "completed": 3},
        "fs-MDT0002": {"status": "RECOVERING", "time_remaining": 119, "connected": 3, "total": 7, "completed": 3},
    },
    "waiting_for_clients": {
        "fs-MDT0000": {"status": "COMPLETE", "duration": 1760, "completed": 3},
        "fs-MDT0002": {"status": "WAITING_FOR_CLIENTS"},
        "fs-OST0000": {"status": "COMPLETE", "duration": 150, "completed": 4},
        "fs-OST0001": {"status": "COMPLETE", "duration": 150, "completed": 4},
        "fs-OST0004": {"status": "WAITING_FOR_CLIENTS"},
    },
}
RECOVERY_FAMILY = {"duration": "hpc_lustre_target_recovery_duration_seconds",
                   "completed": "hpc_lustre_target_recovery_completed_clients",
                   "time_remaining": "hpc_lustre_target_recovery_time_remaining_seconds",
                   "connected": "hpc_lustre_target_recovery_connected_clients",
                   "total": "hpc_lustre_target_recovery_expected_clients"}


@pytest.mark.parametrize("situation", sorted(WHAM_RECOVERY))
def test_lustrefs_exporter_recovery(tmp_path, situation):
    text = lctl_server(tmp_path, situation)
    for target, expected in WHAM_RECOVERY[situation].items():
        assert helpers.values(text, "hpc_lustre_target_recovery_status", target=target,
                              status=expected["status"]) == [1], target
        for key, family in RECOVERY_FAMILY.items():
            if key in expected:
                assert helpers.values(text, family, target=target) == [expected[key]], (target, key)
    # Theirs gives COMPLETE targets no total; ours reads it from `completed_clients: N/M`.
    assert helpers.values(text, "hpc_lustre_target_recovery_expected_clients", target="fs-OST0000") == [8]


# lustre-collector's BrwStats buckets: {their table name: (our family, {bucket: (reads, writes)})}
WHAM_BRW = {
    "pages": ("hpc_lustre_brw_pages_per_rpc", {32: (0, 1), 64: (0, 0), 128: (0, 0), 256: (1, 0), 512: (0, 0),
                                               1024: (0, 8)}),
    "discont_pages": ("hpc_lustre_brw_discontiguous_pages", {0: (0, 6), 1: (0, 3)}),
    "discont_blocks": ("hpc_lustre_brw_discontiguous_blocks", {0: (0, 9)}),
    "dio_frags": ("hpc_lustre_brw_fragmented_ios", {1: (0, 1), 2: (0, 0), 3: (0, 0), 4: (0, 8)}),
    "rpc_hist": ("hpc_lustre_brw_ios_in_flight", {1: (0, 2704), 2: (0, 3180), 4: (0, 7370), 8: (0, 17365),
                                                  16: (0, 40726), 32: (0, 44513), 64: (0, 116)}),
    "io_time": ("hpc_lustre_brw_io_time_seconds", {32: (0, 1), 64: (0, 0), 128: (0, 2), 256: (0, 6)}),
    "disk_iosize": ("hpc_lustre_brw_io_size_bytes", {131072: (0, 1), 262144: (0, 0), 524288: (0, 0),
                                                     1048576: (0, 32)}),
    "block_maps_msec": ("hpc_lustre_brw_block_map_time_seconds", {1: (12689, 0)}),
}


def test_lustrefs_exporter_brw_stats(tmp_path):
    text = helpers.render(brw_collector(tmp_path))
    for family, buckets in WHAM_BRW.values():
        for op, column in (("read", 0), ("write", 1)):
            rows, _ = brw_rows(text, family, "fs-OST0000", op)
            assert {b: rows.get(b) for b in buckets} == {b: v[column] for b, v in buckets.items()}, (family, op)


def brw_collector(tmp_path) -> LustreServerCollector:
    helpers.write_tree(str(tmp_path), {
        "sys/kernel/debug/lustre/obdfilter/fs-OST0000/stats": wham("obdfilter_stats.txt"),
        "sys/kernel/debug/lustre/osd-ldiskfs/fs-OST0000/brw_stats": wham("brw_stats_with_data.txt")})
    c = LustreServerCollector(helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"),
                                                   agent="cluster", cls=LustreServerCollector,
                                                   lctl="/nonexistent/lctl"))
    assert c.source.refresh_now(), c.source.last_error
    return c


def test_lustrefs_exporter_ost_stats_first_statfs(tmp_path):
    text = helpers.render(brw_collector(tmp_path))
    ops = {d["operation"]: v for d, v in zip(helpers.series_labels(text, "hpc_lustre_target_operations_total"),
                                            helpers.values(text, "hpc_lustre_target_operations_total"))}
    # Their parser's records: every counter's samples; statfs twice (5634, then the obd method's 18).
    assert ops == {"write": 9, "create": 4, "statfs": 5634, "get_info": 2, "connect": 4, "reconnect": 1,
                   "disconnect": 3, "preprw": 9, "commitrw": 9, "ping": 1075, "get_page": 13, "cache_access": 4,
                   "cache_hit": 4, "many_credits": 1}
    assert helpers.values(text, "hpc_lustre_target_bytes_total", operation="write") == [33554431]


def test_lustrefs_exporter_lnetctl_stats(tmp_path):
    lnetctl = fake_lnetctl(tmp_path, wham("lnetctl_stats.txt"))
    c = LnetCollector(helpers.make_context(procfs=str(tmp_path), sysfs=str(tmp_path), cls=LnetCollector,
                                           lnetctl=lnetctl))
    text = helpers.render(c)
    # Theirs keeps send_length, recv_length and drop_length from this block.
    assert helpers.values(text, "hpc_lustre_lnet_bytes_total", direction="sent") == [62502714567608]
    assert helpers.values(text, "hpc_lustre_lnet_bytes_total", direction="received") == [17084716480056]
    assert helpers.values(text, "hpc_lustre_lnet_dropped_bytes_total") == [568792]


def test_lustrefs_exporter_unhealthy_host(tmp_path):
    helpers.write_tree(str(tmp_path), {"proc/fs/lustre/health_check": wham("health_check_unhealthy.txt")})
    c = LustreHealthCollector(helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"),
                                                   cls=LustreHealthCollector))
    text = helpers.render(c)
    # Theirs: lustre_health_healthy 0, and 0 per named target; ours: healthy 0, unhealthy_device 1 per target.
    assert helpers.values(text, "hpc_lustre_healthy") == [0]
    assert {d["device"] for d in helpers.series_labels(text, "hpc_lustre_unhealthy_device")} == {
        "lustre-OST0012", "lustre-OST0014", "lustre-OST0016"}


# Their client_stats for the DDN 2.14 client: every llite counter as an operation, opencount and
# openclosetime included. Ours matches every operation and keeps those two out (see docs/conformance.md).
WHAM_CLIENT = {"ioctl": 114, "open": 35955554, "close": 35955554, "readdir": 60, "getattr": 35955647,
               "unlink": 17977752, "mkdir": 17987059, "rmdir": 17987079, "mknod": 17977752, "statfs": 17864,
               "setxattr": 1, "inode_permission": 629305628, "opencount": 35955576, "openclosetime": 17977772}


def test_lustrefs_exporter_llite_client(tmp_path):
    helpers.write_tree(str(tmp_path), {"sys/kernel/debug/lustre/llite/ai400x2-ff47bce9ca35d800/stats":
                                       wham("llite_stats_ddn_2.14.txt")})
    c = LustreCollector(helpers.make_context(procfs=str(tmp_path / "proc"), sysfs=str(tmp_path / "sys"),
                                             cls=LustreCollector, lctl="/nonexistent/lctl"))
    text = helpers.render(c)
    ops = {d["operation"]: v for d, v in zip(helpers.series_labels(text, "hpc_lustre_client_operations_total"),
                                            helpers.values(text, "hpc_lustre_client_operations_total"))}
    assert ops == {k: v for k, v in WHAM_CLIENT.items() if k not in ("opencount", "openclosetime")}
    assert helpers.values(text, "hpc_lustre_client_reopens_total") == [WHAM_CLIENT["openclosetime"]]
