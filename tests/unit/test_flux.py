"""The Flux adapter on fixtures in the documented `flux jobs --json` / `flux resource list` formats
(Flux is not packaged for Debian 12), through a stand-in `flux` command, plus parser fuzzing."""

from __future__ import annotations

import json
import os
import stat

import helpers
import pytest
from hpcwatch.exporters.flux import parse
from hpcwatch.exporters.flux.collector import FluxCollector
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "flux")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name), encoding="utf-8") as fh:
        return fh.read()


def test_flux_jobs_fixture_to_finished():
    jobs, skipped = parse.parse_flux_jobs(fixture("flux-jobs-json-0.60.json"))
    assert skipped == 0 and len(jobs) == 14
    runs, unknown = parse.flux_to_finished(jobs, "f")
    assert unknown == 0
    got = {r.jobid: (r.outcome, r.cause) for r in runs}
    assert got == {
        "1000001": ("success", "none"), "1000002": ("failed", "user"), "1000003": ("cancelled", "none"),
        "1000004": ("timeout", "user"), "1000005": ("node_fail", "system"), "1000006": ("oom", "user"),
        "1000007": ("failed", "user"), "1000008": ("failed", "user"),
    }
    first = next(r for r in runs if r.jobid == "1000001")
    assert first.queue_wait == pytest.approx(59.0)     # t_run - t_sched
    assert next(r for r in runs if r.jobid == "1000003").start is None


def test_flux_jobs_accepts_list_single_object_and_json_lines():
    one = {"id": 5, "state": "RUN", "t_run": 10.0}
    assert len(parse.parse_flux_jobs(json.dumps([one, one]))[0]) == 2
    assert len(parse.parse_flux_jobs(json.dumps(one))[0]) == 1
    assert len(parse.parse_flux_jobs(json.dumps(one) + "\n" + json.dumps(one))[0]) == 2
    assert parse.parse_flux_jobs(json.dumps({"jobs": [{"state": "RUN"}, 3]}))[1] == 2
    with pytest.raises(parse.FluxParseError):
        parse.parse_flux_jobs("not json at all\n")


def test_resource_list_fixture():
    rows, skipped = parse.parse_resource_list(fixture("flux-resource-list.txt") + "junk\n")
    assert skipped == 1 and len(rows) == 5
    assert rows[-1].queues == ("batch", "debug") and rows[-1].ngpus == 8


@settings(max_examples=300, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["id", "state", "result", "exception", "t_run", "t_sched", "t_inactive",
                                         "queue", "returncode", "jobs", "type", "occurred", "nnodes"]), c,
                        max_size=8), max_leaves=30))
def test_fuzz_flux_jobs_raises_only_its_own_error(doc):
    try:
        jobs, _ = parse.parse_flux_jobs(json.dumps(doc))
    except parse.FluxParseError:
        return
    parse.flux_to_finished(jobs, "f")


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_text_inputs(text):
    parse.parse_resource_list(text)
    try:
        parse.parse_flux_jobs(text)
    except parse.FluxParseError:
        pass


@pytest.fixture
def fake_flux(tmp_path):
    """A `flux` that answers `jobs` and `resource` with fixture files and logs its arguments."""
    d = tmp_path / "bin"
    d.mkdir()
    (d / "jobs.out").write_text(fixture("flux-jobs-json-0.60.json"))
    (d / "resource.out").write_text(fixture("flux-resource-list.txt"))
    path = d / "flux"
    path.write_text('#!/bin/sh\necho "$@" >> "$0.calls"\ncat "$(dirname "$0")/$1.out"\n'
                    'exit "$(cat "$(dirname "$0")/rc" 2>/dev/null || echo 0)"\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return d


def flux_collector(fake_flux, tmp_path) -> FluxCollector:
    state = str(tmp_path / "flux-state.json")
    if not os.path.exists(state):
        helpers.counting_since(state)  # an agent that was counting when the fixture's jobs ended
    ctx = helpers.make_context(agent="cluster", cls=FluxCollector, command=str(fake_flux / "flux"),
                               cluster="fluxy", **{"state-file": state})
    return FluxCollector(ctx)


def test_flux_collector_scrape(fake_flux, tmp_path):
    c = flux_collector(fake_flux, tmp_path)
    assert c.available() is None
    assert c.source.refresh_now(), c.source.last_error
    c.source.refresh_now()           # the same inactive jobs again: counted once
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    v = lambda name, **kw: helpers.values(text, name, **kw)
    assert v("hpc_scheduler_up", cluster="fluxy") == [1]
    assert sum(v("hpc_scheduler_jobs_finished_total")) == 8
    assert v("hpc_scheduler_jobs_finished_total", queue="batch", outcome="node_fail", cause="system") == [1]
    assert v("hpc_scheduler_jobs", queue="batch", state="running") == [1]
    assert v("hpc_scheduler_jobs", queue="batch", state="completing") == [1]
    assert v("hpc_scheduler_jobs", queue="batch", state="pending") == [2]
    assert v("hpc_flux_pending_jobs", queue="debug", state="PRIORITY") == [1]
    assert v("hpc_scheduler_pending_wait_seconds_count", queue="debug") == [1]
    assert v("hpc_scheduler_cpus", queue="debug", state="allocated") == [32]
    assert v("hpc_scheduler_gpus", queue="batch", state="allocated") == [8]
    assert v("hpc_scheduler_nodes", queue="batch", state="down") == [1]
    calls = (fake_flux / "flux.calls").read_text().splitlines()
    assert len(calls) == 4 and calls[0].startswith("jobs -A --json --count=0 --since=-")
    # restart: the same state file keeps the totals
    d = flux_collector(fake_flux, tmp_path)
    d.source.refresh_now()
    assert sum(helpers.values(helpers.render(d), "hpc_scheduler_jobs_finished_total")) == 8


def test_flux_down_keeps_last_snapshot(fake_flux, tmp_path):
    c = flux_collector(fake_flux, tmp_path)
    c.source.refresh_now()
    (fake_flux / "rc").write_text("1")
    assert not c.source.refresh_now()
    text = helpers.render(c)
    assert helpers.values(text, "hpc_scheduler_up") == [0]
    assert helpers.values(text, "hpc_scheduler_jobs", queue="batch", state="running") == [1]


def test_flux_absent(tmp_path):
    ctx = helpers.make_context(agent="cluster", cls=FluxCollector, command=str(tmp_path / "nope"))
    assert "not found" in FluxCollector(ctx).available()


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
