"""`lustre_health` and `lnet`: health_check in its sysfs, procfs and debugfs shapes; LNet counters from the
stats file (2.10 procfs, 2.12+ debugfs) and from `lnetctl stats show` (2.10, and 2.12+ with health counters)."""

from __future__ import annotations

import os
import stat

import helpers
import pytest
from hpcwatch.exporters.lnet.collector import LnetCollector
from hpcwatch.exporters.lustre.health import parse_health_check
from hpcwatch.exporters.lustre.lnet import STATS_FIELDS, parse_lnet_stats, parse_lnetctl_stats
from hpcwatch.exporters.lustre_health.collector import LustreHealthCollector
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lustre")
HOST_TREE = os.path.join(FIX, "host_tree_2.15")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


# ---------------------------------------------------------------- health_check
@pytest.mark.parametrize("text,healthy,lbug,devices", [
    ("healthy\n", True, False, ()),                       # sysfs, 2.10+
    ("NOT HEALTHY\n", False, False, ()),                  # sysfs
    ("LBUG\n", False, True, ()),                          # sysfs, 2.12+ after an assertion failure
    ("", None, False, ()),                                # debugfs 2.15+, nothing unhealthy
    ("device scratch-OST0002 reported unhealthy\n", False, False, ("scratch-OST0002",)),  # debugfs
])
def test_health_check_shapes(text, healthy, lbug, devices):
    errors: list[str] = []
    h = parse_health_check(text, errors.append)
    assert (h.healthy, h.lbug, h.unhealthy_devices, errors) == (healthy, lbug, devices, [])


def test_health_check_procfs_before_2_10_lists_lbug_and_devices_then_the_verdict():
    h = parse_health_check(fixture("health_check_procfs_2.9.txt"))
    assert (h.healthy, h.lbug, h.unhealthy_devices) == (False, True, ("scratch-MDT0000", "scratch-OST0001"))


def test_health_check_garbage_is_reported():
    errors: list[str] = []
    assert parse_health_check("healthy\nmaybe\n", errors.append).healthy is True
    assert len(errors) == 1


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzz_health_check_never_raises(text):
    h = parse_health_check(text, lambda r: None)
    assert h.healthy is not True or not (h.lbug or h.unhealthy_devices)


def health(procfs: str, sysfs: str) -> LustreHealthCollector:
    return LustreHealthCollector(helpers.make_context(procfs=procfs, sysfs=sysfs, cls=LustreHealthCollector))


def test_health_collector_2_15_names_the_unhealthy_device():
    c = health(os.path.join(HOST_TREE, "proc"), os.path.join(HOST_TREE, "sys"))
    assert c.available() is None
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"lustre_health": 1}
    assert helpers.values(text, "hpc_lustre_healthy") == [0]
    assert helpers.values(text, "hpc_lustre_lbug") == [0]
    assert helpers.values(text, "hpc_lustre_unhealthy_device", device="scratch-OST0002") == [1]


def test_health_collector_2_10_procfs_healthy_and_lbug_from_catastrophe(tmp_path):
    helpers.write_tree(str(tmp_path), {"proc/fs/lustre/health_check": "healthy\n", "proc/sys/lnet/catastrophe": "0\n"})
    text = helpers.render(health(str(tmp_path / "proc"), str(tmp_path / "sys")))
    assert helpers.values(text, "hpc_lustre_healthy") == [1] and helpers.values(text, "hpc_lustre_lbug") == [0]
    # 2.10's sysfs file says only NOT HEALTHY after an LBUG; libcfs' catastrophe flag says why.
    helpers.write_tree(str(tmp_path), {"sys/fs/lustre/health_check": "NOT HEALTHY\n",
                                       "proc/sys/lnet/catastrophe": "1\n"})
    text = helpers.render(health(str(tmp_path / "proc"), str(tmp_path / "sys")))
    assert helpers.values(text, "hpc_lustre_healthy") == [0] and helpers.values(text, "hpc_lustre_lbug") == [1]


def test_health_collector_skipped_without_lustre(tmp_path):
    assert "Lustre modules not loaded" in health(str(tmp_path), str(tmp_path)).available()


