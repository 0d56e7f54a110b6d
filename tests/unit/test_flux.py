"""The Flux adapter on output captured from flux-core 0.88 (built from source; a 4-broker test instance
with queues batch = node[0-1], debug = node[1-2] and all = node[0-3], where each outcome happened
for real: tests/fixtures/flux/0.88), through a stand-in `flux` command, plus parser fuzzing.

`live` was captured while node0 was drained, node2 draining under a job, a job held and two
pending; `after` once the hold was released and node3's broker had been killed under a job.
"""

from __future__ import annotations

import collections
import json
import os

import helpers
import pytest
from hpcwatch.exporters.flux import parse, resources
from hpcwatch.exporters.flux.collector import FluxCollector
from hpcwatch.exporters.scheduler.outcomes import flux_outcome
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwatch.docexamples import flux_stand_in_script

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "flux", "0.88")
with open(os.path.join(FIX, "jobids.json")) as _fh:
    JOBIDS: dict[str, str] = json.load(_fh)
NAME = {v: k for k, v in JOBIDS.items()}


def fixture(step: str, name: str) -> str:
    with open(os.path.join(FIX, step, name), encoding="utf-8") as fh:
        return fh.read()


def capacity(step: str) -> resources.Capacity:
    status, skipped = resources.parse_status(fixture(step, "status.txt"))
    assert skipped == 0
    return resources.capacity(*(resources.parse_R(fixture(step, f"R-{s}.json")) for s in ("all", "allocated", "down")),
                              status, resources.parse_queues(fixture(step, "queues.json")))


def nonzero(data: dict) -> dict:
    return {k: v for k, v in data.items() if v}


# ------------------------------------------------------------------ outcomes
# What each job did in the instance (see tests/fixtures/flux/0.88/jobids.json for the job ids).
EXPECTED = {
    "success": ("batch", "success", "none"),            # true
    "failed": ("batch", "failed", "user"),              # exit 3
    "oomlike": ("debug", "failed", "user"),             # killed by SIGKILL (137): how an OOM kill arrives
    "timeout": ("debug", "timeout", "user"),            # -t 2s sleep 60
    "depfail_parent": ("batch", "failed", "user"),      # exit 1
    "depfail": ("batch", "cancelled", "none"),          # afterok on it: exception type `dependency`
    "nonfatal_ok": ("batch", "success", "none"),        # severity-1 exception, then exit 0
    "nonfatal_bad": ("batch", "failed", "user"),        # severity-1 exception, then exit 2: its own exit
    "held": ("debug", "success", "none"),               # --urgency=hold, released later
    "cancel": ("batch", "cancelled", "none"),           # flux cancel
    "unsat": ("batch", "failed", "user"),               # -N 3 on a 2-node queue: exception `alloc`
    "preempt": ("debug", "preempted", "system"),        # flux job raise --type=preempt (an operator)
    "nodefail": ("all", "node_fail", "system"),         # its node's broker was killed: fatal `exec`, "node failure"
    "run_b1": ("batch", "cancelled", "none"),           # flux cancel
}


def test_every_outcome_flux_088_produced():
    jobs, skipped = parse.parse_flux_jobs(fixture("after", "jobs.json"))
    assert skipped == 0 and len(jobs) == 17
    runs, unknown = parse.flux_to_finished(jobs, "f")
    assert unknown == 0
    assert {NAME[r.jobid]: (r.queue, r.outcome, r.cause) for r in runs} == EXPECTED
    by_name = {NAME[j.id]: j for j in jobs}
    assert by_name["depfail"].exception_type == "dependency" and by_name["depfail"].exception_severity == 0
    assert by_name["nonfatal_bad"].exception_severity == 1 and by_name["nonfatal_bad"].returncode == 2
    assert by_name["oomlike"].exception_type == "" and by_name["oomlike"].returncode == 137


