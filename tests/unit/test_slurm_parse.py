"""Slurm 22.05 parsers on fixtures captured from real daemons (plus hand-written edge lines), and fuzzing."""

from __future__ import annotations

import os

import pytest
from hpcwatch.exporters.slurm import parse
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slurm")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name), encoding="utf-8") as fh:
        return fh.read()


def test_squeue_fixture():
    jobs, skipped = parse.parse_squeue(fixture("squeue-22.05.txt"))
    assert skipped == 0
    by_id = {j.jobid: j for j in jobs}
    assert by_id["5"].array_tasks == "1-20%2" and by_id["5"].count == 20
    assert by_id["12"].count == 1 and by_id["12"].state == "RUNNING"
    assert by_id["7"].reason == "Dependency" and by_id["7"].eligible is None
    assert by_id["6"].reason == "JobHeldUser"
    assert by_id["9"].het_component and not by_id["8"].het_component
    assert by_id["13"].gpus == 4 and by_id["13"].nnodes == 2 and by_id["13"].ncpus == 8
    assert by_id["2"].submit == 1795273783.0


def test_sinfo_fixture_and_node_states():
    nodes, skipped = parse.parse_sinfo(fixture("sinfo-22.05.txt"))
    assert skipped == 0
    states = {(n.node, n.partition): parse.node_state(n.state) for n in nodes}
    assert states[("gpu01", "gpu")] == "mixed"
    assert states[("gpu03", "gpu")] == "drain"
    assert states[("cn001", "debug")] == "down"
    assert states[("cn002", "debug")] == "drain"
    assert states[("cn003", "debug")] == "idle"
    g = {n.node: (n.gpus_total, n.gpus_used) for n in nodes}
    assert g["gpu01"] == (4, 2) and g["gpu03"] == (4, 0) and g["cn001"] == (0, 0)


def test_sacct_fixture_to_finished_jobs():
    records, skipped = parse.parse_sacct(fixture("sacct-22.05.txt"))
    assert skipped == 0
    runs, unknown = parse.sacct_to_finished(records, "capt")
    assert unknown == 0
    out = {}
    for r in runs:
        out[(r.outcome, r.cause)] = out.get((r.outcome, r.cause), 0) + r.count
    assert out == {
        ("success", "none"): 3,          # 1, array task 5_1, requeued 23's last run
        ("failed", "user"): 3,           # 2, het job 8 (component 8+1 failed), 26 (COMPLETED but exit 2)
        ("oom", "user"): 1,
        ("cancelled", "none"): 1 + 18,   # 4, and the never-started array tasks 5_[3-20]
        ("timeout", "user"): 1,
        ("node_fail", "system"): 1,
        ("cancelled", "system"): 1,      # 22 cancelled by root, not by its owner 1001
        ("preempted", "system"): 1,      # 23's second run; its first run was REQUEUED (not an end)
        ("boot_fail", "system"): 1,
        ("deadline", "user"): 1,
    }
    het = [r for r in runs if r.jobid == "8"]
    assert len(het) == 1 and het[0].outcome == "failed"
    keys = [r.key for r in runs if r.jobid == "23"]
    assert len(keys) == len(set(keys)) == 2
    first = next(r for r in runs if r.jobid == "1")
    assert first.queue_wait == 2.0 and first.exit_code == "0:0" and first.user == "root"


def test_sdiag_fixture():
    s = parse.parse_sdiag(fixture("sdiag-22.05.txt"))
    assert s.get("top:Server thread count") == 3
    assert s.get("top:DBD Agent queue size") == 0
    assert s.get("main:Last cycle") == 993
    assert s.get("backfill:Total cycles") == 0
    assert s.rpc_by_type["REQUEST_SUBMIT_BATCH_JOB"] == (7, 5657 / 1e6)
    with pytest.raises(parse.SlurmParseError):
        parse.parse_sdiag("squeue: error: something")


def test_scontrol_config_cluster_name():
    assert parse.parse_scontrol_config(fixture("scontrol-show-config-22.05.txt"))["ClusterName"] == "capt"


@pytest.mark.parametrize("expr,n", [("7", 1), ("1-10", 10), ("1,3,5-7", 5), ("0-9:2%4", 5), ("[3-20%2]", 18),
                                    ("N/A", 1), ("junk", 1)])
def test_array_task_count(expr, n):
    assert parse.array_task_count(expr) == n


def test_time_round_trip():
    assert parse.parse_time(parse.format_time(1795273783.0)) == 1795273783.0
    for none in ("Unknown", "N/A", "None", "", "garbage"):
        assert parse.parse_time(none) is None


def test_malformed_lines_are_skipped_and_counted():
    jobs, skipped = parse.parse_squeue("not|enough\n" + fixture("squeue-22.05.txt"))
    assert skipped == 1 and len(jobs) == 12
    recs, skipped = parse.parse_sacct("x|y\n\n")
    assert skipped == 1 and recs == []


text_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
line_st = st.lists(st.one_of(text_st, st.sampled_from(["N/A", "Unknown", "1-5%2", "CANCELLED by 0", "|", "0:0",
                                                        "2026-11-21T15:09:43", "123+1", "123_[1-3]", "1"])),
                   max_size=20).map("|".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(line_st, max_size=8).map("\n".join))
def test_fuzz_line_parsers_never_raise(text):
    parse.parse_squeue(text)
    parse.parse_sinfo(text)
    recs, _ = parse.parse_sacct(text)
    parse.sacct_to_finished(recs, "c")
    parse.parse_sshare(text)
    parse.parse_scontrol_config(text)


@settings(max_examples=200, deadline=None)
@given(text_st)
def test_fuzz_sdiag_raises_only_its_own_error(text):
    try:
        parse.parse_sdiag("Server thread count: 3\n" + text)
        parse.parse_sdiag(text)
    except parse.SlurmParseError:
        pass


def test_sacct_record_without_partition_waits_for_the_complete_one():
    """Right after a job ends slurmdbd may return it with no Partition and Eligible Unknown: not counted
    then (it would land under queue=""), counted once when the complete record comes back."""
    times = "2026-11-21T15:09:45|2026-11-21T15:09:50|root|0|root|1\n"
    incomplete = "41|41||FAILED|1:0|2026-11-21T15:09:43|Unknown|" + times
    complete = "41|41|debug|FAILED|1:0|2026-11-21T15:09:43|2026-11-21T15:09:43|" + times
    records, skipped = parse.parse_sacct(incomplete)
    assert skipped == 0 and len(records) == 1
    assert parse.sacct_to_finished(records, "c") == ([], 0)
    runs, unknown = parse.sacct_to_finished(parse.parse_sacct(complete)[0], "c")
    assert unknown == 0 and [(r.queue, r.outcome, r.cause) for r in runs] == [("debug", "failed", "user")]
