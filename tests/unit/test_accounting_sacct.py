"""The batched sacct reader on output captured from real Slurm 22.05 (names holding every delimiter
Slurm accepts among them), fuzzed, and through `hpcwatch job report` as installed."""

from __future__ import annotations

import json
import os
import shlex
import subprocess
import sys

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
from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR as SEP
from hpcwatch.exporters.slurm.parse import call_separator, split_records
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwatch.docexamples import print_fixture_sh

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "accounting")
HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")


def fixture(name: str) -> str:
    # newline="": a "\r" inside a job name is data, not a line end (the reader decodes bytes the same way)
    with open(os.path.join(FIX, name), newline="") as fh:
        return fh.read()


def test_real_22_05_output():
    details, skipped = parse_summary_sacct(fixture("sacct-summary-22.05.txt"), SEP)
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
    assert (task.jobid, task.name) == ("5_1", "arr|weird name")   # the '|' is data
    pending = details["8"]
    assert pending.jobid == "8_[1-3]" and pending.max_rss_bytes is None and pending.alloc_tres == {}
    assert pending.time_limit_s is None  # Partition_Limit
    assert all(d.energy_j is None for d in details.values())  # no acct_gather_energy plugin there
    assert burn.fs_read_bytes == 8203 and burn.fs_write_bytes == 1


def record(sep: str, **fields: str) -> str:
    """One sacct record of SUMMARY_FIELDS as sacct writes it with --delimiter=sep (unnamed fields empty)."""
    return sep.join(fields.get(f, "") for f in SUMMARY_FIELDS) + "\n"


GPU_JOB = dict(JobID="9", JobIDRaw="9", State="COMPLETED", ExitCode="0:0", Partition="gpu", QOS="normal",
               User="alice", UID="1000", Account="proj", Cluster="c1", JobName="train", Submit="2024-01-01T00:00:00",
               Eligible="2024-01-01T00:00:00", Start="2024-01-01T00:01:00", End="2024-01-01T01:01:00",
               ElapsedRaw="3600", TimelimitRaw="120", NNodes="2", NodeList="n[1-2]", NCPUS="16", ReqCPUS="16",
               ReqTRES="billing=16,cpu=16,mem=64G,node=2,gres/gpu=4,gres/gpu:h100=4",
               AllocTRES="billing=16,cpu=16,mem=64G,node=2,gres/gpu=4,gres/gpu:h100=4", TotalCPU="1-02:03:04")


def step(sep: str, sid: str, rss: str, energy: str, name: str = "step") -> str:
    return record(sep, JobID=f"9.{sid}", JobIDRaw=f"9.{sid}", State="COMPLETED", ExitCode="0:0", Cluster="c1",
                  JobName=name, ElapsedRaw="10", NNodes="1", NodeList="n1", NCPUS="8", ReqCPUS="8",
                  TotalCPU="00:00:01", MaxRSS=rss, TRESUsageInTot="fs/disk=100", TRESUsageOutTot="fs/disk=50",
                  ConsumedEnergyRaw=energy)


def test_steps_fold_into_their_allocation_and_energy_sums():
    sep = call_separator()
    details, skipped = parse_summary_sacct(record(sep, **GPU_JOB) + step(sep, "0", "2G", "1000")
                                           + step(sep, "1", "3G", "500", "a\nstep|name") + "garbage line\n", sep)
    d = details["9"]
    assert skipped == 1
    assert d.max_rss_bytes == 3 << 30
    assert (d.fs_read_bytes, d.fs_write_bytes) == (200, 100)
    assert d.energy_j == 1500.0
    assert d.total_cpu_s == 86400 + 2 * 3600 + 3 * 60 + 4
    assert (d.gpus_alloc, d.gpu_model, d.mem_req_bytes) == (4, "h100", 64 << 30)


@pytest.mark.parametrize(("text", "want", "skipped"), [
    ("junk\n{ok}", [], 1),                                   # a fragment joined into the JobID: not a job id
    ("{ok}trailing junk\n", ["9"], 1),                       # a fragment no record completes
    ("{elapsed}", [], 1),                                     # the last field is not ElapsedRaw's digits
    ("{extra}{ok}", ["9"], 1),                                # a name holding the separator itself
])
def test_malformed_records_are_counted_never_shifted(text, want, skipped):
    sep = call_separator()
    text = text.format(ok=record(sep, **GPU_JOB), elapsed=record(sep, **{**GPU_JOB, "ElapsedRaw": "1:00"}),
                       extra=record(sep, **{**GPU_JOB, "JobIDRaw": "10", "JobName": f"a{sep}b"}))
    details, bad = parse_summary_sacct(text, sep)
    assert (sorted(details), bad) == (want, skipped)
    assert all(d.name == "train" and d.partition == "gpu" for d in details.values())


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