@pytest.mark.parametrize("args,kw,want", [
    (("FAILED", "test", "note", 2), {"severity": 1}, ("failed", "user")),      # non-fatal: judged by its exit
    (("COMPLETED", "test", "", 0), {"severity": 1}, ("success", "none")),
    (("FAILED", "test", "", 1), {"severity": 0}, ("failed", "system")),        # fatal, unknown type: the system
    (("FAILED", "dependency", "", 1), {}, ("cancelled", "none")),
    (("FAILED", "exec", "node failure on node3 (rank 3)", 1), {}, ("node_fail", "system")),
    (("FAILED", "exec", "task 0: exited with exit code 1", 1), {}, ("failed", "user")),
    (("FAILED", "node-failure", "lost", 1), {"severity": 2}, ("failed", "user")),  # non-fatal node loss
    (("FAILED", "", "", 137), {}, ("failed", "user")),                        # SIGKILL: OOM or not, not known
    (("FAILED", "oom", "", 137), {}, ("oom", "user")),                        # only a site plugin raises it
    (("FAILED", "preempt", "", 143), {}, ("preempted", "system")),
    (("CANCELED", "cancel", "", 143), {}, ("cancelled", "none")),
    (("TIMEOUT", "timeout", "", 142), {}, ("timeout", "user")),
])
def test_flux_outcome_table(args, kw, want):
    assert flux_outcome(*args, **kw) == want


def test_active_jobs_are_not_finished():
    assert flux_outcome("", state="RUN") is None


# ------------------------------------------------------------------ capacity
def test_capacity_partitions_every_node_core_and_gpu_once():
    """live: node0 drained and idle, node1 full, node2 draining under a 1-core job, node3 full."""
    cap = capacity("live")
    assert nonzero(cap.nodes) == {("batch", "drain"): 1, ("batch", "allocated"): 1,
                                  ("debug", "allocated"): 1, ("debug", "drain"): 1,
                                  ("all", "drain"): 2, ("all", "allocated"): 2}
    assert nonzero(cap.cpus) == {("batch", "allocated"): 2, ("batch", "other"): 2,
                                 ("debug", "allocated"): 3, ("debug", "other"): 1,
                                 ("all", "allocated"): 5, ("all", "other"): 3}
    assert nonzero(cap.gpus) == {("batch", "idle"): 1, ("batch", "other"): 1, ("debug", "idle"): 1,
                                 ("debug", "other"): 1, ("all", "idle"): 2, ("all", "other"): 2}


def test_capacity_after_a_broker_was_lost():
    cap = capacity("after")
    assert nonzero(cap.nodes) == {("batch", "drain"): 1, ("batch", "allocated"): 1,
                                  ("debug", "allocated"): 1, ("debug", "drain"): 1,
                                  ("all", "drain"): 2, ("all", "allocated"): 1, ("all", "down"): 1}
    assert nonzero(cap.cpus) == {("batch", "allocated"): 2, ("batch", "other"): 2,
                                 ("debug", "allocated"): 3, ("debug", "other"): 1,
                                 ("all", "allocated"): 3, ("all", "other"): 5}


@pytest.mark.parametrize("step", ["live", "after"])
def test_states_sum_to_the_queue_size(step):
    cap = capacity(step)
    size = {"batch": (2, 4, 2), "debug": (2, 4, 2), "all": (4, 8, 4)}
    for q, (nodes, cpus, gpus) in size.items():
        assert sum(v for (qq, _), v in cap.nodes.items() if qq == q) == nodes
        assert sum(v for (qq, _), v in cap.cpus.items() if qq == q) == cpus
        assert sum(v for (qq, _), v in cap.gpus.items() if qq == q) == gpus


def test_flux_resource_list_rows_overlap_and_hide_queues():
    """Why capacity is not read from `flux resource list`: with `hidden-queues = ["all"]` (a client
    setting) node3 lands in queue "", and the rows of a queue add up to more nodes than it has."""
    rows = [line.split("|") for line in fixture("live", "list-hidden-queues.txt").splitlines()]
    assert sum(int(r[2]) for r in rows if "batch" in r[1].split(",")) == 3   # batch has 2 nodes
    assert any(r[1] == "" for r in rows)
    assert {q for q, _ in capacity("live").nodes} == {"batch", "debug", "all"}   # no phantom queue


