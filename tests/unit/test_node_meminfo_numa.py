"""Per-NUMA-node memory (node_memory_numa_*): node_exporter's names on kernel 6 and RHEL 7 layouts,
the parsers on bad input, and fuzzing."""

from __future__ import annotations

import os
import re

import helpers
import nodetrees
from hpcwatch.exporters.node.meminfo import parse_meminfo_numa, parse_numastat
from hpcwatch.exporters.selfmetrics import parse_errors
from hypothesis import given
from hypothesis import strategies as st


def scrape(tree: str, **options) -> str:
    return nodetrees.scrape(nodetrees.node(tree if os.path.isabs(tree) else os.path.join(nodetrees.FIX, tree),
                                           **options))


def by_node(text: str, name: str) -> dict[str, float]:
    return {d["node"]: v for d, v in zip(helpers.series_labels(text, name), helpers.values(text, name))}


def test_two_nodes_kernel_6() -> None:
    text = scrape("real")
    assert by_node(text, "node_memory_numa_MemTotal") == {"0": 65536000 * 1024, "1": 65536000 * 1024}
    assert by_node(text, "node_memory_numa_MemFree") == {"0": 12288000 * 1024, "1": 30720000 * 1024}
    assert by_node(text, "node_memory_numa_Active_anon") == {"0": 41280 * 1024, "1": 41280 * 1024}
    assert by_node(text, "node_memory_numa_HugePages_Free") == {"0": 100, "1": 512}  # pages, not bytes
    assert by_node(text, "node_memory_numa_numa_hit_total") == {"0": 926603808, "1": 526603808}
    assert by_node(text, "node_memory_numa_numa_miss_total") == {"0": 1023, "1": 77}
    assert by_node(text, "node_memory_numa_KReclaimable")["0"] == 140848 * 1024


def test_rhel7_one_node_older_fields() -> None:
    text = scrape("el7")
    assert by_node(text, "node_memory_numa_MemTotal") == {"0": 32768000 * 1024}
    assert by_node(text, "node_memory_numa_HugePages_Total") == {"0": 64}
    assert "node_memory_numa_KReclaimable" not in helpers.all_names(text)
    assert by_node(text, "node_memory_numa_local_node_total") == {"0": 123456789}


def test_option_turns_it_off() -> None:
    text = scrape("real", **{"meminfo-numa": False})
    assert not any(n.startswith("node_memory_numa_") for n in helpers.all_names(text))


def test_bad_lines_are_counted_and_skipped(tmp_path) -> None:
    helpers.write_tree(str(tmp_path), {
        "proc/stat": "cpu0 1 2 3 4\n",
        "sys/devices/system/node/node0/meminfo": "Node 0 MemTotal: 10 kB\nNode 0 MemFree: x kB\nNode x Bad: 1 kB\n"
                                                 "Node 0 Odd: 1 MB\ngarbage\nNode 0 HugePages_Free: 3\n",
        "sys/devices/system/node/node0/numastat": "numa_hit 5\nnuma_miss\nbad-name 3\nother_node 1\n",
    })
    before = parse_errors("node_meminfo_numa")
    text = scrape(str(tmp_path))
    assert parse_errors("node_meminfo_numa") == before + 6
    assert by_node(text, "node_memory_numa_MemTotal") == {"0": 10240}
    assert by_node(text, "node_memory_numa_HugePages_Free") == {"0": 3}
    assert by_node(text, "node_memory_numa_other_node_total") == {"0": 1}


def test_parsers_exact() -> None:
    fields, errors = parse_meminfo_numa("Node 1 Inactive(file):  1082660 kB\nNode 1 HugePages_Surp:      0\n")
    assert errors == 0 and [(f.node, f.key, f.value) for f in fields] == [
        ("1", "Inactive_file", 1082660 * 1024), ("1", "HugePages_Surp", 0)]
    assert parse_numastat("numa_hit 1\nnuma_miss 2\n") == ({"numa_hit": 1, "numa_miss": 2}, 0)


proc_like = st.lists(st.lists(st.sampled_from(["Node", "0", "1", "x", "MemTotal:", "Active(anon):", "kB", "MB", "12",
                                               "-3", "numa_hit", "a-b", ""]), max_size=6).map(" ".join),
                     max_size=10).map("\n".join)


@given(proc_like | st.text(max_size=200))
def test_parsers_fuzz(text: str) -> None:
    fields, errors = parse_meminfo_numa(text)
    assert errors >= 0
    for f in fields:
        assert f.node.isdigit() and re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", "node_memory_numa_" + f.key)
    stats, errors = parse_numastat(text)
    assert all(re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", k) for k in stats) and errors >= 0
