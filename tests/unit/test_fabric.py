"""The `fabric` collector on sysfs fixture trees (tests/fixtures/fabric/sysfs/*, see make_sysfs.py)."""

from __future__ import annotations

import os
import shutil
import tempfile

import helpers
import pytest
from hpcwatch.exporters.fabric.collector import FabricCollector
from hpcwatch.exporters.fabric.pma import LEGACY_EXT_NAMES, PORT_COUNTERS_WIDTH, TRAFFIC_COUNTERS, is_saturated
from hpcwatch.exporters.fabric.sysfs import (
    PortRecord,
    parse_counter,
    parse_rate,
    parse_state,
    port_counters,
    split_hw_counters,
)
from hpcwatch.exporters.files import HeldFiles, list_dir, read_text
from hpcwatch.exporters.registry import load_all
from hypothesis import given, settings
from hypothesis import strategies as st

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "fabric", "sysfs")
SCENARIOS = ("cx6_hdr", "cx6dx_roce", "hfi1_opa", "legacy_counters_ext", "saturated", "nopma")


# nopma holds a directory where a counter file belongs: a read error, so that scrape reports success 0.
SUCCESS = {"nopma": 0.0}


def scrape(sysfs: str, **options: object) -> str:
    collector = FabricCollector(helpers.make_context(sysfs=sysfs, cls=FabricCollector, **options))
    assert collector.available() is None
    try:
        text = helpers.render(collector)
    finally:
        collector.close()
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"fabric": SUCCESS.get(os.path.basename(sysfs), 1.0)}
    return text


def fixture(name: str) -> str:
    return os.path.join(FIXTURES, name)


def one(text: str, name: str, **labels: str) -> float:
    found = helpers.values(text, name, **labels)
    assert len(found) == 1, f"{name}{labels}: {found}"
    return found[0]


def test_registered_for_the_node_agent():
    cls = load_all()["fabric"]
    assert cls is FabricCollector
    assert cls.default_agents == frozenset({"node"})


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_fixture_scrapes_clean(scenario):
    text = scrape(fixture(scenario))
    assert helpers.series_labels(text, "hpc_fabric_port_info")


def test_connectx6_hdr_two_ports_one_down():
    text = scrape(fixture("cx6_hdr"))
    info = {d["device"]: d for d in helpers.series_labels(text, "hpc_fabric_port_info")}
    assert info["mlx5_0"] == {"device": "mlx5_0", "port": "1", "hca_type": "MT4123",
                              "firmware_version": "20.31.1014", "board_id": "MT_0000000223",
                              "node_guid": "b8ce:f603:00a1:2b3c", "link_layer": "InfiniBand", "netdev": "ib0"}
    assert info["mlx5_1"]["netdev"] == "ib1"
    up = {"device": "mlx5_0", "port": "1"}
    down = {"device": "mlx5_1", "port": "1"}
    assert one(text, "hpc_fabric_port_up", **up) == 1
    assert one(text, "hpc_fabric_port_state_id", **up) == 4
    assert one(text, "hpc_fabric_port_rate_bytes_per_second", **up) == 200e9 / 8
    # The unplugged port: Down/Polling, still reported next to the healthy one.
    assert one(text, "hpc_fabric_port_up", **down) == 0
    assert one(text, "hpc_fabric_port_state_id", **down) == 1
    assert one(text, "hpc_fabric_port_physical_state_id", **down) == 2
    # port_xmit_data counts 4-byte words.
    assert one(text, "hpc_fabric_port_transmit_bytes_total", **up) == (9_876_543_210_123 + 1) * 4
    assert one(text, "hpc_fabric_port_receive_packets_total", **up) == 41_234_567_890 + 1
    assert one(text, "hpc_fabric_port_errors_total", counter="symbol_error", **up) == 3
    assert one(text, "hpc_fabric_port_errors_total", counter="link_downed", **up) == 1
    assert one(text, "hpc_fabric_port_transmit_wait_total", **up) == 5_550_001
    errors = {d["counter"] for d in helpers.series_labels(text, "hpc_fabric_port_errors_total")}
    assert errors == {"symbol_error", "link_error_recovery", "link_downed", "port_rcv_errors",
                      "port_rcv_remote_physical_errors", "port_rcv_switch_relay_errors", "port_xmit_discards",
                      "port_xmit_constraint_errors", "port_rcv_constraint_errors",
                      "local_link_integrity_errors", "excessive_buffer_overrun_errors", "VL15_dropped"}
    assert not helpers.values(text, "hpc_fabric_port_pma_saturated")  # nothing pinned
    hw = {d["counter"] for d in helpers.series_labels(text, "hpc_fabric_port_hw_events_total")}
    assert "out_of_sequence" in hw and "lifespan" not in hw