def test_queue_table():
    assert resources.parse_queues("{}") == [resources.QueueSpec("default", ())]
    qs = resources.parse_queues('{"a":{"requires":["x"]},"v":{"parent":"a"},"b":{}}')
    assert [q.name for q in qs] == ["a", "b"]      # a virtual queue shares its parent's resources
    with pytest.raises(resources.FluxResourceError):
        resources.parse_queues("[1]")


def test_instance_without_queues_has_one_default_queue():
    text = '{"version":1,"execution":{"R_lite":[{"rank":"0-1","children":{"core":"0-3"}}]}}'
    empty = resources.parse_R('{"version":1,"execution":{"R_lite":[]}}')
    cap = resources.capacity(resources.parse_R(text), empty, empty, resources.NodeStatus(frozenset(), frozenset()),
                             resources.parse_queues("{}"))
    assert nonzero(cap.nodes) == {("default", "idle"): 2} and nonzero(cap.cpus) == {("default", "idle"): 8}


@pytest.mark.parametrize("text,ids", [("0-3,5", {0, 1, 2, 3, 5}), ("[2]", {2}), ("", set())])
def test_idset(text, ids):
    assert resources.parse_idset(text) == ids


@pytest.mark.parametrize("bad", ["a", "3-1", "1-", "0-99999999", '{"version":2}', "[]", "{"])
def test_unreadable_resources_name_the_command(bad):
    with pytest.raises(resources.FluxResourceError):
        resources.parse_R(json.dumps({"version": 1, "execution": {"R_lite": [{"rank": bad}]}})
                          if not bad.startswith(("{", "[")) else bad)


# ------------------------------------------------------------------ holds
def test_held_time_is_not_queue_wait():
    jobs = {NAME[j.id]: j for j in parse.parse_flux_jobs(fixture("after", "jobs.json"))[0]}
    held = jobs["held"]
    released = parse.release_time(fixture("after", f"eventlog-{JOBIDS['held']}.json"))
    assert released is not None and held.t_sched < released < held.t_run
    run = next(r for r in parse.flux_to_finished([held], "f", {held.id: released})[0])
    assert run.queue_wait == pytest.approx(held.t_run - released)
    assert run.queue_wait < held.t_run - held.t_sched - 5       # it was held more than 5 s
    live = {NAME[j.id]: j for j in parse.parse_flux_jobs(fixture("live", "jobs.json"))[0]}
    assert live["held"].held and not live["pend_b1"].held


def test_release_time_of_a_job_never_held():
    assert parse.release_time('{"timestamp":1.0,"name":"submit","context":{"urgency":16}}\n') is None
    assert parse.release_time('{"timestamp":1.0,"name":"submit","context":{"urgency":0}}\n'
                              '{"timestamp":2.0,"name":"urgency","context":{"urgency":16}}\n'
                              '{"timestamp":3.0,"name":"urgency","context":{"urgency":0}}\n'
                              '{"timestamp":4.0,"name":"urgency","context":{"urgency":8}}\n') == 4.0
    with pytest.raises(parse.FluxParseError):
        parse.release_time("not json\n")


# ------------------------------------------------------------------ the collector through a stand-in flux
@pytest.fixture
def fake_flux(tmp_path):
    """A stand-in `flux` answering from a fixture step (the `cur` link), logging its calls."""
    bindir = tmp_path / "bin"
    bindir.mkdir()
    os.symlink(os.path.join(FIX, "live"), tmp_path / "cur")
    (bindir / "flux").write_text(flux_stand_in_script(str(tmp_path / "cur")))
    (bindir / "flux").chmod(0o755)
    return bindir


def step(tmp_path, name: str) -> None:
    os.unlink(tmp_path / "cur")
    os.symlink(os.path.join(FIX, name), tmp_path / "cur")