# ---------------------------------------------------------------- LNet
def test_lnet_stats_file():
    c = parse_lnet_stats(open(os.path.join(HOST_TREE, "sys/kernel/debug/lnet/stats")).read())
    assert c == dict(zip(STATS_FIELDS, [0, 412, 0, 1110532, 1110512, 0, 11, 261865376, 254091008, 0, 4832]))
    assert parse_lnet_stats("0 1 2\n") is None and parse_lnet_stats("a " * 11) is None


def test_lnetctl_stats_2_10_and_2_15():
    old = parse_lnetctl_stats(fixture("lnetctl_stats_2.10.txt"))
    assert set(old) == set(STATS_FIELDS) and old["recv_length"] == 53029565353720
    new = parse_lnetctl_stats(fixture("lnetctl_stats_2.15.txt"))
    assert new["rst_alloc"] == 15 and new["resend_count"] == 4 and new["drop_length"] == 4832
    assert parse_lnetctl_stats("show:\n    - net: 1\n") is None


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzz_lnet_parsers_never_raise(text):
    parse_lnet_stats(text)
    parse_lnetctl_stats(text, lambda r: None)
    parse_lnetctl_stats("statistics:\n" + text, lambda r: None)


def lnet(procfs: str, sysfs: str, **options) -> LnetCollector:
    return LnetCollector(helpers.make_context(procfs=procfs, sysfs=sysfs, cls=LnetCollector, **options))


def test_lnet_collector_from_the_debugfs_file():
    c = lnet(os.path.join(HOST_TREE, "proc"), os.path.join(HOST_TREE, "sys"), lnetctl="/nonexistent/lnetctl")
    assert c.available() is None
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_lustre_lnet_messages_total", direction="sent") == [1110532]
    assert helpers.values(text, "hpc_lustre_lnet_bytes_total", direction="received") == [254091008]
    assert helpers.values(text, "hpc_lustre_lnet_dropped_messages_total") == [11]
    assert helpers.values(text, "hpc_lustre_lnet_messages_allocated_max") == [412]
    assert helpers.values(text, "hpc_lustre_lnet_health_events_total") == []  # the file has no health counters


def fake_lnetctl(tmp_path, out: str) -> str:
    """An lnetctl stand-in (an external binary, not our code) that prints a fixture for `stats show`."""
    (tmp_path / "lnetctl.out").write_text(out)
    script = tmp_path / "lnetctl"
    script.write_text(f'#!/bin/sh\n[ "$*" = "stats show" ] && exec cat "{tmp_path}/lnetctl.out"\nexit 2\n')
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    return str(script)


def test_lnet_collector_lnetctl_adds_health_counters(tmp_path):
    lnetctl = fake_lnetctl(tmp_path, fixture("lnetctl_stats_2.15.txt"))
    c = lnet(str(tmp_path / "p"), str(tmp_path / "s"), lnetctl=lnetctl)
    assert c.available() is None  # no stats file: auto falls back to lnetctl
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_lustre_lnet_health_events_total", event="resend") == [4]
    assert helpers.values(text, "hpc_lustre_lnet_health_events_total", event="local_timeout") == [3]
    assert helpers.values(text, "hpc_lustre_lnet_response_trackers") == [15]
    assert helpers.values(text, "hpc_lustre_lnet_messages_total", direction="routed") == [0]


def test_lnet_collector_bad_file_fails_the_collector_and_names_the_file(tmp_path):
    helpers.write_tree(str(tmp_path), {"proc/sys/lnet/stats": "0 28 zero\n"})
    c = lnet(str(tmp_path / "proc"), str(tmp_path / "sys"), source="file")
    text = helpers.render(c)
    assert helpers.collector_success(text) == {"lnet": 0}
    with pytest.raises(ValueError, match="proc/sys/lnet/stats: expected 11"):
        list(c.collect())


def test_lnet_collector_skipped_without_lnet(tmp_path):
    assert "LNet not loaded" in lnet(str(tmp_path), str(tmp_path), lnetctl="/nonexistent/lnetctl").available()
    assert "LNet not loaded" in lnet(str(tmp_path), str(tmp_path), source="file").available()
