"""The neutral model: outcome tables, histogram, ledger (exactly-once counting) and its state file."""

from __future__ import annotations

import json
import os

import pytest
from hpcwatch.exporters import labels, options
from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger, StateFile, load_ledger
from hpcwatch.exporters.scheduler.model import (
    DEFAULT_WAIT_BUCKETS,
    FinishedJob,
    Histogram,
    run_key,
)
from hpcwatch.exporters.scheduler.outcomes import (
    CAUSES,
    OUTCOMES,
    SLURM_TERMINAL,
    UnknownStateError,
    flux_outcome,
    slurm_live_state,
    slurm_outcome,
)


@pytest.mark.parametrize("state,exit_code,uid,expected", [
    ("COMPLETED", "0:0", 1000, ("success", "none")),
    ("COMPLETED", "2:0", 1000, ("failed", "user")),
    ("FAILED", "1:0", 1000, ("failed", "user")),
    ("OUT_OF_MEMORY", "0:125", 1000, ("oom", "user")),
    ("TIMEOUT", "0:0", 1000, ("timeout", "user")),
    ("CANCELLED by 1000", "0:15", 1000, ("cancelled", "none")),
    ("CANCELLED by 0", "0:15", 1000, ("cancelled", "system")),
    ("CANCELLED by 0", "0:0", 0, ("cancelled", "none")),
    ("CANCELLED", "0:0", 1000, ("cancelled", "none")),
    ("NODE_FAIL", "0:0", 1000, ("node_fail", "system")),
    ("BOOT_FAIL", "0:0", 1000, ("boot_fail", "system")),
    ("PREEMPTED", "0:15", 1000, ("preempted", "system")),
    ("DEADLINE", "0:0", 1000, ("deadline", "user")),
    ("SPECIAL_EXIT", "3:0", 1000, ("failed", "user")),
    ("REQUEUED", "0:0", 1000, None),
    ("REVOKED", "0:0", 1000, None),
    ("RUNNING", "0:0", 1000, None),
    ("PENDING", "0:0", 1000, None),
])
def test_slurm_outcome_table(state, exit_code, uid, expected):
    assert slurm_outcome(state, exit_code, uid) == expected


def test_slurm_outcome_unknown_state_raises_its_own_error():
    with pytest.raises(UnknownStateError):
        slurm_outcome("EXPLODED")


def test_every_slurm_terminal_state_maps_into_the_neutral_vocabulary():
    for outcome, cause in SLURM_TERMINAL.values():
        assert outcome in OUTCOMES and cause in CAUSES


def test_slurm_live_states():
    assert slurm_live_state("PENDING") == "pending"
    assert slurm_live_state("RUNNING") == "running"
    assert slurm_live_state("COMPLETING") == "completing"
    assert slurm_live_state("SUSPENDED") == "suspended"
    assert slurm_live_state("COMPLETED") is None


@pytest.mark.parametrize("fields,expected", [
    (("COMPLETED", "", "", 0), ("success", "none")),
    (("FAILED", "", "", 1), ("failed", "user")),
    (("CANCELED", "cancel", "", -128), ("cancelled", "none")),
    (("TIMEOUT", "timeout", "resource allocation expired", 143), ("timeout", "user")),
    (("FAILED", "oom", "Memory cgroup out of memory", 137), ("oom", "user")),
    (("FAILED", "exec", "lost contact with job shell on broker pi2 (rank 1)", -9), ("node_fail", "system")),
    (("FAILED", "node-failure", "", -9), ("node_fail", "system")),
    (("FAILED", "exec", "task 0: start failed: foo: No such file or directory", 127), ("failed", "user")),
    # flux-core 0.88: a failed afterok dependency is a fatal `dependency` exception, result FAILED
    (("FAILED", "dependency", "dependency after-success=141113163776 can never be satisfied", 1),
     ("cancelled", "none")),
    (("FAILED", "housekeeping", "", 1), ("failed", "system")),
    (("CANCELED", "preempt", "", -128), ("preempted", "system")),
])
def test_flux_outcome_table(fields, expected):
    result, etype, note, rc = fields
    assert flux_outcome(result, etype, note, rc) == expected


def test_flux_outcome_active_and_unknown():
    assert flux_outcome("", state="RUN") is None
    with pytest.raises(UnknownStateError):
        flux_outcome("EXPLODED")


