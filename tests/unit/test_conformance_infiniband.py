"""Conformance with treydock `infiniband_exporter`'s tests: the fabrics its tests are built on, reproduced in
tests/fixtures/conformance/infiniband_exporter (make_infiniband_exporter_situations.py), replayed through the
`fabric_switches` collector by the stand-in ibnetdiscover/perfquery; every value its switch tests assert for a
family we share is asserted here under our names (docs/conformance.md has the mapping and the differences)."""

from __future__ import annotations

import os

import helpers
from hpcwatch.exporters.fabric_switches.parse import parse_ports_report
from test_fabric_switches import fake_bin, make  # noqa: F401  (fake_bin is a fixture)

CONF = os.path.join(os.path.dirname(__file__), "..", "fixtures", "conformance", "infiniband_exporter")
I1L1, I4L1 = "0x7cfe9003009ce5b0", "0x506b4b03005c2740"

# infiniband_switch_port_<x>_total -> our error counter label (hpc_fabric_switch_port_errors_total{counter})
ERRORS = {"symbol_error": "symbol_error", "link_error_recovery": "link_error_recovery",
          "link_downed": "link_downed", "receive_errors": "port_rcv_errors",
          "receive_remote_physical_errors": "port_rcv_remote_physical_errors",
          "receive_switch_relay_errors": "port_rcv_switch_relay_errors", "transmit_discards": "port_xmit_discards",
          "transmit_constraint_errors": "port_xmit_constraint_errors",
          "receive_constraint_errors": "port_rcv_constraint_errors",
          "local_link_integrity_errors": "local_link_integrity_errors",
          "excessive_buffer_overrun_errors": "excessive_buffer_overrun_errors", "vl15_dropped": "VL15_dropped"}
# infiniband_switch_port_<x>_total -> hpc_fabric_switch_port_<y>_total
TRAFFIC = {"transmit_data_bytes": "transmit_bytes", "receive_data_bytes": "receive_bytes",
           "transmit_packets": "transmit_packets", "receive_packets": "receive_packets",
           "unicast_transmit_packets": "unicast_transmit_packets", "unicast_receive_packets": "unicast_receive_packets",
           "multicast_transmit_packets": "multicast_transmit_packets",
           "multicast_receive_packets": "multicast_receive_packets", "transmit_wait": "transmit_wait"}
# What TestSwitchCollector expects per (guid, port): {their counter: value}; counters not listed are 0.
THEIRS = {
    (I4L1, "1"): {"link_downed": 1, "receive_switch_relay_errors": 7, "transmit_discards": 20046,
                  "multicast_receive_packets": 6694940, "multicast_transmit_packets": 5623645694,
                  "receive_data_bytes": 715049367846516, "transmit_data_bytes": 715166628708940,
                  "receive_packets": 387654829341, "transmit_packets": 393094651266,
                  "unicast_receive_packets": 387648134400, "unicast_transmit_packets": 387471005571,
                  "transmit_wait": 41864608},
    (I1L1, "1"): {"multicast_receive_packets": 5584846741, "multicast_transmit_packets": 25038914,
                  "receive_data_bytes": 49116115103004, "transmit_data_bytes": 145192107443712,
                  "receive_packets": 32262508468, "transmit_packets": 101733204203,
                  "unicast_receive_packets": 26677661727, "unicast_transmit_packets": 101708165289,
                  "transmit_wait": 22730501},
    (I1L1, "2"): {"receive_data_bytes": 156315219973512, "transmit_data_bytes": 104026280056104,
                  "receive_packets": 93660802641, "transmit_packets": 122978948297,
                  "unicast_receive_packets": 93660802641, "unicast_transmit_packets": 122978948297,
                  "transmit_wait": 36510964},
}
THEIR_UPLINKS = [  # infiniband_switch_uplink_info: (guid, port, uplink, uplink_guid, uplink_port, uplink_type)
    (I4L1, "35", "p0001 HCA-1", "0x506b4b0300cc02a6", "1", "CA"),
    (I1L1, "1", "ib-i1l2s01", "0x7cfe900300b07320", "1", "SW"),
    (I1L1, "10", "o0001 HCA-1", "0x7cfe9003003b4bde", "1", "CA"),
    (I1L1, "11", "o0002 HCA-1", "0x7cfe9003003b4b96", "1", "CA"),
]


