"""/sys/class/net (netclass): node_exporter's node_network_* link families on kernel 6 and RHEL 7 trees,
the pure sample builder fuzzed, and the identity cache."""

from __future__ import annotations

import os
import re

import helpers
import nodetrees
import pytest
from hpcwatch.exporters.node.netclass import NetClassReader, link_samples, parse_int
from hypothesis import given
from hypothesis import strategies as st
from nodetrees import one


def scrape(tree: str, **options) -> str:
    return nodetrees.scrape(nodetrees.node(os.path.join(nodetrees.FIX, tree), **options))


def test_kernel_6_links_exact() -> None:
    text = scrape("real")
    devices = {d["device"] for d in helpers.series_labels(text, "node_network_up")}
    assert devices == {"ens1f0np0", "ens1f1np1", "ib0", "bond0", "lo"}  # bonding_masters is a file
    assert one(text, "node_network_up", device="ens1f0np0") == 1
    assert one(text, "node_network_up", device="ens1f1np1") == 0
    assert one(text, "node_network_up", device="lo") == 0  # operstate "unknown"
    assert one(text, "node_network_speed_bytes", device="ens1f0np0") == 25e9 / 8
    assert one(text, "node_network_speed_bytes", device="ib0") == 200e9 / 8
    assert not helpers.values(text, "node_network_speed_bytes", device="ens1f1np1")  # no cable: unreadable
    assert not helpers.values(text, "node_network_carrier", device="ens1f1np1")
    assert one(text, "node_network_carrier_changes_total", device="ib0") == 6
    assert one(text, "node_network_carrier_down_changes_total", device="ib0") == 3
    assert one(text, "node_network_mtu_bytes", device="ib0") == 4092
    assert one(text, "node_network_protocol_type", device="ib0") == 32
    assert one(text, "node_network_flags", device="bond0") == 0x1403  # hex in sysfs
    assert one(text, "node_network_iface_id", device="ens1f0np0") == 2
    assert one(text, "node_network_info", device="ib0", operstate="up", adminstate="up", duplex="full",
               ifalias="hdr fabric") == 1
    assert one(text, "node_network_info", device="ens1f1np1", adminstate="down", duplex="") == 1


def test_rhel7_links_without_newer_attributes() -> None:
    text = scrape("el7")
    assert one(text, "node_network_speed_bytes", device="eth0") == 1.25e9
    assert one(text, "node_network_speed_bytes", device="eth1") == -125000  # speed -1: node_exporter's default
    assert not helpers.values(text, "node_network_carrier_up_changes_total")  # 4.16+
    assert not helpers.values(text, "node_network_name_assign_type")  # 3.17+
    assert one(text, "node_network_carrier_changes_total", device="eth0") == 1
    text = scrape("el7", **{"netclass-ignore-invalid-speed": True})
    assert not helpers.values(text, "node_network_speed_bytes", device="eth1")


def test_device_exclude() -> None:
    text = scrape("real", **{"netclass-device-exclude": "^(lo|bond.*)$"})
    assert {d["device"] for d in helpers.series_labels(text, "node_network_up")} == {"ens1f0np0", "ens1f1np1", "ib0"}


def test_identity_is_cached_and_link_state_is_not(tmp_path) -> None:
    helpers.write_tree(str(tmp_path), {"net/eth0/operstate": "up\n", "net/eth0/address": "aa:bb\n",
                                       "net/eth0/carrier": "1\n"})
    reader = NetClassReader(str(tmp_path / "net"), ttl=3600)
    assert reader.interfaces() == [("eth0", {"address": "aa:bb", "operstate": "up", "carrier": "1"})]
    helpers.write_tree(str(tmp_path), {"net/eth0/operstate": "down\n", "net/eth0/address": "cc:dd\n",
                                       "net/eth0/carrier": "0\n"})
    assert reader.interfaces() == [("eth0", {"address": "aa:bb", "operstate": "down", "carrier": "0"})]
    reader.ttl = 0
    assert reader.interfaces()[0][1]["address"] == "cc:dd"


@pytest.mark.parametrize("text,value", [("0x1003", 0x1003), ("-1", -1), ("25000", 25000), ("010", 8),
                                        ("0", 0), ("", None), ("x", None), ("1.5", None), ("--1", None)])
def test_parse_int_is_go_parseint_base_0(text: str, value: int | None) -> None:
    assert parse_int(text) == value


@given(st.dictionaries(st.sampled_from(["operstate", "flags", "speed", "mtu", "carrier", "address", "duplex",
                                        "type", "carrier_changes", "ifalias"]),
                       st.text(max_size=20) | st.integers(-2**70, 2**70).map(str), max_size=10),
       st.booleans())
def test_link_samples_fuzz(attrs: dict[str, str], ignore: bool) -> None:
    samples = link_samples("eth0", attrs, ignore)
    assert samples[0].family == "node_network_up" and samples[1].family == "node_network_info"
    for s in samples:
        assert re.fullmatch(r"node_network_[a-z_]+", s.family)
        if s.family == "node_network_speed_bytes" and ignore:
            assert s.value >= 0
