"""`fabric_switches`: infiniband-diags 44 parsers on recorded outputs, and the collector end to end
through stand-in ibnetdiscover/perfquery executables (tests/fixtures/fabric/fake_ibdiags.py)."""

from __future__ import annotations

import os
import stat
import sys

import helpers
import pytest
from hpcwatch.exporters.fabric_switches.collector import FabricSwitchesCollector, merge_counters, needs_basic
from hpcwatch.exporters.fabric_switches.parse import (
    lanes,
    parse_perfquery,
    parse_port_line,
    parse_ports_report,
    rate_bytes,
)
from hpcwatch.exporters.registry import load_all
from hypothesis import given
from hypothesis import strategies as st

HERE = os.path.dirname(__file__)
IBDIAGS = os.path.join(HERE, "..", "fixtures", "fabric", "ibdiags")
FAKE = os.path.join(HERE, "..", "fixtures", "fabric", "fake_ibdiags.py")
LEAF01, LEAF02 = "0x7cfe900300a5c000", "0x7cfe900300a5d000"
SPINE01, SPINE02 = "0x7cfe900300a5a000", "0x7cfe900300a5b000"


def read(name: str) -> str:
    with open(os.path.join(IBDIAGS, name)) as fh:
        return fh.read()


@pytest.fixture
def fake_bin(tmp_path, monkeypatch):
    """ibnetdiscover and perfquery wrappers in a folder; returns (folder, argv log path)."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    for tool in ("ibnetdiscover", "perfquery"):
        path = bindir / tool
        path.write_text(f'#!/bin/sh\nexec "{sys.executable}" "{os.path.abspath(FAKE)}" {tool} "$@"\n')
        path.chmod(path.stat().st_mode | stat.S_IXUSR)
    log = tmp_path / "argv.log"
    monkeypatch.setenv("FAKE_IBDIAGS_DIR", os.path.abspath(IBDIAGS))
    monkeypatch.setenv("FAKE_IBDIAGS_LOG", str(log))
    return bindir, log


def make(bindir, **options) -> FabricSwitchesCollector:
    opts = {"ibnetdiscover": str(bindir / "ibnetdiscover"), "perfquery": str(bindir / "perfquery"),
            "timeout": 20.0}
    opts.update(options)
    return FabricSwitchesCollector(helpers.make_context(agent="cluster", cls=FabricSwitchesCollector, **opts))


def scrape(collector) -> str:
    text = helpers.render(collector)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"fabric_switches": 1.0}
    return text


def one(text: str, name: str, **labels: str) -> float:
    found = helpers.values(text, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_registered_opt_in_snapshot_collector():
    cls = load_all()["fabric_switches"]
    assert cls is FabricSwitchesCollector
    assert cls.default_agents == frozenset() and cls.kind == "snapshot"


def test_ports_report_topology_and_link_map():
    topo = parse_ports_report(read("ibnetdiscover-ports.txt"))
    assert topo.skipped == 0
    assert set(topo.switches) == {LEAF01, LEAF02, SPINE01, SPINE02}
    leaf01 = topo.switches[LEAF01]
    assert (leaf01.lid, leaf01.name, len(leaf01.ports)) == (3, "leaf01", 40)
    p1 = leaf01.ports[1]
    assert (p1.remote_type, p1.remote_lid, p1.remote_port) == ("CA", 11, 1)
    assert (p1.remote_guid, p1.remote_name) == ("0x1070fd0300d4a001", "cn0001 mlx5_0")
    assert (p1.width, p1.speed) == ("4x", "HDR")
    assert not leaf01.ports[3].connected and leaf01.ports[3].name == "leaf01"
    assert topo.switches[LEAF02].ports[38].width == "1x"
    cas = [link for link in topo.links if link.node_type == "CA"]
    assert len(cas) == 4 and all(link.remote_type == "SW" for link in cas)


def test_port_line_with_quotes_and_unknown_speed():
    line = "SW    17 12 0x0002c903006e1430 ?? ??? - CA    44  1 0x0002c9030045f121 ( 'MF0;sw:MQM8700/U1' - 'h' )"
    link = parse_port_line(line)
    assert link is not None and link.width == "??" and link.name == "MF0;sw:MQM8700/U1"
    assert lanes(link.width) is None and rate_bytes(link.width, link.speed) is None
    assert rate_bytes("4x", "HDR") == 25e9 and rate_bytes("4x", "NDR") == 50e9 and lanes("12x") == 12


def test_padded_node_descriptions_are_trimmed():
    # Switch firmware pads the 64-byte NodeDescription with spaces; ibnetdiscover quotes it as is.
    report = (
        "CA    78  1 0x946dae0300630bfe 4x HDR - SW    51 81 0x946dae0300630bf6 "
        "( 'Mellanox Technologies Aggregation Node' - '5FB0405-leaf-IB01 ' )\n"
        "SW    51 81 0x946dae0300630bf6 4x HDR - CA    78  1 0x946dae0300630bfe "
        "( '5FB0405-leaf-IB01 ' - 'Mellanox Technologies Aggregation Node' )\n"
        "SW    51 82 0x946dae0300630bf6 4x SDR                                    '5FB0405-leaf-IB01 '\n"
        "SW    25  1 0x946dae0300618c83 4x SDR                                    ' 5FB0406-spine-IB02 '\n"
    )
    topo = parse_ports_report(report)
    assert topo.skipped == 0
    assert topo.switches["0x946dae0300630bf6"].name == "5FB0405-leaf-IB01"
    assert topo.switches["0x946dae0300618c83"].name == "5FB0406-spine-IB02"
    assert {link.name for link in topo.links} >= {"5FB0405-leaf-IB01", "Mellanox Technologies Aggregation Node"}
    assert topo.links[0].remote_name == "5FB0405-leaf-IB01"


def test_perfquery_extended_and_basic_blocks():
    ext, skipped = parse_perfquery(read("perfquery-x-lid3.txt"))
    assert skipped == 0 and sorted(ext) == list(range(1, 41))
    assert ext[2].extended and ext[2].values["symbol_error"] == 12 and ext[2].values["port_rcv_errors"] == 4
    assert ext[37].values["port_xmit_wait"] == 987654321 and ext[37].values["link_downed"] == 3
    assert ext[1].values["port_xmit_data"] == 123456789017
    no_addl, _ = parse_perfquery(read("perfquery-x-lid4.txt"))
    assert "symbol_error" not in no_addl[1].values and needs_basic(no_addl) and not needs_basic(ext)
    basic, _ = parse_perfquery(read("perfquery-lid4.txt"))
    assert not basic[38].extended and basic[38].values["symbol_error"] == 65535
    merged = merge_counters(no_addl, basic)
    assert merged.ports[38]["symbol_error"] == 65535
    assert merged.ports[38]["port_xmit_data"] == no_addl[38].values["port_xmit_data"]  # 64-bit wins
    assert merged.saturated[38] == ["local_link_integrity_errors", "symbol_error"]
    assert 1 not in merged.saturated  # 32-bit data pinned in PortCounters, but the 64-bit value is used


def test_collector_end_to_end(fake_bin):
    bindir, log = fake_bin
    nnmap = os.path.join(IBDIAGS, "node-name-map")
    c = make(bindir, **{"node-name-map": nnmap, "concurrency": 3})
    assert c.available() is None
    assert [s.name for s in c.sources()] == ["fabric_switches"]
    assert c.source.refresh_now(), c.source.last_error
    text = scrape(c)
    info = {d["switch_guid"]: d for d in helpers.series_labels(text, "hpc_fabric_switch_info")}
    assert info[LEAF01] == {"switch_guid": LEAF01, "switch_name": "leaf01", "lid": "3"}
    assert one(text, "hpc_fabric_link_info", switch_guid=LEAF01, port="1", remote_guid="0x1070fd0300d4a001",
               remote_port="1", remote_name="cn0001 mlx5_0", remote_type="CA") == 1
    assert one(text, "hpc_fabric_link_info", switch_guid=LEAF01, port="37", remote_name="spine01") == 1
    assert len(helpers.values(text, "hpc_fabric_link_info")) == 12  # connected switch ports only
    assert one(text, "hpc_fabric_switch_port_width_lanes", switch_guid=LEAF02, port="38") == 1
    assert one(text, "hpc_fabric_switch_port_rate_bytes_per_second", switch_guid=LEAF01, port="1") == 25e9
    assert one(text, "hpc_fabric_switch_port_errors_total", switch_guid=LEAF01, port="2",
               counter="symbol_error") == 12
    assert one(text, "hpc_fabric_switch_port_transmit_bytes_total", switch_guid=LEAF01, port="1") == \
        123456789017 * 4
    assert one(text, "hpc_fabric_switch_port_transmit_wait_total", switch_guid=LEAF01, port="37") == 987654321
    # leaf02 has no AdditionalPortCountersExtended: errors come from PortCounters, widths apply.
    assert one(text, "hpc_fabric_switch_port_errors_total", switch_guid=LEAF02, port="38",
               counter="symbol_error") == 65535
    assert one(text, "hpc_fabric_switch_port_pma_saturated", switch_guid=LEAF02, port="38",
               counter="symbol_error") == 1
    assert len(helpers.values(text, "hpc_fabric_switch_port_pma_saturated")) == 2
    # spine02 does not answer: reported, and the other switches are still served.
    success = {d["switch_guid"]: v for d, v in zip(helpers.series_labels(text, "hpc_fabric_switch_query_success"),
                                                  helpers.values(text, "hpc_fabric_switch_query_success"))}
    assert success == {LEAF01: 1, LEAF02: 1, SPINE01: 1, SPINE02: 0}
    assert not helpers.values(text, "hpc_fabric_switch_port_errors_total", switch_guid=SPINE02)
    assert one(text, "hpc_fabric_switch_port_errors_total", switch_guid=SPINE01, port="2",
               counter="port_xmit_discards") == 7
    assert one(text, "hpcwatch_source_up", source="fabric_switches") == 1
    assert next(iter(c.collect())) is next(iter(c.collect()))  # one snapshot is rendered once
    calls = log.read_text().splitlines()
    assert calls[0] == f"ibnetdiscover --ports --node-name-map {nnmap}"
    assert "perfquery -x -l 3 255" in calls and "perfquery -l 4 255" in calls
    assert "perfquery -l 3 255" not in calls  # extended error counters present: no basic query


def test_concurrency_limit_and_local_port_flags(fake_bin, tmp_path, monkeypatch):
    bindir, log = fake_bin
    active = tmp_path / "active"
    active.mkdir()
    monkeypatch.setenv("FAKE_IBDIAGS_ACTIVE", str(active))
    monkeypatch.setenv("FAKE_IBDIAGS_SLEEP", "0.3")
    c = make(bindir, concurrency=2, ca="mlx5_0", **{"ca-port": 1})
    assert c.source.refresh_now(), c.source.last_error
    running = [int(n) for n in (tmp_path / "concurrency.log").read_text().split()]
    assert len(running) >= 5 and max(running) <= 2
    calls = log.read_text().splitlines()
    assert calls[0] == "ibnetdiscover -C mlx5_0 -P 1 --ports"
    assert "perfquery -C mlx5_0 -P 1 -x -l 1 255" in calls


def test_per_call_timeout_fails_the_switch_not_the_refresh(fake_bin, monkeypatch):
    bindir, _ = fake_bin
    monkeypatch.setenv("FAKE_IBDIAGS_SLEEP", "5")
    c = make(bindir, timeout=0.5, concurrency=4)
    assert c.source.refresh_now(), c.source.last_error
    text = scrape(c)
    assert set(helpers.values(text, "hpc_fabric_switch_query_success")) == {0.0}
    assert len(helpers.values(text, "hpc_fabric_link_info")) == 12  # the link map is still served


def test_no_extended_counters_falls_back_to_port_counters(fake_bin, monkeypatch):
    bindir, _ = fake_bin
    monkeypatch.setenv("FAKE_IBDIAGS_FAIL", "perfquery-x")
    c = make(bindir)
    assert c.source.refresh_now()
    text = scrape(c)
    assert one(text, "hpc_fabric_switch_query_success", switch_guid=LEAF02) == 1
    assert one(text, "hpc_fabric_switch_query_success", switch_guid=LEAF01) == 0
    # 32-bit PortXmitData pinned at 2^32-1 words: flagged, not mistaken for an idle link.
    assert one(text, "hpc_fabric_switch_port_pma_saturated", switch_guid=LEAF02, port="1",
               counter="port_xmit_data") == 1


def test_discovery_failure_keeps_last_topology(fake_bin, monkeypatch):
    bindir, _ = fake_bin
    c = make(bindir, **{"discovery-interval": 0.0})
    assert c.source.refresh_now()
    first = c.source.value.discovered_at
    monkeypatch.setenv("FAKE_IBDIAGS_FAIL", "ibnetdiscover")
    assert c.source.refresh_now()
    assert c.source.value.discovered_at == first
    text = scrape(c)
    assert one(text, "hpc_fabric_topology_discovery_timestamp_seconds") == first


def test_no_topology_yet_is_a_failed_refresh_and_an_empty_scrape(fake_bin, monkeypatch):
    bindir, _ = fake_bin
    monkeypatch.setenv("FAKE_IBDIAGS_FAIL", "ibnetdiscover")
    c = make(bindir)
    assert not c.source.refresh_now()
    assert "discover failed" in c.source.last_error
    text = scrape(c)
    assert not helpers.values(text, "hpc_fabric_switch_info")
    assert one(text, "hpcwatch_source_up", source="fabric_switches") == 0


def test_available_names_the_missing_binary(tmp_path):
    c = FabricSwitchesCollector(helpers.make_context(agent="cluster", cls=FabricSwitchesCollector,
                                                     ibnetdiscover=str(tmp_path / "nope")))
    assert "install infiniband-diags" in c.available()


lines = st.one_of(
    st.text(max_size=200),
    st.sampled_from(read("ibnetdiscover-ports.txt").splitlines()).flatmap(
        lambda line: st.integers(0, len(line)).map(lambda i: line[:i] + "' - '" + line[i:])),
)


@given(st.lists(lines, max_size=30).map("\n".join))
def test_fuzz_ports_report(text):
    topo = parse_ports_report(text)
    assert topo.skipped >= 0
    for sw in topo.switches.values():
        assert sw.guid.startswith("0x") and len(sw.guid) == 18


blocks = st.one_of(st.text(max_size=300), st.sampled_from(read("perfquery-lid4.txt").splitlines()))


@given(st.lists(blocks, max_size=40).map("\n".join))
def test_fuzz_perfquery(text):
    ports, skipped = parse_perfquery(text)
    assert skipped >= 0
    for pc in ports.values():
        assert all(0 <= v < 10**20 for v in pc.values.values())
    merge_counters(ports, ports)


@given(st.text(max_size=8), st.text(max_size=8))
def test_fuzz_rate(width, speed):
    r = rate_bytes(width, speed)
    assert r is None or r >= 0
