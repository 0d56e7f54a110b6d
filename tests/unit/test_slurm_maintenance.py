"""Maintenance in the Slurm adapter: hostlist expressions, `scontrol show reservation --oneliner` (captured
from Slurm 22.05: two MAINT reservations, one active and one next week, and a plain one), drain reasons
that say maintenance, and the neutral series they become (nodes counted as `maint`)."""

from __future__ import annotations

import os
import re

import helpers
import pytest
from hpcwatch.exporters.slurm import parse
from hpcwatch.exporters.slurm.collector import SlurmCollector, maintenance
from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR as SEP
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slurm")
REASON = re.compile(r"(?i)\bmaint")
NODES = [f"hpcw6aafb6{i}" for i in range(4)]


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name), encoding="utf-8") as fh:
        return fh.read()


@pytest.mark.parametrize("expr, names", [
    ("n[01-03,7],gpu1", ["n01", "n02", "n03", "n7", "gpu1"]),
    ("rack[1-2]-n[1-2]", ["rack1-n1", "rack1-n2", "rack2-n1", "rack2-n2"]),
    ("tux[0-2],lx[1-3]", ["tux0", "tux1", "tux2", "lx1", "lx2", "lx3"]),
    ("node0099", ["node0099"]), ("n[009-011]", ["n009", "n010", "n011"]), ("(null)", []), ("", []),
])
def test_hostlist_expressions(expr, names):
    assert parse.expand_hostlist(expr) == names


@pytest.mark.parametrize("expr", ["n[1-", "n]1[", "n[3-1]", "n[a-b]", "n[1-99999999]", "n[]"])
def test_bad_hostlists_raise(expr):
    with pytest.raises(ValueError):
        parse.expand_hostlist(expr, limit=1000)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["n", "gpu", "cn-"]), st.integers(0, 200), st.integers(0, 30),
                          st.integers(1, 4)), min_size=1, max_size=4))
def test_hostlist_round_trip(groups):
    """Ranges written the way Slurm compresses them expand to exactly the names they stand for."""
    want, parts = [], []
    for prefix, lo, span, width in groups:
        hi = lo + span
        want += [f"{prefix}{str(v).zfill(width)}" for v in range(lo, hi + 1)]
        parts.append(f"{prefix}[{str(lo).zfill(width)}-{str(hi).zfill(width)}]")
    assert parse.expand_hostlist(",".join(parts)) == want


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_reservation_parser_never_raises(text):
    got, skipped = parse.parse_reservations(text)
    assert skipped >= 0 and all(r.name for r in got)


def test_reservations_from_slurm():
    got, skipped = parse.parse_reservations(fixture("scontrol-show-reservation-22.05.txt"))
    assert skipped == 0
    by = {r.name: r for r in got}
    assert set(by) == {"maint_rack1", "maint_next_week", "course"}
    rack = by["maint_rack1"]
    assert rack.maintenance and rack.nodes == tuple(NODES[:2]) and rack.state == "ACTIVE"
    assert rack.end - rack.start == 7200 and {"IGNORE_JOBS", "SPEC_NODES"} < rack.flags
    assert by["maint_next_week"].maintenance and not by["course"].maintenance
    assert parse.parse_reservations("No reservations in the system\n") == ([], 0)
    bad = "ReservationName=x Nodes=n[1- Flags=MAINT\nReservationName= Nodes=n1\n"
    assert parse.parse_reservations(bad) == ([], 2)


def test_sinfo_reason_is_read_whole():
    nodes, skipped = parse.parse_sinfo(fixture("sinfo-maintenance-22.05.txt"), SEP)
    assert skipped == 0
    reasons = {n.node: n.reason for n in nodes}
    assert reasons == {NODES[0]: "PSU swap", NODES[1]: "", NODES[2]: "Maintenance: BIOS update",
                       NODES[3]: "ECC errors|check DIMM"}   # free text: a '|' is part of it


def test_who_is_under_maintenance_and_when():
    nodes, _ = parse.parse_sinfo(fixture("sinfo-maintenance-22.05.txt"), SEP)
    res, _ = parse.parse_reservations(fixture("scontrol-show-reservation-22.05.txt"))
    rack = next(r for r in res if r.name == "maint_rack1")
    during, windows = maintenance(nodes, res, rack.start + 60, REASON)
    # Both nodes of the active window (the one down for a PSU swap too), the node drained for maintenance;
    # not the node drained for ECC errors, nor the one in a plain reservation.
    assert during == {NODES[0]: ("reservation", "maint_rack1"), NODES[1]: ("reservation", "maint_rack1"),
                      NODES[2]: ("drain", "")}
    assert sorted(w.name for w in windows) == ["maint_next_week", "maint_rack1"]
    after, _ = maintenance(nodes, res, rack.end, REASON)
    assert after == {NODES[2]: ("drain", "")}
    assert maintenance(nodes, res, rack.end, None)[0] == {}


def test_collector_exports_maintenance_and_counts_those_nodes_as_maint(tmp_path):
    """The whole adapter through stand-in commands, with the reservations moved to around now."""
    import time

    from test_slurm_collector import FakeSlurm

    fake = FakeSlurm(str(tmp_path))
    fake.set("sinfo", fixture("sinfo-maintenance-22.05.txt"))
    now = time.time()
    text = fixture("scontrol-show-reservation-22.05.txt")
    text = text.replace("StartTime=2026-11-30T01:41:12 EndTime=2026-11-30T03:41:12",
                        f"StartTime={parse.format_time(now - 600)} EndTime={parse.format_time(now + 3600)}")
    fake.set("scontrol", text)
    ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, **{"bin-dir": fake.bin, "cluster": "hpcw",
                                                                      "state-file": str(tmp_path / "s.json")})
    c = SlurmCollector(ctx)
    try:
        assert c.source.refresh_now(), c.source.last_error
        out = helpers.render(c)
    finally:
        c.close()
    helpers.assert_promtool_clean(out)
    series = helpers.series_labels(out, "hpc_scheduler_maintenance")
    maint = {(s["node"], s["source"], s["reservation"]) for s in series}
    assert maint == {(NODES[0], "reservation", "maint_rack1"), (NODES[1], "reservation", "maint_rack1"),
                     (NODES[2], "drain", "")}
    assert helpers.values(out, "hpc_scheduler_nodes", queue="debug", state="maint") == [3]
    assert helpers.values(out, "hpc_scheduler_nodes", queue="debug", state="drain") == [1]   # the ECC node
    assert helpers.values(out, "hpc_scheduler_nodes", queue="debug", state="down") == []
    windows = helpers.series_labels(out, "hpc_scheduler_maintenance_window_end_timestamp_seconds")
    ends = {s["reservation"] for s in windows}
    assert ends == {"maint_rack1", "maint_next_week"}
