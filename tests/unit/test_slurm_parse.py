"""Slurm 22.05 parsers on fixtures captured from real daemons (plus hand-written edge lines), and fuzzing."""

from __future__ import annotations

import collections
import os

import pytest
from hpcwatch.exporters.slurm import parse
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slurm")


SEP = parse.FIXTURE_SEPARATOR


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name), encoding="utf-8") as fh:
        return fh.read()


def test_squeue_fixture():
    jobs, skipped = parse.parse_squeue(fixture("squeue-22.05.txt"), SEP)
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
    nodes, skipped = parse.parse_sinfo(fixture("sinfo-22.05.txt"), SEP)
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
    records, skipped = parse.parse_sacct(fixture("sacct-22.05.txt"), SEP)
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
    jobs, skipped = parse.parse_squeue(f"not{SEP}enough\n" + fixture("squeue-22.05.txt"), SEP)
    assert skipped == 1 and len(jobs) == 12
    recs, skipped = parse.parse_sacct("x|y\n\n")
    assert skipped == 1 and recs == []


text_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
line_st = st.lists(st.one_of(text_st, st.sampled_from(["N/A", "Unknown", "1-5%2", "CANCELLED by 0", "|", "0:0", "²",
                                                        "2026-11-21T15:09:43", "123+1", "123_[1-3]", "1"])),
                   max_size=20).map("|".join)


@settings(max_examples=300, deadline=None)
@given(st.lists(line_st, max_size=8).map("\n".join))
def test_fuzz_line_parsers_never_raise(text):
    parse.parse_squeue(text, "|")
    parse.parse_sinfo(text, "|")
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


# ------------------------------------------------- names holding delimiters (captured from real Slurm 22.05)
# The hostile fixtures were captured from the harness' Slurm after `sacctmgr add account 'acc|pipe'`,
# `$'acc\nnl'`, `$'acc\x1fus'`, `scontrol create PartitionName=$'p\nnl'`, `'p,c'`, a 1000-character
# partition, QOS and job names/comments holding `|`, newlines, quotes, `{}=,` and UTF-8, through the
# collector's own --Format/--delimiter with the separator then replaced by FIXTURE_SEPARATOR.
LONG_PARTITION = "p" + "k" * 1000


def test_squeue_keeps_names_with_pipes_newlines_and_commas_whole():
    jobs, skipped = parse.parse_squeue(fixture("squeue-22.05-hostile.txt"), SEP)
    assert skipped == 0
    got = {j.jobid: (j.partition, j.account, j.state, j.reason, j.ncpus) for j in jobs}
    assert got == {
        "5041": ("p\nnl", "acc\nnl", "PENDING", "JobHeldUser", 1),
        "5043": ("p,c", "acc{b}", "PENDING", "JobHeldUser", 1),
        "5040": (LONG_PARTITION, "root", "PENDING", "JobHeldUser", 1),
        "5042": ("p|pipe,debug", "acc|pipe", "PENDING", "JobHeldUser", 1),
    }


def test_sinfo_keeps_partition_names_whole():
    nodes, skipped = parse.parse_sinfo(fixture("sinfo-22.05-hostile.txt"), SEP)
    assert skipped == 0
    parts = [n.partition for n in nodes]
    assert len(parts) == 12 and len(set(parts)) == 12
    assert {"p|pipe", "p\nnl", "p{b}=x", "pé", 'p"q', "p,c", "p'sq", "p space", LONG_PARTITION} <= set(parts)
    assert all(n.cpus_total == 2 and parse.node_state(n.state) == "idle" for n in nodes)


def test_sacct_counts_every_job_of_hostile_accounts_and_partitions():
    records, skipped = parse.parse_sacct(fixture("sacct-22.05-hostile.txt"), SEP)
    assert skipped == 0 and len(records) == 28
    by_id = {r.jobid: r for r in records}
    assert (by_id["5036"].partition, by_id["5036"].account, by_id["5036"].exit_code) == ("p\nnl", "acc\nnl", "3:0")
    assert by_id["5034"].account == "acc\x1fus" and by_id["5032"].partition == "pé"
    # slurmdbd keeps 255 characters of a partition name; labels are capped at 128, so queue labels agree.
    assert by_id["5039"].partition == LONG_PARTITION[:255]
    known = frozenset(n.partition for n in parse.parse_sinfo(fixture("sinfo-22.05-hostile.txt"), SEP)[0])
    runs, unknown = parse.sacct_to_finished(records, "delim", known)
    assert unknown == 0 and len(runs) == 28
    queues = {r.jobid: r.queue for r in runs}
    assert queues["5029"] == "p|pipe" and queues["5033"] == "p,c"
    # queue labels as the live gauges write them: control characters replaced, 128 characters at most
    assert queues["5015"] == "p?nl" and queues["5039"] == LONG_PARTITION[:128]
    outcomes = collections.Counter((r.outcome, r.cause) for r in runs)
    assert outcomes == {("cancelled", "none"): 18, ("success", "none"): 5, ("failed", "user"): 5}