def flux_collector(fake_flux, tmp_path) -> FluxCollector:
    state = str(tmp_path / "flux-state.json")
    if not os.path.exists(state):
        helpers.counting_since(state)  # an agent that was counting when the fixture's jobs ended
    # The fixtures' jobs ended when they were captured: the window reaches back to them (the stand-in
    # answers the same whatever --since asks), so `after` counts what ended after `live`.
    ctx = helpers.make_context(agent="cluster", cls=FluxCollector, command=str(fake_flux / "flux"),
                               cluster="fluxy", **{"state-file": state, "accounting-overlap": 1e10})
    return FluxCollector(ctx)


def test_collector_live_then_after_counts_once_and_keeps_zero_series(fake_flux, tmp_path):
    c = flux_collector(fake_flux, tmp_path)
    assert c.available() is None
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    v = lambda name, **kw: helpers.values(text, name, **kw)  # noqa: E731
    assert v("hpc_scheduler_up", cluster="fluxy") == [1]
    assert v("hpc_scheduler_jobs", queue="debug", state="pending") == [1]     # the held job
    assert v("hpc_scheduler_jobs", queue="batch", state="pending") == [2]
    assert v("hpc_scheduler_pending_wait_seconds_count", queue="batch") == [2]
    assert v("hpc_scheduler_pending_wait_seconds_count", queue="debug") == [0]  # held: not waiting
    assert v("hpc_scheduler_nodes", queue="all", state="drain") == [2]
    assert v("hpc_scheduler_cpus", queue="batch", state="allocated") == [2]
    assert sum(v("hpc_scheduler_nodes", queue="batch")) == 2
    assert {lab["queue"] for lab in helpers.series_labels(text, "hpc_scheduler_nodes")} == {"batch", "debug", "all"}
    step(tmp_path, "after")
    assert c.source.refresh_now(), c.source.last_error
    c.source.refresh_now()            # the same inactive jobs again: counted once
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    v = lambda name, **kw: helpers.values(text, name, **kw)  # noqa: E731
    got = collections.Counter()
    for lab in helpers.series_labels(text, "hpc_scheduler_jobs_finished_total"):
        n = helpers.values(text, "hpc_scheduler_jobs_finished_total", **lab)[0]
        if n:
            got[(lab["queue"], lab["outcome"], lab["cause"])] += n
    assert got == collections.Counter(EXPECTED.values())
    assert v("hpc_scheduler_jobs", queue="debug", state="pending") == [0]     # emptied: 0, not gone
    assert v("hpc_flux_pending_jobs", queue="debug", state="SCHED") == [0]
    assert v("hpc_scheduler_nodes", queue="all", state="down") == [1]
    assert v("hpc_scheduler_nodes", queue="batch", state="idle") == [0]
    # queue wait: Flux's own t_run - t_sched for every run that started, except the held one (from its release)
    jobs = {NAME[j.id]: j for j in parse.parse_flux_jobs(fixture("after", "jobs.json"))[0]}
    released = parse.release_time(fixture("after", f"eventlog-{JOBIDS['held']}.json"))
    started = [j for j in jobs.values() if j.t_run is not None]
    flux_sum = sum(j.t_run - j.t_sched for j in started)
    ours = sum(v("hpc_scheduler_queue_wait_seconds_sum"))
    assert sum(v("hpc_scheduler_queue_wait_seconds_count")) == len(started) == 14
    assert ours == pytest.approx(flux_sum - (released - jobs["held"].t_sched), abs=1e-3)
    calls = (fake_flux / "flux.calls").read_text().splitlines()
    assert calls.count(f"job eventlog --format=json {JOBIDS['held']}") == 1
    # restart: the same state file keeps the totals
    d = flux_collector(fake_flux, tmp_path)
    d.source.refresh_now()
    assert sum(helpers.values(helpers.render(d), "hpc_scheduler_jobs_finished_total")) == len(EXPECTED)