def test_connectx6dx_roce_port():
    text = scrape(fixture("cx6dx_roce"))
    port = {"device": "mlx5_2", "port": "1"}
    (info,) = helpers.series_labels(text, "hpc_fabric_port_info")
    assert info["link_layer"] == "Ethernet" and info["netdev"] == "ens1f0np0" and info["hca_type"] == "MT4125"
    expected = {"np_cnp_sent": 18235, "np_ecn_marked_roce_packets": 18502, "rp_cnp_handled": 9120,
                "rp_cnp_ignored": 0, "out_of_sequence": 42, "packet_seq_err": 7, "local_ack_timeout_err": 5,
                "out_of_buffer": 11}
    for counter, value in expected.items():
        assert one(text, "hpc_fabric_port_hw_events_total", counter=counter, **port) == value
    assert one(text, "hpc_fabric_port_rate_bytes_per_second", **port) == 100e9 / 8


def test_omnipath_hfi1():
    text = scrape(fixture("hfi1_opa"))
    (info,) = helpers.series_labels(text, "hpc_fabric_port_info")
    assert info["hca_type"] == ""  # hfi1 has no hca_type attribute
    assert info["board_id"] == "Intel Omni-Path HFI Adapter 100 Series, 1 Port, PCIe x16"
    assert info["firmware_version"] == "1.27.0"
    assert one(text, "hpc_fabric_device_hw_events_total", device="hfi1_0", counter="Interrupts") == 1842211
    assert one(text, "hpc_fabric_device_hw_events_total", device="hfi1_0", counter="RxTIDFullEr") == 3
    assert one(text, "hpc_fabric_port_hw_events_total", device="hfi1_0", port="1", counter="TxPkt") == 812345
    assert not helpers.values(text, "hpc_fabric_device_hw_events_total", counter="lifespan")


def test_pre_4_5_counters_ext_wins_over_32_bit_counters():
    text = scrape(fixture("legacy_counters_ext"))
    p1 = {"device": "mlx4_0", "port": "1"}
    # counters/port_xmit_data is pinned at 2^32-1; counters_ext/port_xmit_data_64 is the truth.
    assert one(text, "hpc_fabric_port_transmit_bytes_total", **p1) == 77_000_000_000_001 * 4
    assert one(text, "hpc_fabric_port_transmit_packets_total", **p1) == 55_000_000_003
    assert one(text, "hpc_fabric_port_unicast_transmit_packets_total", **p1) == 54_999_999_000
    assert one(text, "hpc_fabric_port_multicast_receive_packets_total", **p1) == 567
    assert not helpers.values(text, "hpc_fabric_port_pma_saturated", counter="port_xmit_data", **p1)
    # No port_xmit_wait before 4.5 and no unicast_* in counters/.
    assert not helpers.values(text, "hpc_fabric_port_transmit_wait_total")
    # A dual-port mlx4 function: each port's netdev found through dev_port.
    netdevs = {d["port"]: d["netdev"] for d in helpers.series_labels(text, "hpc_fabric_port_info")}
    assert netdevs == {"1": "ib0", "2": "eth1"}


def test_saturated_counters_are_flagged_by_width():
    text = scrape(fixture("saturated"))
    old = {"device": "mlx4_1", "port": "1"}
    flagged = {d["counter"] for d in helpers.series_labels(text, "hpc_fabric_port_pma_saturated")
               if d["device"] == "mlx4_1"}
    assert flagged == set(PORT_COUNTERS_WIDTH)  # a 32-bit-only PMA: every counter has a width
    assert set(helpers.values(text, "hpc_fabric_port_pma_saturated", **old)) == {1.0}
    assert one(text, "hpc_fabric_port_transmit_bytes_total", **old) == 4294967295 * 4
    new = {"device": "mlx5_4", "port": "1"}
    assert one(text, "hpc_fabric_port_pma_saturated", counter="symbol_error", **new) == 1
    assert not helpers.values(text, "hpc_fabric_port_pma_saturated", counter="link_downed", **new)  # 254
    # On an extended PMA 2^32-1 bytes/4 is just a number, not a pinned 32-bit counter.
    assert not helpers.values(text, "hpc_fabric_port_pma_saturated", counter="port_xmit_data", **new)