def test_the_pipe_format_drops_or_shifts_the_hostile_records():
    """What the collector read before: the same records with `|` between fields drop every job whose
    partition or account holds `|` or a newline, or read it with shifted fields."""
    text = fixture("sacct-22.05-hostile.txt")
    records = parse.parse_sacct(text, SEP)[0]
    clean = {r.jobid for r in records if not any(c in r.partition + r.account for c in "|\n")}
    assert len(records) == 28 and len(clean) == 9
    piped = text.replace(SEP, "|")
    # the previous reader: one record per line, exactly 13 fields
    old = {line.split("|")[0]: line.split("|") for line in piped.split("\n")
           if line.count("|") == len(parse.SACCT_FIELDS) - 1}
    assert set(old) == clean | {"5013"}
    assert old["5013"][2:4] == ["p", "pipe"]     # 'p|pipe' + $'acc\nnl': read, shifted, as state "pipe"
    # `|` dumps (hand-made, for the SLO history) now keep newline names; a `|` in a name stays ambiguous there
    no_pipe = {r.jobid for r in records if "|" not in r.partition + r.account}
    assert no_pipe <= {r.jobid for r in parse.parse_sacct(piped)[0]}


@pytest.mark.parametrize("field,known,want", [
    ("debug", frozenset(), "debug"),
    ("gpu,debug", frozenset({"gpu", "debug"}), "gpu"),
    ("p,c", frozenset({"p,c", "debug"}), "p,c"),
    ("p,c,debug", frozenset({"p,c", "debug", "p"}), "p,c"),
    ("p|pipe,debug", frozenset({"p|pipe", "debug"}), "p|pipe"),
    ("gpu,debug", frozenset(), "gpu"),
])
def test_first_partition(field, known, want):
    assert parse.first_partition(field, known) == want


def test_sshare_reads_accounts_holding_pipes_and_newlines_from_the_right():
    rows, skipped = parse.parse_sshare(fixture("sshare-22.05-hostile.txt"))
    assert skipped == 0
    assert {r.account for r in rows} == {"root", "acc\nnl", "acc\x1fus", "acc space", "acc{b}", "acc|pipe", "accé"}
    assert all(r.user == "root" and r.fairshare == 0.0 for r in rows)


def test_sdiag_stops_at_the_user_section():
    text = fixture("sdiag-22.05.txt") + "\nRemote Procedure Call statistics by user\n\tServer thread count: 99\n"
    assert parse.parse_sdiag(text).get("top:Server thread count") == 3


hostile_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2048) | st.sampled_from(
    ["a|b", "x\ny", 'q"u\'o', "{}", "a=b", "a,b", "é漢字", "\x1f", "|\n|", "\x1f000000000000", "L" * 2048])


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(st.integers(1, 10**9), st.lists(hostile_st, min_size=13, max_size=13),
                          st.integers(0, 4096)), max_size=6))
def test_fuzz_squeue_round_trips_any_names(jobs):
    """Any value in any middle field, with a fresh separator: every record comes back field for field."""
    sep = parse.call_separator()
    text = "".join(sep.join([str(i), *vals, str(n)]) + "\n" for i, vals, n in jobs)
    records = list(parse.split_records(text, sep, len(parse.SQUEUE_FIELDS)))
    assert records == [[str(i), *vals, str(n)] for i, vals, n in jobs]
    parsed, skipped = parse.parse_squeue(text, sep)
    assert skipped == 0 and [(j.jobid, j.partition, j.account, j.reason) for j in parsed] == \
        [(str(i), v[3], v[6], v[12]) for i, v, _ in jobs]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(hostile_st, hostile_st), max_size=6))
def test_fuzz_sacct_round_trips_partitions_and_accounts(rows):
    sep = parse.call_separator()
    line = "{i}{s}{i}{s}{p}{s}FAILED{s}1:0{s}2026-11-21T15:09:43{s}2026-11-21T15:09:43{s}2026-11-21T15:09:44{s}" \
           "2026-11-21T15:09:45{s}u{s}1{s}{a}{s}1\n"
    text = "".join(line.format(i=i + 1, s=sep, p=p, a=a) for i, (p, a) in enumerate(rows))
    records, skipped = parse.parse_sacct(text, sep)
    assert skipped == 0 and [(r.partition, r.account) for r in records] == rows