def test_label_value_keeps_utf8_and_quotes_caps_length_and_control_chars():
    assert labels.value('a"b\\c é 漢') == 'a"b\\c é 漢'
    assert labels.value("x" * 10_000) == "x" * 128
    assert labels.value("a\nb\x00c") == "a?b?c"


def test_buckets_option():
    assert options.buckets("60, 300,3600") == (60.0, 300.0, 3600.0)
    assert options.buckets("1m,5m,1h") == (60.0, 300.0, 3600.0)
    for bad in ("", "60,60", "a,b", "0,10"):
        with pytest.raises(ValueError):
            options.buckets(bad)


def test_histogram_cumulative_and_rebin():
    h = Histogram((60.0, 600.0))
    for v in (0, 60, 61, 5000):
        h.observe(v)
    assert h.cumulative() == [("60.0", 2), ("600.0", 3), ("+Inf", 4)]
    assert h.sum == 5121
    r = Histogram.from_dict(h.to_dict(), (600.0, 6000.0))
    assert r.cumulative() == [("600.0", 3), ("6000.0", 3), ("+Inf", 4)]


def job(jobid: str, end: float, outcome: str = "success", cause: str = "none", start: float = 100.0,
        eligible: float = 40.0, queue: str = "debug") -> FinishedJob:
    return FinishedJob(jobid=jobid, cluster="c", queue=queue, outcome=outcome, cause=cause, submit=10.0,
                       eligible=eligible, start=start, end=end, exit_code="0:0", user="u", account="a", nnodes=1,
                       key=run_key(jobid, 10.0, start))


def test_ledger_counts_each_run_once_across_overlapping_windows():
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100)
    led.start(0.0)  # an agent counting since long before these jobs
    led.advance(950.0)
    assert led.window(1000.0) == (850.0, 1000.0)
    assert len(led.count([job("1", 950), job("2", 990)])) == 2
    led.advance(1000.0)
    # The next window overlaps: job 2 comes back and is skipped, job 3 is new.
    assert led.window(1100.0) == (900.0, 1100.0)
    assert [j.jobid for j in led.count([job("2", 990), job("3", 1050)])] == ["3"]
    assert led.finished == {("debug", "success", "none"): 3}
    # Queue wait observed from accounting for runs never seen starting: 100 - 40 = 60 s each.
    assert led.wait["debug"].total == 3 and led.wait["debug"].sum == 180


def test_ledger_wait_observed_at_start_is_not_observed_again_at_finish():
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100)
    led.window(1000.0)
    key = run_key("7", 10.0, 100.0)
    assert led.observe_start(key, "debug", 60.0, 1000.0)
    assert not led.observe_start(key, "debug", 60.0, 1001.0)
    led.count([job("7", 1010)])
    assert led.wait["debug"].total == 1
    assert not led.observe_start(key, "debug", 60.0, 1020.0)   # counted: never observed again


def test_ledger_requeued_runs_are_distinct():
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100)
    led.start(0.0)
    new = led.count([job("9", 950, "preempted", "system", start=100), job("9", 990, start=200)])
    assert len(new) == 2
    assert led.finished == {("debug", "preempted", "system"): 1, ("debug", "success", "none"): 1}


def test_turnaround_of_successes_observed_once_and_kept_across_restarts(tmp_path):
    """Submit (10) to end of each successful run, once when it is counted; failures and repeats add nothing;
    the histogram survives the state file, and a state file from before it loads with none."""
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100, turnaround_buckets=(600.0, 3600.0))
    led.start(0.0)
    led.count([job("1", 310), job("2", 4000), job("3", 500, "failed", "user"), job("1", 310)])
    h = led.turnaround["debug"]
    assert h.cumulative() == [("600.0", 1), ("3600.0", 1), ("+Inf", 2)] and h.sum == 300 + 3990
    path = str(tmp_path / "state.json")
    StateFile(path).save(led.to_dict())
    again = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100, turnaround_buckets=(600.0, 3600.0))
    load_ledger(again, StateFile(path))
    assert again.view().turnaround["debug"].cumulative() == h.cumulative()
    old = {k: v for k, v in led.to_dict().items() if k != "turnaround"}
    StateFile(path).save(old)
    before = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100)
    load_ledger(before, StateFile(path))
    assert before.turnaround == {} and before.finished == led.finished