def test_switch_collector(fake_bin, monkeypatch):  # noqa: F811
    bindir, _ = fake_bin
    monkeypatch.setenv("FAKE_IBDIAGS_DIR", os.path.join(CONF, "edr"))
    c = make(bindir)
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    for (guid, port), values in THEIRS.items():
        at = {"switch_guid": guid, "port": port}
        for theirs, ours in ERRORS.items():
            assert helpers.values(text, "hpc_fabric_switch_port_errors_total", counter=ours, **at) == \
                [values.get(theirs, 0)], (guid, port, theirs)
        for theirs, ours in TRAFFIC.items():
            assert helpers.values(text, f"hpc_fabric_switch_port_{ours}_total", **at) == [values.get(theirs, 0)], \
                (guid, port, theirs)
    # infiniband_switch_info
    info = {d["switch_guid"]: (d["switch_name"], d["lid"])
            for d in helpers.series_labels(text, "hpc_fabric_switch_info")}
    assert info[I4L1] == ("ib-i4l1s01", "2052") and info[I1L1] == ("ib-i1l1s01", "1719")
    # infiniband_switch_port_rate_bytes_per_second (EDR 4x: 100 Gb/s of data)
    for guid, port in ((I4L1, "35"), (I1L1, "10"), (I1L1, "11"), (I1L1, "1")):
        assert helpers.values(text, "hpc_fabric_switch_port_rate_bytes_per_second", switch_guid=guid, port=port) \
            == [1.25e10]
    links = {(d["switch_guid"], d["port"], d["remote_name"], d["remote_guid"], d["remote_port"], d["remote_type"])
             for d in helpers.series_labels(text, "hpc_fabric_link_info")}
    assert links == set(THEIR_UPLINKS)
    # Difference: every switch ibnetdiscover reports is listed, a switch with no connected port too (theirs
    # leaves ib-i7l2s01 out); its perfquery has nothing to say here, which its query_success shows.
    assert info["0x08c0eb0300add20e"] == ("ib-i7l2s01", "1781")
    assert helpers.values(text, "hpc_fabric_switch_query_success", switch_guid="0x08c0eb0300add20e") == [0]


def test_padded_node_descriptions():
    with open(os.path.join(CONF, "padded", "ibnetdiscover-ports.txt")) as fh:
        topo = parse_ports_report(fh.read())
    assert topo.skipped == 0
    # TestIbnetdiscoverParse2: names trimmed, on switches and on the far end of CA links alike.
    assert (topo.switches["0x0002c9020040f160"].name, topo.switches["0x0002c9020040f160"].lid) == (
        "Infiniscale-IV Mellanox Technologies", 478)
    spine = topo.switches["0x946dae030053ec1a"]
    assert (spine.name, spine.lid) == ("5FB0406-spine-IB03", 9)
    p81 = spine.ports[81]
    assert (p81.remote_type, p81.remote_lid, p81.remote_port, p81.remote_guid, p81.remote_name) == (
        "CA", 60, 1, "0x946dae0300630bfe", "Mellanox Technologies Aggregation Node")
    uplinks = {(link.guid, link.remote_port, link.remote_guid, link.remote_name)
               for link in topo.links if link.node_type == "CA"}
    assert uplinks == {("0x946dae0300630bfe", 81, "0x946dae0300630bf6", "5FB0405-leaf-IB01"),
                       ("0xb83fd20300da1138", 79, "0x946dae0300630bf6", "5FB0405-leaf-IB01")}
    # Difference: the two spines with only an SDR (down) port are switches here too, names trimmed.
    assert topo.switches["0x946dae0300618c83"].name == "5FB0406-spine-IB02"
