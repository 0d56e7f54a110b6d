"""BeeGFS: the `Sum:` line of beegfs-ctl --clientstats (meta and storage), and the collector."""

from __future__ import annotations

import os
import stat

import helpers
import pytest
from hpcwatch.exporters.beegfs.clientstats import ClientStatsError, parse_clientstats
from hpcwatch.exporters.beegfs.collector import BeegfsCollector
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "beegfs")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def test_meta_sum_line():
    errors: list[str] = []
    s = parse_clientstats(fixture("clientstats_meta.txt"), errors.append)
    assert errors == []
    assert s.requests == 68624
    assert s.operations["stat"] == 39911 and s.operations["mkdir"] == 4 and "sum" not in s.operations
    assert s.bytes == {}


def test_storage_sum_line_mib_and_exponent_notation():
    s = parse_clientstats(fixture("clientstats_storage.txt"))
    assert s.requests == 1.26196e+06
    assert s.operations["ops-rd"] == 1222285
    assert s.bytes == {"read": pytest.approx(102714.04 * 2**20), "write": 84 * 2**20}
    assert "MiB-rd" not in s.operations


def test_storage_byte_unit():
    s = parse_clientstats(fixture("clientstats_storage_bytes.txt"))
    assert s.bytes == {"read": 409600, "write": 778240}


def test_output_without_sum_line_is_an_error():
    with pytest.raises(ClientStatsError):
        parse_clientstats("Communication error: management node unreachable\n")


def test_garbage_values_are_reported_and_skipped():
    errors: list[str] = []
    s = parse_clientstats("Sum: 12 [sum] x [ack] 3 [close] trailing\n", errors.append)
    assert s.requests == 12 and s.operations == {"close": 3}
    assert len(errors) == 2


@given(st.text(max_size=300))
@settings(max_examples=300, deadline=None)
def test_fuzz_only_raises_its_error(text):
    for t in (text, "Sum: " + text):
        try:
            s = parse_clientstats(t, lambda r: None)
        except ClientStatsError:
            continue
        assert all(v >= 0 for v in s.operations.values())


def fake_ctl(tmp_path) -> str:
    p = tmp_path / "beegfs-ctl"
    p.write_text("#!/bin/sh\n"
                 '[ "$1 $3" = "--clientstats --interval=0" ] || exit 1\n'
                 f'case "$2" in --nodetype=meta) cat "{FIX}/clientstats_meta.txt";; '
                 f'--nodetype=storage) cat "{FIX}/clientstats_storage.txt";; *) exit 1;; esac\n')
    p.chmod(p.stat().st_mode | stat.S_IEXEC)
    return str(p)


def test_collector(tmp_path):
    c = BeegfsCollector(helpers.make_context(agent="cluster", cls=BeegfsCollector, ctl=fake_ctl(tmp_path)))
    assert c.available() is None
    for s in c.sources():
        assert s.refresh_now(), s.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"beegfs": 1}
    assert helpers.values(text, "hpc_beegfs_requests_total", nodetype="meta") == [68624]
    assert helpers.values(text, "hpc_beegfs_operations_total", nodetype="meta", operation="unlnk") == [52]
    assert helpers.values(text, "hpc_beegfs_operations_total", nodetype="storage", operation="ops-wr") == [21504]
    assert helpers.values(text, "hpc_beegfs_bytes_total", nodetype="storage", direction="write") == [84 * 2**20]


def test_collector_unavailable_without_beegfs_ctl(tmp_path):
    c = BeegfsCollector(helpers.make_context(cls=BeegfsCollector, ctl=str(tmp_path / "beegfs-ctl")))
    assert "not found" in c.available()