def test_argv_is_checked_and_carries_the_separator():
    sep = call_separator()
    argv = sacct_argv("sacct", ["12", "7_3"], sep)
    assert argv[argv.index("--jobs") + 1] == "12,7_3"
    assert argv[argv.index("--format") + 1] == ",".join(SUMMARY_FIELDS)
    assert f"--delimiter={sep}" in argv and "--parsable2" in argv
    with pytest.raises(ValueError):
        sacct_argv("sacct", ["12;rm -rf /"], sep)


# ------------------------------------------------- names holding delimiters (captured from real Slurm 22.05)
# capture_hostile.py: accounts, QOS and partitions named with `|`, newlines, the unit separator, quotes,
# `{}=,`, spaces, UTF-8 and 255-1000 characters; jobs named likewise and with terminal escapes, one
# with a step of such a name, one cancelled while pending in two partitions. The .json is `sacct --json`
# (every name escaped) for the same jobs: the truth each summary detail must equal.
def truth() -> dict[str, dict]:
    return {str(j["job_id"]): j for j in json.loads(fixture("sacct-summary-22.05-hostile.json"))}


def test_hostile_names_carry_exactly_sacct_values():
    details, skipped = parse_summary_sacct(fixture("sacct-summary-22.05-hostile.txt"), SEP)
    want = truth()
    # Job 6 is named "sep" + FIXTURE_SEPARATOR, the very separator this capture was taken with: its record
    # is malformed and counted with its orphaned batch step, never shifted (a real call's nonce is fresh).
    assert skipped == 2 and "6" not in details
    assert want["6"]["name"] == "sep" + SEP
    del want["6"]
    got = {raw: {"name": d.name, "partition": d.partition, "qos": d.qos, "account": d.account, "user": d.user,
                 "cluster": d.cluster, "state": d.state.split()[0], "nodes": d.nodelist, "elapsed": d.elapsed_s}
           for raw, d in details.items()}
    assert got == {raw: {k: j[k] for k in got.get(raw, j) if k in j} for raw, j in want.items()}
    # what the names hold, in case the truth file were ever recaptured without them
    assert details["2"].partition == "p\nnl" and details["3"].account == "acc\x1fus"
    assert details["3"].name == "\x1b[31mred\x1b[0m\rok" and details["7"].partition == "p" + "k" * 254
    assert details["2"].name == "x" * 255 and details["1"].qos == "q|pipe"   # slurmdbd keeps 255 of 1000


def test_hostile_step_names_stay_in_their_record():
    """The step `srun --job-name=$'step|\\nname\\e[2J'` reads whole and folds into job 8."""
    records = [p for p in split_records(fixture("sacct-summary-22.05-hostile.txt"), SEP, len(SUMMARY_FIELDS)) if p]
    steps = {p[0]: p[SUMMARY_FIELDS.index("JobName")] for p in records if p[0].startswith("8.")}
    assert steps == {f"8.{s['id']}": s["name"] for s in truth()["8"]["steps"]}
    details, _ = parse_summary_sacct(fixture("sacct-summary-22.05-hostile.txt"), SEP)
    assert details["8"].max_rss_bytes == 0 and details["8"].fs_write_bytes == 1


def test_the_pipe_format_drops_or_misattributes_hostile_summaries():
    """What the previous reader did with the same jobs: `--parsable2` lines split on `|` with JobName last
    (as `sacct_argv` asked before) lose every job whose partition, QOS, account or name holds a newline, and
    read the rest with the `|` of a name shifting fields."""
    old_fields = [f for f in SUMMARY_FIELDS if f not in ("JobName", "ElapsedRaw")] + ["ElapsedRaw", "JobName"]
    old_fields.insert(old_fields.index("TimelimitRaw"), old_fields.pop(old_fields.index("ElapsedRaw")))
    records = [p for p in split_records(fixture("sacct-summary-22.05-hostile.txt"), SEP, len(SUMMARY_FIELDS)) if p]
    piped = "".join("|".join(dict(zip(SUMMARY_FIELDS, p, strict=True))[f] for f in old_fields) + "\n"
                    for p in records)
    old = {}
    for line in piped.splitlines():          # the previous parser, line for line
        p = line.split("|", len(old_fields) - 1)
        if len(p) == len(old_fields) and p[1].split(".")[0].isdigit() and "." not in p[0]:
            old[p[1]] = dict(zip(old_fields, p, strict=True))
    new, _ = parse_summary_sacct(fixture("sacct-summary-22.05-hostile.txt"), SEP)
    right = {raw for raw, p in old.items() if raw in new and
             (p["Partition"], p["QOS"], p["Account"], p["JobName"]) ==
             (new[raw].partition, new[raw].qos, new[raw].account, new[raw].name)}
    # 2, 7, 8 and 9 (a newline in a name) dropped; 1 ('p|pipe') read with partition "p" and QOS "pipe"; 3's
    # name cut at its "\r" (str.splitlines); only 4 and 5 right, of 8 the reader now reads exactly.
    assert len(new) == 8 and sorted(old) == ["1", "3", "4", "5"] and right == {"4", "5"}
    assert (old["1"]["Partition"], old["1"]["QOS"]) == ("p", "pipe")


