"""The slurm collector end to end on fixture output, through stand-in Slurm commands (shell scripts
that print fixture files), so the real reader, ledger, state file and exposition are exercised."""

from __future__ import annotations

import os
import stat
import threading
import time

import helpers
import pytest
from hpcwatch.exporters.slurm.collector import SlurmCollector
from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR as SEP
from hpcwatch.exporters.slurm.parse import format_time

from hpcwatch.docexamples import print_fixture_sh

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slurm")
OUTPUTS = {"squeue": "squeue-22.05.txt", "sinfo": "sinfo-22.05.txt", "sdiag": "sdiag-22.05.txt",
           "sacct": "sacct-22.05.txt", "scontrol": "scontrol-show-config-22.05.txt"}


class FakeSlurm:
    """A bin dir whose commands print `<cmd>.out`, exit with `<cmd>.rc`, and log each call to `<cmd>.calls`."""

    def __init__(self, root: str) -> None:
        self.bin = os.path.join(root, "bin")
        os.makedirs(self.bin)
        for cmd, fix in {**OUTPUTS, "sshare": None}.items():
            path = os.path.join(self.bin, cmd)
            with open(path, "w") as fh:
                fh.write('#!/bin/sh\necho "$@" >> "$0.calls"\n' + print_fixture_sh('"$0.out"', SEP) +
                         'exit "$(cat "$0.rc" 2>/dev/null || echo 0)"\n')
            os.chmod(path, os.stat(path).st_mode | stat.S_IEXEC)
            if fix:
                with open(os.path.join(FIX, fix), encoding="utf-8") as src:
                    self.set(cmd, src.read())

    def set(self, cmd: str, text: str, rc: int = 0) -> None:
        with open(os.path.join(self.bin, cmd + ".out"), "w", encoding="utf-8") as fh:
            fh.write(text)
        with open(os.path.join(self.bin, cmd + ".rc"), "w") as fh:
            fh.write(str(rc))

    def calls(self, cmd: str) -> list[str]:
        try:
            with open(os.path.join(self.bin, cmd + ".calls")) as fh:
                return fh.read().splitlines()
        except FileNotFoundError:
            return []


def sacct_line(jobid: int, state: str, exit_code: str, ended_ago: float, ran: float = 60.0) -> str:
    """One `sacct --parsable2` allocation line of a job that ended `ended_ago` seconds before now."""
    end = time.time() - ended_ago
    t = [format_time(end - ran - 60), format_time(end - ran - 60), format_time(end - ran), format_time(end)]
    return SEP.join([str(jobid), str(jobid), "debug", state, exit_code, *t, "eve", "1003", "eng", "1"]) + "\n"


@pytest.fixture
def fake(tmp_path):
    return FakeSlurm(str(tmp_path))


def collector(fake: FakeSlurm, tmp_path, fresh: bool = False, **opts) -> SlurmCollector:
    state = str(tmp_path / "state.json")
    opts.setdefault("state_file", state)
    if not fresh and not os.path.exists(state):
        # An agent that was counting when the fixture's jobs ended (the stand-in sacct ignores -S/-E).
        helpers.counting_since(state)
    # An absent slurm.conf: the cluster name then comes from the stand-in `scontrol show config`.
    opts.setdefault("conf", str(tmp_path / "absent-slurm.conf"))
    options = {k.replace("_", "-"): v for k, v in opts.items()}
    ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, **{"bin-dir": fake.bin, **options})
    return SlurmCollector(ctx)