def test_no_pma_unreadable_and_vanished_are_skipped_per_counter():
    text = scrape(fixture("nopma"))
    # the unreadable counter (a directory) is counted, and the rest of the device is still served
    assert helpers.values(text, "hpcwatch_read_errors_total", source="fabric")
    port = {"device": "bnxt_re0", "port": "1"}
    assert not helpers.values(text, "hpc_fabric_port_errors_total")  # all N/A or unreadable
    assert not helpers.values(text, "hpc_fabric_port_transmit_bytes_total")
    assert one(text, "hpc_fabric_port_up", **port) == 1
    assert one(text, "hpc_fabric_port_hw_level", counter="active_qps", **port) == 12
    assert one(text, "hpc_fabric_port_hw_level", counter="watermark_qps", **port) == 40
    assert one(text, "hpc_fabric_port_hw_events_total", counter="to_retransmits", **port) == 9
    assert one(text, "hpc_fabric_device_hw_level", device="bnxt_re0", counter="active_pds") == 3
    # Port 2 lost its attributes: it still has an info series, and nothing else breaks.
    info = {d["port"]: d for d in helpers.series_labels(text, "hpc_fabric_port_info")}
    assert set(info) == {"1", "2"} and info["1"]["netdev"] == "enp65s0f0np0"
    assert not helpers.values(text, "hpc_fabric_port_up", port="2")


def test_ignored_devices_and_hw_counters_off():
    text = scrape(fixture("cx6_hdr"), **{"ignored-devices": "^mlx5_1$", "hw-counters": False})
    assert {d["device"] for d in helpers.series_labels(text, "hpc_fabric_port_info")} == {"mlx5_0"}
    assert not helpers.values(text, "hpc_fabric_port_hw_events_total")


def test_devices_appearing_and_vanishing_between_scrapes(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(fixture("cx6_hdr"), root)
    # held-files 0: an unlinked regular file stays readable through a held descriptor (sysfs says
    # ENODEV instead), so the vanishing-file case below needs open-per-read.
    collector = FabricCollector(helpers.make_context(sysfs=str(root), cls=FabricCollector, **{"held-files": 0}))
    first = helpers.render(collector)
    assert {d["device"] for d in helpers.series_labels(first, "hpc_fabric_port_info")} == {"mlx5_0", "mlx5_1"}
    shutil.rmtree(root / "class" / "infiniband" / "mlx5_1")
    shutil.copytree(fixture("cx6dx_roce") + "/class/infiniband/mlx5_2", root / "class" / "infiniband" / "mlx5_2")
    second = helpers.render(collector)
    helpers.assert_promtool_clean(second)
    assert helpers.collector_success(second) == {"fabric": 1.0}
    assert {d["device"] for d in helpers.series_labels(second, "hpc_fabric_port_info")} == {"mlx5_0", "mlx5_2"}
    # A counter that vanishes between listing and reading is skipped, the rest still served.
    os.remove(root / "class/infiniband/mlx5_0/ports/1/counters/symbol_error")
    third = helpers.render(collector)
    assert not helpers.values(third, "hpc_fabric_port_errors_total", device="mlx5_0", counter="symbol_error")
    assert helpers.values(third, "hpc_fabric_port_errors_total", device="mlx5_0", counter="link_downed") == [1]


def test_held_files_reread_budget_and_drop_on_error(tmp_path):
    a, b, d = tmp_path / "a", tmp_path / "b", tmp_path / "dir"
    a.write_text("1\n")
    b.write_text("2\n")
    d.mkdir()
    files = HeldFiles(budget=1)
    try:
        assert files.read(str(a)) == "1\n"
        a.write_text("41\n")  # rewritten in place, like a sysfs show() giving a new value
        assert files.read(str(a)) == "41\n"
        assert files.read(str(b)) == "2\n" and len(files) == 1  # over budget: open, read, close
        assert files.read(str(d)) is None and len(files) == 1  # a directory is unreadable, not held
        assert files.read(str(tmp_path / "missing")) is None
        files.forget(str(tmp_path))
        assert len(files) == 0
    finally:
        files.close()


def test_held_files_serve_repeated_scrapes_with_fresh_values(tmp_path):
    root = tmp_path / "sys"
    shutil.copytree(fixture("cx6_hdr"), root)
    collector = FabricCollector(helpers.make_context(sysfs=str(root), cls=FabricCollector, **{"held-files": 500}))
    try:
        helpers.render(collector)
        assert len(collector.files) > 40
        (root / "class/infiniband/mlx5_0/ports/1/counters/link_downed").write_text("2\n")
        text = helpers.render(collector)
        assert helpers.values(text, "hpc_fabric_port_errors_total", device="mlx5_0", counter="link_downed") == [2]
        shutil.rmtree(root / "class/infiniband/mlx5_1")
        helpers.render(collector)
        assert not [p for p in collector.files._fds if "/mlx5_1/" in p]  # closed with the device
    finally:
        collector.close()
    assert len(collector.files) == 0


def test_available_says_why_when_there_is_no_rdma(tmp_path):
    collector = FabricCollector(helpers.make_context(sysfs=str(tmp_path), cls=FabricCollector))
    assert "no RDMA devices" in collector.available()


def test_width_table_matches_the_iba_port_counters_layout():
    assert PORT_COUNTERS_WIDTH["symbol_error"] == 16
    assert PORT_COUNTERS_WIDTH["link_error_recovery"] == PORT_COUNTERS_WIDTH["link_downed"] == 8
    assert PORT_COUNTERS_WIDTH["local_link_integrity_errors"] == 4
    assert PORT_COUNTERS_WIDTH["excessive_buffer_overrun_errors"] == 4
    assert PORT_COUNTERS_WIDTH["port_xmit_wait"] == PORT_COUNTERS_WIDTH["port_xmit_data"] == 32
    assert is_saturated("local_link_integrity_errors", 15)
    assert not is_saturated("local_link_integrity_errors", 14)
    assert not is_saturated("port_xmit_data", (1 << 32) - 1, width=64)


@pytest.mark.parametrize("text,expected", [
    ("123\n", 123), ("0", 0), ("N/A (no PMA)\n", None), ("", None), (None, None), ("-1", None),
    ("18446744073709551615", (1 << 64) - 1), ("18446744073709551616", None), ("１２", None),
])
def test_parse_counter(text, expected):
    assert parse_counter(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("4: ACTIVE\n", (4, "ACTIVE")), ("2: Polling", (2, "Polling")), ("ACTIVE", None), (":", None), (None, None),
])
def test_parse_state(text, expected):
    assert parse_state(text) == expected