def test_ledger_restart_through_state_file_neither_loses_nor_double_counts(tmp_path):
    path = str(tmp_path / "state.json")
    a = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100)
    a.start(0.0)
    a.count([job("1", 950)])
    a.advance(1000.0)
    StateFile(path).save(a.to_dict())
    b = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=100)
    load_ledger(b, StateFile(path))
    start, _ = b.window(2000.0)
    assert start == 900.0      # reaches back over the time the exporter was down
    b.count([job("1", 950), job("2", 1500)])
    assert b.finished == {("debug", "success", "none"): 2}
    assert b.wait["debug"].total == 2


def test_fresh_ledger_counts_only_jobs_that_end_after_it_starts():
    """No state (first start, lost or corrupt file): counters begin at 0; the overlap only de-duplicates."""
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=600)
    assert led.window(1000.0) == (400.0, 1000.0)  # sacct is still asked for the overlap, for late records
    new = led.count([job("old", 990, start=900), job("new", 1005, start=950), job("late", 1010, start=1001)])
    assert [j.jobid for j in new] == ["new", "late"]
    assert led.finished == {("debug", "success", "none"): 2}
    # Queue wait: only the run that started after counting began (never a re-count of an earlier process).
    assert led.wait["debug"].total == 1
    assert not led.observe_start(run_key("r", 10.0, 990.0), "debug", 30.0, 1001.0, started=990.0)
    assert led.observe_start(run_key("s", 10.0, 1002.0), "debug", 30.0, 1003.0, started=1002.0)
    assert led.wait["debug"].total == 2


def test_a_job_ending_in_the_second_counting_began_counts():
    """sacct prints whole seconds: a job that ended 0.4 s after counting began reads as ending before it."""
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS)
    led.start(1000.6)
    job = FinishedJob("1", "c", "q", "success", "none", 999.0, 999.0, 1000.0, 1000.0, "0:0", "u", "a", 1, "k1")
    early = FinishedJob("2", "c", "q", "success", "none", 990.0, 990.0, 995.0, 999.0, "0:0", "u", "a", 1, "k2")
    assert [j.jobid for j in led.count([job, early])] == ["1"]


def test_origin_survives_the_state_file(tmp_path):
    path = str(tmp_path / "state.json")
    a = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=600)
    a.window(1000.0)
    StateFile(path).save(a.to_dict())
    b = FinishedJobLedger(DEFAULT_WAIT_BUCKETS, overlap=600)
    assert load_ledger(b, StateFile(path)) is None
    assert b.origin == 1000.0
    assert b.count([job("before", 999)]) == []


def test_load_ledger_says_why_there_is_no_state(tmp_path):
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS)
    assert load_ledger(led, StateFile(str(tmp_path / "none.json"))) == "no state file yet"
    (tmp_path / "bad.json").write_text("{")
    why = load_ledger(led, StateFile(str(tmp_path / "bad.json")))
    assert why.startswith("unusable (not valid JSON") and "moved to" in why


def test_corrupt_state_file_is_moved_aside_not_a_crash(tmp_path, caplog):
    path = tmp_path / "state.json"
    path.write_text("{not json")
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS)
    load_ledger(led, StateFile(str(path)))
    assert led.watermark is None and led.finished == {}
    assert not path.exists()
    aside = [p for p in os.listdir(tmp_path) if p.startswith("state.json.corrupt-")]
    assert len(aside) == 1
    assert "unusable" in caplog.text and str(path) in caplog.text


def test_state_file_with_wrong_shape_is_moved_aside(tmp_path):
    path = tmp_path / "state.json"
    path.write_text(json.dumps({"version": 1, "watermark": "x", "counted": {}, "finished": []}))
    led = FinishedJobLedger(DEFAULT_WAIT_BUCKETS)
    load_ledger(led, StateFile(str(path)))
    assert led.watermark is None
    assert not path.exists()


def test_state_file_save_is_atomic_and_leaves_no_temp_files(tmp_path):
    sf = StateFile(str(tmp_path / "sub" / "state.json"))
    sf.save({"a": 1})
    sf.save({"a": 2})
    assert sf.load() == {"a": 2}
    assert os.listdir(tmp_path / "sub") == ["state.json"]