def test_fixture_scrape_is_promtool_clean_with_neutral_families(fake, tmp_path):
    c = collector(fake, tmp_path)
    assert c.available() is None
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"slurm": 1}
    v = lambda name, **kw: helpers.values(text, name, **kw)
    assert v("hpc_scheduler_up", cluster="capt") == [1]
    # debug pending: 2,3,4,7,8 (het leader; 9 is its component) + 20 array tasks + 6 (held) + 15 (first partition)
    assert v("hpc_scheduler_jobs", queue="debug", state="pending") == [27]
    assert v("hpc_scheduler_jobs", queue="debug", state="running") == [1]
    assert v("hpc_scheduler_jobs", queue="gpu", state="completing") == [1]
    assert v("hpc_slurm_pending_jobs", partition="debug", reason="Priority") == [23]
    assert v("hpc_slurm_pending_jobs", partition="debug", reason="JobHeldUser") == [1]
    assert v("hpc_scheduler_gpus", queue="gpu", state="allocated") == [6]
    assert v("hpc_scheduler_gpus", queue="gpu", state="other") == [4]
    assert v("hpc_scheduler_nodes", queue="debug", state="down") == [1]
    assert v("hpc_slurm_server_threads") == [3]
    assert v("hpc_slurm_rpc_calls_total", type="REQUEST_SUBMIT_BATCH_JOB") == [7]
    # The first window starts now, so the fixture's old jobs are before it... except sacct returned them for
    # the window we asked, and each counts once.
    assert sum(v("hpc_scheduler_jobs_finished_total")) == 32
    assert v("hpc_scheduler_jobs_finished_total", queue="debug", outcome="oom", cause="user") == [1]
    # Queue wait in gpu: running 13 observed at start (1800 s), finished runs 20 and 21 from accounting.
    assert v("hpc_scheduler_queue_wait_seconds_count", queue="gpu") == [3]