def test_flux_down_keeps_last_snapshot(fake_flux, tmp_path):
    c = flux_collector(fake_flux, tmp_path)
    c.source.refresh_now()
    (fake_flux / "flux.rc").write_text("1")
    assert not c.source.refresh_now()
    text = helpers.render(c)
    assert helpers.values(text, "hpc_scheduler_up") == [0]
    assert helpers.values(text, "hpc_scheduler_jobs", queue="batch", state="running") == [1]


def test_flux_absent(tmp_path):
    ctx = helpers.make_context(agent="cluster", cls=FluxCollector, command=str(tmp_path / "nope"))
    assert "not found" in FluxCollector(ctx).available()


# ------------------------------------------------------------------ fuzzing
def test_flux_jobs_accepts_list_single_object_and_json_lines():
    one = {"id": 5, "state": "RUN", "t_run": 10.0}
    assert len(parse.parse_flux_jobs(json.dumps([one, one]))[0]) == 2
    assert len(parse.parse_flux_jobs(json.dumps(one))[0]) == 1
    assert len(parse.parse_flux_jobs(json.dumps(one) + "\n" + json.dumps(one))[0]) == 2
    assert parse.parse_flux_jobs(json.dumps({"jobs": [{"state": "RUN"}, 3]}))[1] == 2
    with pytest.raises(parse.FluxParseError):
        parse.parse_flux_jobs("not json at all\n")


json_st = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda c: st.lists(c, max_size=4) | st.dictionaries(
        st.sampled_from(["id", "state", "result", "exception", "t_run", "t_sched", "t_inactive", "queue",
                         "returncode", "jobs", "type", "occurred", "nnodes", "severity", "urgency", "version",
                         "execution", "R_lite", "rank", "children", "core", "gpu", "properties", "requires",
                         "parent", "name", "context", "timestamp"]), c, max_size=8), max_leaves=30)


@settings(max_examples=300, deadline=None)
@given(json_st)
def test_fuzz_json_parsers_raise_only_their_own_errors(doc):
    text = json.dumps(doc)
    try:
        jobs, _ = parse.parse_flux_jobs(text)
        parse.flux_to_finished(jobs, "f")
    except parse.FluxParseError:
        pass
    for fn in (resources.parse_R, resources.parse_queues):
        try:
            fn(text)
        except resources.FluxResourceError:
            pass
    try:
        parse.release_time(text)
    except parse.FluxParseError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text_inputs(text):
    resources.parse_status(text)
    for fn, err in ((parse.parse_flux_jobs, parse.FluxParseError), (resources.parse_R, resources.FluxResourceError),
                    (resources.parse_idset, resources.FluxResourceError),
                    (parse.release_time, parse.FluxParseError)):
        try:
            fn(text)
        except err:
            pass


@settings(max_examples=200, deadline=None)
@given(st.sets(st.integers(0, 200), max_size=30))
def test_fuzz_idset_round_trip(ids):
    assert resources.parse_idset(",".join(str(i) for i in sorted(ids))) == ids


def test_flux_without_state_counts_nothing_that_ended_before_startup(fake_flux, tmp_path, caplog):
    """The adapter base is shared: a Flux agent that lost its state starts at 0 too, says so once,
    and then counts the fixture's inactive jobs as already ended (never as new)."""
    ctx = helpers.make_context(agent="cluster", cls=FluxCollector, command=str(fake_flux / "flux"),
                               **{"state-file": str(tmp_path / "fresh.json")})
    c = FluxCollector(ctx)
    with caplog.at_level("INFO", logger="hpcwatch.scheduler"):
        assert c.source.refresh_now(), c.source.last_error
        assert c.source.refresh_now()
    text = helpers.render(c)
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 0
    assert helpers.values(text, "hpc_scheduler_jobs", queue="batch", state="running") == [1]
    assert helpers.values(text, "hpcwatch_state_save_failures_total", collector="flux") == [0]
    assert sum("counting finished jobs from now on" in r.getMessage() for r in caplog.records) == 1