@pytest.mark.parametrize("text,expected", [
    ("200 Gb/sec (4X HDR)\n", 25e9), ("2.5 Gb/sec (1X SDR)", 2.5e9 / 8), ("nan Gb/sec", None), ("fast", None),
])
def test_parse_rate(text, expected):
    assert parse_rate(text) == expected


texts = st.one_of(st.none(), st.text(max_size=40), st.integers(min_value=-5, max_value=1 << 70).map(str))
names = st.one_of(st.sampled_from(sorted(PORT_COUNTERS_WIDTH) + ["unicast_xmit_packets", "lifespan"]),
                  st.text(max_size=20))


@given(texts)
def test_fuzz_scalar_parsers(text):
    v = parse_counter(text)
    assert v is None or 0 <= v < (1 << 64)
    s = parse_state(text)
    assert s is None or s[0] >= 0
    r = parse_rate(text)
    assert r is None or r >= 0


@given(st.dictionaries(names, texts, max_size=25), st.dictionaries(names, texts, max_size=10))
def test_fuzz_port_counters(counters, ext):
    rec = PortRecord(device="d", port="1")
    port_counters(rec, counters, ext)
    assert all(v >= 0 for v in rec.traffic.values())
    assert set(rec.saturated) <= set(PORT_COUNTERS_WIDTH)
    hw, gauges, skipped = split_hw_counters(counters)
    assert "lifespan" not in hw and "lifespan" not in gauges and skipped >= 0


# The collector runs the pure parsers (port_counters, split_hw_counters) on the bytes it read; reading
# every file of the tree directly and parsing it must give the same samples, value for value.
COUNTER_FAMILIES = ("hpc_fabric_port_errors_total", "hpc_fabric_port_transmit_wait_total",
                    "hpc_fabric_port_pma_saturated", "hpc_fabric_port_hw_events_total", "hpc_fabric_port_hw_level",
                    "hpc_fabric_device_hw_events_total", "hpc_fabric_device_hw_level") + tuple(
    f"hpc_fabric_port_{suffix}_total" for suffix, _ in TRAFFIC_COUNTERS.values())


