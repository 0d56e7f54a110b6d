"""The batched sacct reader on output captured from real Slurm 22.05, and fuzzed."""

from __future__ import annotations

import os

import pytest
from hpcwatch.accounting.sacct import (
    SUMMARY_FIELDS,
    duration_s,
    parse_summary_sacct,
    parse_tres,
    sacct_argv,
    size_bytes,
    tres_gpu_model,
    tres_gpus,
)
from hypothesis import given
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "accounting")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def test_real_22_05_output():
    details, skipped = parse_summary_sacct(fixture("sacct-summary-22.05.txt"))
    assert skipped == 0
    assert sorted(details, key=int) == ["1", "2", "3", "4", "5", "6", "7", "8"]
    burn = details["1"]
    assert (burn.jobid, burn.name, burn.state, burn.qos, burn.cluster) == \
        ("1", "burn.sh", "COMPLETED", "normal", "hpcw")
    assert (burn.cpus_alloc, burn.cpus_req, burn.elapsed_s, burn.time_limit_s) == (2, 2, 21.0, 600.0)
    assert burn.total_cpu_s == pytest.approx(18.455)
    # The job printed its cgroup's cpuacct.usage at its end: 18454384019 ns.
    assert burn.total_cpu_s == pytest.approx(18.454384019, abs=0.01)
    assert burn.mem_req_bytes == 200 << 20
    assert burn.max_rss_bytes == 7152 << 10
    mem = details["2"]
    assert mem.mem_req_bytes == 1 << 30
    # MaxRSS of the batch step against the cgroup's own memory.max_usage_in_bytes (323842048): within 1%.
    assert mem.max_rss_bytes == 314496 << 10
    assert abs(mem.max_rss_bytes - 323842048) / 323842048 < 0.01
    assert details["3"].state == "OUT_OF_MEMORY" and details["3"].time_limit_s is None
    assert details["4"].state == "TIMEOUT" and details["4"].time_limit_s == 60.0 and details["4"].elapsed_s == 72
    task = details["7"]
    assert (task.jobid, task.name) == ("5_1", "arr|weird name")   # the '|' stays in the last field
    pending = details["8"]
    assert pending.jobid == "8_[1-3]" and pending.max_rss_bytes is None and pending.alloc_tres == {}
    assert pending.time_limit_s is None  # Partition_Limit
    assert all(d.energy_j is None for d in details.values())  # no acct_gather_energy plugin there
    assert burn.fs_read_bytes == 8203 and burn.fs_write_bytes == 1


def test_steps_fold_into_their_allocation_and_energy_sums():
    head = "|".join(["9", "9", "COMPLETED", "0:0", "gpu", "normal", "alice", "1000", "proj", "c1",
                     "2024-01-01T00:00:00", "2024-01-01T00:00:00", "2024-01-01T00:01:00", "2024-01-01T01:01:00",
                     "3600", "120", "2", "n[1-2]", "16", "16",
                     "billing=16,cpu=16,mem=64G,node=2,gres/gpu=4,gres/gpu:h100=4",
                     "billing=16,cpu=16,mem=64G,node=2,gres/gpu=4,gres/gpu:h100=4",
                     "1-02:03:04", "", "", "", "", "train"])
    step = lambda sid, rss, energy: "|".join([  # noqa: E731
        f"9.{sid}", f"9.{sid}", "COMPLETED", "0:0", "", "", "", "", "", "c1", "", "", "", "", "10", "", "1", "n1",
        "8", "8", "", "", "00:00:01", rss, "fs/disk=100", "fs/disk=50", energy, "step"])
    details, skipped = parse_summary_sacct("\n".join([head, step("0", "2G", "1000"), step("1", "3G", "500"),
                                                      "garbage line", ""]))
    d = details["9"]
    assert skipped == 1
    assert d.max_rss_bytes == 3 << 30
    assert (d.fs_read_bytes, d.fs_write_bytes) == (200, 100)
    assert d.energy_j == 1500.0
    assert d.total_cpu_s == 86400 + 2 * 3600 + 3 * 60 + 4
    assert (d.gpus_alloc, d.gpu_model, d.mem_req_bytes) == (4, "h100", 64 << 30)


@pytest.mark.parametrize(("text", "seconds"), [
    ("00:18.455", 18.455), ("01:02:03", 3723), ("2-00:00:00", 172800), ("10:00", 600), ("", None), ("x", None)])
def test_durations(text, seconds):
    assert duration_s(text) == seconds


def test_sizes_and_tres():
    assert size_bytes("314496K") == 314496 << 10 and size_bytes("1.5G") == 3 << 29 and size_bytes("0") == 0
    assert size_bytes("") is None and size_bytes("12Q") is None
    t = parse_tres("cpu=4,mem=8G,gres/gpu:a100=2,broken,=3")
    assert t == {"cpu": "4", "mem": "8G", "gres/gpu:a100": "2"}
    assert tres_gpus(t) == 2 and tres_gpu_model(t) == "a100"
    assert tres_gpus(parse_tres("gres/gpu=4,gres/gpu:a100=2,gres/gpu:h100=2")) == 4
    assert tres_gpu_model(parse_tres("gres/gpu:a100=2,gres/gpu:h100=2")) == ""


def test_argv_is_checked():
    argv = sacct_argv("sacct", ["12", "7_3"])
    assert argv[argv.index("--jobs") + 1] == "12,7_3"
    assert argv[argv.index("--format") + 1] == ",".join(SUMMARY_FIELDS)
    with pytest.raises(ValueError):
        sacct_argv("sacct", ["12;rm -rf /"])


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_fuzz_never_raises(text):
    details, skipped = parse_summary_sacct(text)
    assert skipped >= 0


@given(st.lists(st.sampled_from(fixture("sacct-summary-22.05.txt").splitlines()), max_size=30),
       st.integers(0, 200))
def test_fuzz_truncated_real_lines(lines, cut):
    text = "\n".join(lines)
    parse_summary_sacct(text[:cut] + text[cut + 1:])


def test_the_enrichment_queries_are_promql():
    """Each batched query parses with Prometheus' grammar (promql-parser); job ids and cluster names that
    could break out of the matcher are refused before they reach PromQL."""
    import promql_parser
    from hpcwatch.accounting.enrich import JobWindow, batch_queries

    _, queries = batch_queries([JobWindow("1", 100, 160), JobWindow("2_3", 120, 200)], "hpcw")
    for _name, q, _ in queries:
        promql_parser.parse(q)
    for bad_job, bad_cluster in (('1"}or{x="', "c"), ("1", 'c"} or vector(1) #')):
        with pytest.raises(ValueError):
            batch_queries([JobWindow(bad_job, 1, 2)], bad_cluster)