def test_one_call_per_command_per_refresh_whatever_the_scrapes(fake, tmp_path):
    c = collector(fake, tmp_path)
    c.source.refresh_now()
    threads = [threading.Thread(target=helpers.render, args=(c,)) for _ in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cmd in ("squeue", "sinfo", "sdiag", "sacct"):
        assert len(fake.calls(cmd)) == 1, cmd
    # scontrol: the cluster name once (no slurm.conf here), the maintenance reservations every refresh.
    assert fake.calls("scontrol") == ["show config", "show reservation --oneliner"]
    c.source.refresh_now()
    for cmd in ("squeue", "sinfo", "sdiag", "sacct"):
        assert len(fake.calls(cmd)) == 2, cmd
    assert fake.calls("scontrol").count("show reservation --oneliner") == 2
    assert fake.calls("scontrol").count("show config") == 1   # the cluster name is learned once
    assert fake.calls("sshare") == []          # fairshare is opt-in
    sacct = fake.calls("sacct")[0]
    assert "--parsable2" in sacct and "--allocations" in sacct and "--duplicates" in sacct
    assert "--starttime" in sacct and "--endtime" in sacct


def test_counters_survive_restart_and_repeated_windows_without_double_counting(fake, tmp_path):
    a = collector(fake, tmp_path)
    a.source.refresh_now()
    a.source.refresh_now()   # sacct answers the same records again: skipped by their keys
    total = sum(helpers.values(helpers.render(a), "hpc_scheduler_jobs_finished_total"))
    assert total == 32
    b = collector(fake, tmp_path)     # a restart: same state file
    b.source.refresh_now()
    assert sum(helpers.values(helpers.render(b), "hpc_scheduler_jobs_finished_total")) == 32
    fake.set("sacct", sacct_line(99, "FAILED", "1:0", ended_ago=30))
    b.source.refresh_now()
    text = helpers.render(b)
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 33


def test_slurmctld_down_sets_up_zero_and_keeps_serving_the_last_snapshot(fake, tmp_path):
    c = collector(fake, tmp_path)
    assert c.source.refresh_now()
    for cmd in ("squeue", "sdiag", "sinfo"):
        fake.set(cmd, "", rc=1)
    assert not c.source.refresh_now()
    text = helpers.render(c)
    assert helpers.collector_success(text) == {"slurm": 1}
    assert helpers.values(text, "hpc_scheduler_up") == [0]
    assert helpers.values(text, "hpc_scheduler_jobs", queue="debug", state="pending") == [27]
    assert helpers.values(text, "hpcwatch_source_up", source="slurm") == [0]
    assert helpers.values(text, "hpcwatch_source_last_success_timestamp_seconds", source="slurm")
    for cmd in ("squeue", "sdiag", "sinfo"):
        with open(os.path.join(FIX, OUTPUTS[cmd])) as fh:
            fake.set(cmd, fh.read())
    assert c.source.refresh_now()
    assert helpers.values(helpers.render(c), "hpc_scheduler_up") == [1]


def test_sacct_down_does_not_advance_the_watermark_and_catches_up(fake, tmp_path):
    c = collector(fake, tmp_path)
    fake.set("sacct", "", rc=1)
    assert c.source.refresh_now()          # the live queue still refreshes
    text = helpers.render(c)
    assert helpers.values(text, "hpc_slurm_accounting_up") == [0]
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 0
    watermark = c.ledger.watermark
    with open(os.path.join(FIX, OUTPUTS["sacct"])) as fh:
        fake.set("sacct", fh.read())
    assert c.source.refresh_now()
    assert sum(helpers.values(helpers.render(c), "hpc_scheduler_jobs_finished_total")) == 32
    assert c.ledger.watermark >= watermark


def test_watermark_holds_while_slurmctld_has_records_queued_for_slurmdbd(fake, tmp_path):
    c = collector(fake, tmp_path)
    with open(os.path.join(FIX, OUTPUTS["sdiag"])) as fh:
        fake.set("sdiag", fh.read().replace("DBD Agent queue size: 0", "DBD Agent queue size: 12"))
    c.source.refresh_now()
    first = c.ledger.watermark
    c.source.refresh_now()
    assert c.ledger.watermark == first


def test_corrupt_state_file_is_reported_and_moved_aside(fake, tmp_path, caplog):
    (tmp_path / "state.json").write_text("garbage{")
    c = collector(fake, tmp_path)
    assert c.source.refresh_now()
    assert "unusable" in caplog.text
    assert any(p.startswith("state.json.corrupt-") for p in os.listdir(tmp_path))
    assert os.path.exists(tmp_path / "state.json")      # a fresh one was written


def test_hostile_label_values_are_escaped_capped_and_promtool_clean(fake, tmp_path):
    long = "x" * 10_000
    weird = 'quo"te\\back ünï漢 ' + long
    line = SEP.join(["77", "77", "N/A", "N/A", weird, "PENDING", weird, 'acc"ount', "2026-11-21T15:09:43",
                     "2026-11-21T15:09:43", "N/A", "1", "cpu=1", f'Reason with | pipe " and {long}', "1"]) + "\n"
    fake.set("squeue", line)
    fake.set("sacct", SEP.join(["78", "78", weird, "FAILED", "1:0", "2026-11-21T15:09:43", "2026-11-21T15:09:43",
                                "2026-11-21T15:09:44", "2026-11-21T15:09:45", "u", "1", "a", "1"]) + "\n")
    c = collector(fake, tmp_path, per_user=True, per_account=True)
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    queues = {lab["queue"] for lab in helpers.series_labels(text, "hpc_scheduler_jobs")}
    assert queues == {weird[:128]}
    reasons = {lab["reason"] for lab in helpers.series_labels(text, "hpc_slurm_pending_jobs")}
    assert all(len(r) == 128 for r in reasons) and next(iter(reasons)).startswith("Reason with | pipe \"")
    assert helpers.values(text, "hpc_slurm_account_jobs", account='acc"ount') == [1]
    finished = helpers.values(text, "hpc_scheduler_jobs_finished_total", outcome="failed")
    assert sorted(finished)[-1:] == [1] and sum(finished) == 1  # the rest are the zero-initialised series


def test_per_user_counts_are_capped(fake, tmp_path):
    lines = "".join(SEP.join([str(i), str(i), "N/A", "N/A", "debug", "PENDING", f"user{i % 7}", "a",
                              "2026-11-21T15:09:43", "N/A", "N/A", "1", "cpu=1", "Priority", "1"]) + "\n"
                    for i in range(1, 50))
    fake.set("squeue", lines)
    c = collector(fake, tmp_path, per_user=True, label_limit=3)
    c.source.refresh_now()
    users = {lab["user"] for lab in helpers.series_labels(helpers.render(c), "hpc_slurm_user_jobs")}
    assert len(users) == 4 and "__other__" in users


def test_absent_commands_skip_the_collector(tmp_path):
    ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, **{"bin-dir": str(tmp_path)})
    assert "not found" in SlurmCollector(ctx).available()


