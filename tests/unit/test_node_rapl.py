"""RAPL (powercap) energy: node_exporter's zone names and labels, and a counter that survives the
energy_uj wrap at max_energy_range_uj."""

from __future__ import annotations

import os
import re
import shutil
import threading

import helpers
import nodetrees
import pytest
from hpcwatch.exporters.node.collector import NodeCollector
from hpcwatch.exporters.node.rapl import EnergyCounter, family_name, read_rapl_zones, zone_names
from hypothesis import given
from hypothesis import strategies as st

REAL = nodetrees.REAL
MAX_PKG = 262143328850


def collector(root: str = REAL, **options) -> NodeCollector:
    return nodetrees.node(root, **options)


def scrape(c: NodeCollector) -> str:
    """One scrape that leaves the collector open (the wrap test scrapes one collector three times)."""
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"node": 1.0}
    return text


def test_two_socket_server_zones_as_node_exporter_names_them() -> None:
    c = collector()
    text = scrape(c)
    c.close()
    powercap = os.path.join(REAL, "sys", "class", "powercap")
    pkg = {(d["index"], d["path"]): v for d, v in zip(helpers.series_labels(text, "node_rapl_package_joules_total"),
                                                     helpers.values(text, "node_rapl_package_joules_total"))}
    assert pkg == {("0", os.path.join(powercap, "intel-rapl:0")): 118233.921547,
                   ("1", os.path.join(powercap, "intel-rapl:1")): 262100.0,
                   ("0", os.path.join(powercap, "intel-rapl-mmio:0")): 5512.040017}
    dram = {d["index"]: v for d, v in zip(helpers.series_labels(text, "node_rapl_dram_joules_total"),
                                          helpers.values(text, "node_rapl_dram_joules_total"))}
    assert dram == {"0": 40512.337901, "1": 39222.110004}  # no `-N` in the name: numbered as seen


def test_zone_label_option() -> None:
    c = collector(**{"rapl-zone-label": True})
    text = scrape(c)
    c.close()
    assert {d["rapl_zone"] for d in helpers.series_labels(text, "node_rapl_joules_total")} == {"package", "dram"}
    assert len(helpers.values(text, "node_rapl_joules_total")) == 5
    assert not helpers.values(text, "node_rapl_package_joules_total")


def _zone_tree(tmp_path, energy: int) -> str:
    root = str(tmp_path / "tree")
    if not os.path.exists(root):
        shutil.copytree(REAL, root, symlinks=True)
    path = os.path.join(root, "sys", "devices", "virtual", "powercap", "intel-rapl", "intel-rapl:0", "energy_uj")
    with open(path, "w") as fh:
        fh.write(f"{energy}\n")
    return root


def test_wrap_at_max_energy_range_keeps_the_counter_monotonic(tmp_path) -> None:
    root = _zone_tree(tmp_path, MAX_PKG - 328850)
    c = collector(root)
    labels = {"path": os.path.join(root, "sys", "class", "powercap", "intel-rapl:0")}
    try:
        first = helpers.values(scrape(c), "node_rapl_package_joules_total", **labels)
        assert first == [pytest.approx((MAX_PKG - 328850) / 1e6)]
        _zone_tree(tmp_path, 1_000_000)  # wrapped: 328850 µJ to the top, then 1 J past zero
        second = helpers.values(scrape(c), "node_rapl_package_joules_total", **labels)
        assert second == [pytest.approx((MAX_PKG + 1_000_000) / 1e6)]
        _zone_tree(tmp_path, 3_000_000)
        third = helpers.values(scrape(c), "node_rapl_package_joules_total", **labels)
        assert third == [pytest.approx((MAX_PKG + 3_000_000) / 1e6)]
    finally:
        c.close()


def test_unreadable_energy_skips_only_that_zone(tmp_path) -> None:
    root = _zone_tree(tmp_path, 1)
    path = os.path.join(root, "sys", "devices", "virtual", "powercap", "intel-rapl", "intel-rapl:0", "energy_uj")
    os.remove(path)
    os.mkdir(path)  # a read that fails, as for a non-root reader since Linux 5.10
    c = collector(root)
    text = scrape(c)
    c.close()
    assert len(helpers.values(text, "node_rapl_package_joules_total")) == 2
    assert len(helpers.values(text, "node_rapl_dram_joules_total")) == 2


def test_zone_names_rule() -> None:
    assert zone_names(["package-0\n", "core", "uncore", "package-1", "dram", "core", "psys", "package-0-die-0"]) == [
        ("package", 0), ("core", 0), ("uncore", 0), ("package", 1), ("dram", 0), ("core", 1), ("psys", 0),
        ("package-0-die-0", 0)]
    assert family_name("package-0-die-0") == "node_rapl_package_0_die_0_joules_total"
    assert family_name("core") == "node_rapl_core_joules_total"


def test_reader_skips_control_type_folders() -> None:
    zones = read_rapl_zones(os.path.join(REAL, "sys", "class", "powercap"))
    assert [os.path.basename(z.path) for z in zones] == ["intel-rapl-mmio:0", "intel-rapl:0", "intel-rapl:0:0",
                                                         "intel-rapl:1", "intel-rapl:1:0"]
    assert {z.max_energy_uj for z in zones} == {MAX_PKG, 65712999613}


def test_energy_counter_wrap_reset_and_concurrency() -> None:
    e = EnergyCounter()
    assert e.update("z", 90, 100) == 90
    assert e.update("z", 95, 100) == 95
    assert e.update("z", 5, 100) == 105  # wrapped at 100
    assert e.update("y", 50, None) == 50
    assert e.update("y", 10, None) == 60  # no wrap point known: counted from the new reading
    e.forget({"z"})
    assert e.update("y", 7, None) == 7  # forgotten zone starts over



def test_concurrent_scrapes_never_apply_an_older_reading_after_a_newer_one(tmp_path) -> None:
    from hpcwatch.exporters.node.rapl import RaplZone

    zone = RaplZone("package", 0, str(tmp_path), 10**12)
    energy = tmp_path / "energy_uj"
    energy.write_text("0\n")
    e = EnergyCounter()
    totals: list[int] = []
    stop = threading.Event()

    def write() -> None:  # the kernel's counter only grows here; each value appears atomically
        for v in range(1, 3000):
            (tmp_path / "next").write_text(f"{v * 1000}\n")
            os.replace(tmp_path / "next", energy)
        stop.set()

    def read() -> None:
        while not stop.is_set():
            total = e.read(zone)
            if total is not None:
                totals.append(total)

    threads = [threading.Thread(target=write)] + [threading.Thread(target=read) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert totals and max(totals) <= 3000 * 1000  # a reading applied out of order would add ~10**12


@given(st.lists(st.text(max_size=20), max_size=12))
def test_zone_names_fuzz(names: list[str]) -> None:
    out = zone_names(names)
    assert len(out) == len(names) and all(i >= 0 for _, i in out)
    for name, _ in out:
        assert re.fullmatch(r"node_rapl_[0-9A-Za-z_]*_joules_total", family_name(name))


@given(st.lists(st.integers(0, 1000), min_size=1, max_size=50))
def test_energy_counter_fuzz_never_decreases(readings: list[int]) -> None:
    e = EnergyCounter()
    totals = [e.update("z", r, 1000) for r in readings]
    assert totals == sorted(totals)