def reference_counter_samples(sysfs: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    def texts(directory: str) -> dict[str, str | None]:
        return {name: read_text(os.path.join(directory, name)) for name in list_dir(directory)}

    def key(name: str, **labels: str) -> tuple[str, tuple[tuple[str, str], ...]]:
        return name, tuple(sorted(labels.items()))

    out = {}
    root = os.path.join(sysfs, "class", "infiniband")
    for dev in list_dir(root):
        hw, levels, _ = split_hw_counters(texts(os.path.join(root, dev, "hw_counters")))
        out.update({key("hpc_fabric_device_hw_events_total", device=dev, counter=n): v for n, v in hw.items()})
        out.update({key("hpc_fabric_device_hw_level", device=dev, counter=n): v for n, v in levels.items()})
        for port in list_dir(os.path.join(root, dev, "ports")):
            base, dp = os.path.join(root, dev, "ports", port), {"device": dev, "port": port}
            rec = PortRecord(device=dev, port=port)
            port_counters(rec, texts(os.path.join(base, "counters")), texts(os.path.join(base, "counters_ext")))
            for n, v in rec.traffic.items():
                out[key(f"hpc_fabric_port_{TRAFFIC_COUNTERS[n][0]}_total", **dp)] = v
            out.update({key("hpc_fabric_port_errors_total", counter=n, **dp): v for n, v in rec.errors.items()})
            if rec.xmit_wait is not None:
                out[key("hpc_fabric_port_transmit_wait_total", **dp)] = rec.xmit_wait
            out.update({key("hpc_fabric_port_pma_saturated", counter=n, **dp): 1
                        for n, pinned in rec.saturated.items() if pinned})
            hw, levels, _ = split_hw_counters(texts(os.path.join(base, "hw_counters")))
            out.update({key("hpc_fabric_port_hw_events_total", counter=n, **dp): v for n, v in hw.items()})
            out.update({key("hpc_fabric_port_hw_level", counter=n, **dp): v for n, v in levels.items()})
    return out


def collected_counter_samples(sysfs: str, scrapes: int = 2) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    collector = FabricCollector(helpers.make_context(sysfs=sysfs, cls=FabricCollector))
    try:
        for _ in range(scrapes):  # the first scrape lists and opens, later ones re-read held files
            out = {}
            for fam in collector.collect():
                for s in fam.samples:
                    if s.name in COUNTER_FAMILIES:
                        assert (s.name, tuple(sorted(s.labels.items()))) not in out
                        out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    finally:
        collector.close()
    return out


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_collector_agrees_with_the_reference_parsers(scenario):
    expected = reference_counter_samples(fixture(scenario))
    assert expected
    assert collected_counter_samples(fixture(scenario)) == expected


counter_texts = st.one_of(
    st.sampled_from(["0\n", "15\n", "255", "65535\n", "4294967295\n", "4294967296\n", "18446744073709551615\n",
                     "18446744073709551616\n", "N/A (no PMA)\n", "", " 7 \n", "+5\n", "-1\n", "1_0\n", "１２\n",
                     "\x1c12\x1c", "12\x85"]),
    st.integers(min_value=0, max_value=(1 << 65)).map(lambda v: f"{v}\n"),
    st.text(max_size=12),
    st.binary(max_size=12))
counter_names = st.sampled_from(sorted(PORT_COUNTERS_WIDTH) + sorted(k for k in TRAFFIC_COUNTERS if k not in
                                                                      PORT_COUNTERS_WIDTH) + ["port_rcv_other"])


@settings(max_examples=40, deadline=None)
@given(st.dictionaries(counter_names, counter_texts, max_size=22),
       st.dictionaries(st.sampled_from(sorted(LEGACY_EXT_NAMES) + ["port_other_64"]), counter_texts, max_size=9),
       st.dictionaries(st.sampled_from(["lifespan", "out_of_sequence", "active_qps", "watermark_qps", "np_cnp_sent"]),
                       counter_texts, max_size=5))
def test_fuzz_collector_agrees_with_the_reference_parsers(counters, ext, hw):
    with tempfile.TemporaryDirectory() as sysfs:
        port = "class/infiniband/mlx5_0/ports/1"
        helpers.write_tree(sysfs, {
            "class/infiniband/mlx5_0/hca_type": "MT4123\n", f"{port}/state": "4: ACTIVE\n",
            f"{port}/phys_state": "5: LinkUp\n", f"{port}/rate": "200 Gb/sec (4X HDR)\n",
            **{f"{port}/counters/{n}": t for n, t in counters.items()},
            **{f"{port}/counters_ext/{n}": t for n, t in ext.items()},
            **{f"{port}/hw_counters/{n}": t for n, t in hw.items()},
            **{f"class/infiniband/mlx5_0/hw_counters/{n}": t for n, t in hw.items()},
        })
        assert collected_counter_samples(sysfs) == reference_counter_samples(sysfs)