def job_record(sep: str, raw: int, name: str, partition: str, qos: str, account: str, elapsed: int) -> str:
    return record(sep, **{**GPU_JOB, "JobID": str(raw), "JobIDRaw": str(raw), "JobName": name,
                          "Partition": partition, "QOS": qos, "Account": account, "ElapsedRaw": str(elapsed)})


hostile_st = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=2048) | st.sampled_from(
    ["a|b", "x\ny", "\r\n", 'q"u\'o', "{}", "a=b", "a,b", "é漢字", "\x1f", "|\n|", "\x1b[2J", SEP, "L" * 2048])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(hostile_st, hostile_st, hostile_st, hostile_st, st.integers(0, 10**9)), max_size=6),
       hostile_st)
def test_fuzz_any_names_round_trip(jobs, step_name):
    """Any name, partition, QOS and account, with a fresh separator: each summary carries them exactly."""
    sep = call_separator()
    text = "".join(job_record(sep, 100 + i, *vals) + step(sep, "0", "1G", "5", step_name).replace("9.0", f"{100 + i}.0")
                   for i, vals in enumerate(jobs))
    details, skipped = parse_summary_sacct(text, sep)
    assert skipped == 0
    assert {raw: (d.name, d.partition, d.qos, d.account, d.elapsed_s, d.max_rss_bytes) for raw, d in details.items()} \
        == {str(100 + i): (*vals[:4], float(vals[4]), 1 << 30) for i, vals in enumerate(jobs)}


@given(st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400))
def test_fuzz_never_raises(text):
    details, skipped = parse_summary_sacct(text.replace("|", SEP), SEP)
    assert skipped >= 0


@given(st.lists(st.sampled_from(fixture("sacct-summary-22.05-hostile.txt").split("\n")), max_size=30),
       st.integers(0, 2000))
def test_fuzz_truncated_real_lines(lines, cut):
    text = "\n".join(lines)
    details, skipped = parse_summary_sacct(text[:cut] + text[cut + 1:], SEP)
    assert skipped >= 0 and all(d.jobid_raw.isdigit() for d in details.values())


# ------------------------------------------------- `hpcwatch job report` on a hostile job, as installed
@pytest.fixture
def stand_in_sacct(tmp_path):
    """A sacct that answers with the hostile capture, swapping in the separator each call asks for."""
    path = tmp_path / "sacct"
    path.write_text("#!/bin/sh\n" + print_fixture_sh(shlex.quote(os.path.join(FIX, "sacct-summary-22.05-hostile.txt")),
                                                      SEP))
    path.chmod(0o755)
    return str(path)


def job_report(sacct: str, jobid: str, fmt: str, tmp_path) -> str:
    out = subprocess.run([HPCWATCH, "job", "report", jobid, "--sacct", sacct, "--dataset", str(tmp_path / "none"),
                          "--format", fmt], capture_output=True, timeout=120)
    assert out.returncode == 0, out.stderr.decode()
    return out.stdout.decode("utf-8")


def test_job_report_escapes_terminal_controls_in_names(stand_in_sacct, tmp_path):
    text = job_report(stand_in_sacct, "3", "text", tmp_path)
    assert not any(c in text for c in "\x1b\r\x1f\x7f")
    assert text.startswith("Job 3 (\\x1b[31mred\\x1b[0m\\rok) on cluster hpcw: FAILED")
    assert "account acc\\x1fus, partition p{b}=x, QOS q{b}" in text
    multi = job_report(stand_in_sacct, "2", "text", tmp_path)
    assert "account acc\\nnl, partition p\\nnl, QOS q\\nnl" in multi     # one line per field, as always
    # JSON carries every byte, escaped by the JSON encoder
    job = json.loads(job_report(stand_in_sacct, "3", "json", tmp_path))["job"]
    assert (job["name"], job["account"]) == ("\x1b[31mred\x1b[0m\rok", "acc\x1fus")


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