def test_every_outcome_of_every_known_queue_starts_at_zero(fake, tmp_path):
    """increase() cannot see a series' first sample: the first node failure must find a 0 to rise from."""
    from hpcwatch.exporters.scheduler.outcomes import NEUTRAL_PAIRS

    fake.set("sacct", "")  # no job has finished yet
    c = collector(fake, tmp_path)
    assert c.available() is None
    for source in c.sources():
        assert source.refresh_now()
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    series = helpers.series_labels(text, "hpc_scheduler_jobs_finished_total")
    queues = {s["queue"] for s in series}
    assert queues and "" not in queues
    assert queues >= {s["queue"] for s in helpers.series_labels(text, "hpc_scheduler_nodes")}
    for q in queues:
        pairs = {(s["outcome"], s["cause"]) for s in series if s["queue"] == q}
        assert pairs == set(NEUTRAL_PAIRS)
    assert set(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == {0.0}
    assert ("node_fail", "system") in NEUTRAL_PAIRS and ("cancelled", "system") in NEUTRAL_PAIRS


def test_each_finished_job_becomes_one_trace_across_repeated_windows_and_a_restart(fake, tmp_path):
    """--otel.traces rides on the same watermark as the counters: a job is traced once, never twice."""
    from hpcwatch.exporters.events import subscribe_finished_jobs
    from hpcwatch.exporters.otel.traces import JobTracer
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    spans = InMemorySpanExporter()
    tracer = JobTracer(spans, batch=False)
    unsubscribe = subscribe_finished_jobs(tracer.emit)
    try:
        a = collector(fake, tmp_path)
        a.source.refresh_now()
        a.source.refresh_now()             # the same sacct records again
        b = collector(fake, tmp_path)      # a restart on the same state file
        b.source.refresh_now()
    finally:
        unsubscribe()
    roots = [s for s in spans.get_finished_spans() if s.parent is None]
    # Every run that reached an end and has an end time is one trace; the 18 never-started array
    # tasks counted from one collapsed record share one record, so they are one trace too.
    counted = sum(helpers.values(helpers.render(b), "hpc_scheduler_jobs_finished_total"))
    assert len(roots) == tracer.jobs_emitted
    assert counted - 17 == len(roots)
    keys = [(s.attributes["hpc.job.id"], s.start_time) for s in roots]
    assert len(keys) == len(set(keys))
    outcomes = {s.attributes["hpc.job.outcome"] for s in roots}
    assert {"success", "node_fail", "oom", "timeout"} <= outcomes


def test_cluster_label_comes_from_slurm_conf_before_the_first_refresh(fake, tmp_path):
    """A slurmctld down from the start still shows as hpc_scheduler_up{cluster="<name>"} 0."""
    conf = tmp_path / "slurm.conf"
    conf.write_text("# site config\nSlurmctldHost=head01\nclustername=orion  # the machine room\n")
    for cmd in ("squeue", "sdiag", "sinfo", "scontrol", "sacct"):
        fake.set(cmd, "", rc=1)
    c = collector(fake, tmp_path, conf=str(conf))
    assert not c.source.refresh_now()
    text = helpers.render(c)
    assert helpers.series_labels(text, "hpc_scheduler_up") == [{"cluster": "orion"}]
    assert helpers.values(text, "hpc_scheduler_up") == [0]


@pytest.mark.parametrize(("text", "want"), [("ClusterName=alpha\n", "alpha"), ("CLUSTERNAME = beta # x\n", "beta"),
                                            ("#ClusterName=no\n", ""), ("", ""), ("ClusterName=\n", "")])
def test_cluster_name_from_slurm_conf(text, want):
    from hpcwatch.exporters.slurm.parse import cluster_name_from_slurm_conf

    assert cluster_name_from_slurm_conf(text) == want


# --- state that never re-counts (issue 15.5) ----------------------------------------------------------

def finished_total(c: SlurmCollector) -> float:
    return sum(helpers.values(helpers.render(c), "hpc_scheduler_jobs_finished_total"))


@pytest.mark.parametrize("state", ["missing", "corrupt"])
def test_no_usable_state_starts_counting_at_startup_and_never_recounts(fake, tmp_path, caplog, state):
    """Before: a fresh ledger opened its first sacct window accounting-overlap (600 s) in the past and
    counted the last 10 minutes of jobs again, which increase() then saw twice."""
    if state == "corrupt":
        (tmp_path / "state.json").write_text("garbage{")
    fake.set("sacct", sacct_line(501, "COMPLETED", "0:0", ended_ago=300))  # inside the overlap
    c = collector(fake, tmp_path, fresh=True)
    with caplog.at_level("INFO", logger="hpcwatch.scheduler"):
        assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 0  # counters begin at 0
    # running job 13 started before start-up: its wait is not observed again either
    assert sum(helpers.values(text, "hpc_scheduler_queue_wait_seconds_count")) == 0
    lines = [r.getMessage() for r in caplog.records if "counting finished jobs from now on" in r.getMessage()]
    assert len(lines) == 1 and str(tmp_path / "state.json") in lines[0]
    # sacct is still asked to reach back over the overlap (late records), but that only de-duplicates
    assert c.ledger.window(c.ledger.origin + 10)[0] == c.ledger.origin - 600
    # A job that ends after start-up counts, once, also after a restart on the saved state.
    fake.set("sacct", sacct_line(501, "COMPLETED", "0:0", ended_ago=300)
             + sacct_line(502, "FAILED", "1:0", ended_ago=time.time() - c.ledger.origin - 1))
    c.source.refresh_now()
    c.source.refresh_now()
    assert finished_total(c) == 1
    restarted = collector(fake, tmp_path, fresh=True)
    restarted.source.refresh_now()
    assert finished_total(restarted) == 1


def test_a_failed_state_save_is_counted_and_served_counters_never_go_backwards(fake, tmp_path):
    """Before: totals were served after a failed save, so after a crash the counter could go backwards."""
    state = tmp_path / "state.json"
    a = collector(fake, tmp_path)
    assert a.source.refresh_now()
    assert finished_total(a) == 32
    saved = state.read_bytes()
    state.unlink()
    state.mkdir()  # every save now fails: the new file cannot be renamed onto a directory
    fake.set("sacct", sacct_line(99, "FAILED", "1:0", ended_ago=30))
    assert a.source.refresh_now()
    text = helpers.render(a)
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 32  # what is saved, not 33
    assert helpers.values(text, "hpcwatch_state_save_failures_total", collector="slurm")[0] >= 1
    # A crash now: the next process starts from what was saved and never serves less than `a` did.
    state.rmdir()
    state.write_bytes(saved)
    fake.set("sacct", "")  # and accounting no longer lists job 99 by then
    b = collector(fake, tmp_path)
    assert b.source.refresh_now()
    assert finished_total(b) == 32
    # Without a crash, the next successful save serves what was counted meanwhile.
    assert a.source.refresh_now()
    text = helpers.render(a)
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 33
    assert helpers.values(text, "hpcwatch_state_save_failures_total", collector="slurm")[0] >= 1


def test_an_accounting_outage_keeps_the_window_and_still_saves_what_changed(fake, tmp_path):
    """Slurm and Flux share one adapter base: accounting down changes nothing in the ledger, while the
    queue waits observed at start are saved before they are served (same rule for both adapters)."""
    c = collector(fake, tmp_path)
    fake.set("sacct", "", rc=1)
    assert c.source.refresh_now()
    from hpcwatch.exporters.scheduler.ledger import StateFile

    saved = StateFile(str(tmp_path / "state.json")).load()
    assert saved["started"] == c.ledger.started and saved["started"]
    assert helpers.values(helpers.render(c), "hpc_slurm_accounting_up") == [0]
