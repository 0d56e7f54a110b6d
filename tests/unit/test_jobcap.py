"""The per-node cap on per-job series (--collector.<name>.max-jobs) in every collector that emits them:
the lowest job ids are kept, the rest left out and counted in hpcwatch_jobs_not_exported{collector}."""

from __future__ import annotations

import os
import sys

import helpers
import jobtrees
import pytest
from hpcwatch.exporters.energy.collector import EnergyCollector
from hpcwatch.exporters.gpu import nvml
from hpcwatch.exporters.gpu.collector import GpuCollector
from hpcwatch.exporters.jobcap import DEFAULT_MAX_JOBS, jobid_order, kept_jobs
from hpcwatch.exporters.jobs.collector import JobsCollector
from hpcwatch.exporters.registry import load_all
from hypothesis import given
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures")
sys.path.insert(0, os.path.join(FIX, "gpu"))
sys.path.insert(0, os.path.join(FIX, "energy"))
import fake_pynvml as fk  # noqa: E402
import make_tree as mt  # noqa: E402


def jobids(text: str, name: str) -> set[str]:
    return {labels["jobid"] for labels in helpers.series_labels(text, name)}


def not_exported(text: str) -> dict[str, float]:
    return {dict(labels)["collector"]: v for (n, labels), v in helpers.samples(text).items()
            if n == "hpcwatch_jobs_not_exported"}


def jobs_collector(root: str, **options: object) -> JobsCollector:
    ctx = helpers.make_context(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"),
                               cls=JobsCollector, **options)
    c = JobsCollector(ctx)
    assert c.available() is None
    return c


def test_every_collector_with_per_job_series_has_the_cap():
    # A collector that declares a family with a jobid label must offer max-jobs (node agent side;
    # lustre_server, on the cluster agent, caps per target with its own top-N options).
    for name, cls in load_all().items():
        specs = getattr(cls, "families", None)
        if specs is None or cls.default_agents != frozenset({"node"}):
            continue
        per_job = [s.name for s in specs.values() if "jobid" in s.labels]
        if per_job:
            assert "max-jobs" in {o.name for o in cls.options}, (name, per_job)


def test_jobs_past_the_cap_are_left_out_and_counted(tmp_path):
    root = jobtrees.node_with_jobs(str(tmp_path), ["105", "7", "64", "1000", "99", "8"])
    c = jobs_collector(root, **{"max-jobs": "4"})
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    for family in ("hpc_job_info", "hpc_job_cpu_seconds_total", "hpc_job_memory_usage_bytes"):
        assert jobids(text, family) == {"7", "8", "64", "99"}, family  # numeric order, not text order
    assert not_exported(text) == {"jobs": 2}
    # A new job past the cap displaces no kept job; one that ends frees a place for the next lowest id.
    jobtrees.node_with_jobs(root, ["105", "7", "64", "1000", "99", "8", "2000"])
    text = helpers.render(c)
    assert jobids(text, "hpc_job_info") == {"7", "8", "64", "99"}
    assert not_exported(text) == {"jobs": 3}
    jobtrees.node_with_jobs(root, ["105", "64", "1000", "99", "8", "2000"])
    text = helpers.render(c)
    assert jobids(text, "hpc_job_info") == {"8", "64", "99", "105"}
    assert not_exported(text) == {"jobs": 2}
    c.close()


def test_under_the_cap_and_zero_mean_everything(tmp_path):
    root = jobtrees.node_with_jobs(str(tmp_path), ["1", "2", "3"])
    for limit in ("3", "0"):
        c = jobs_collector(root, **{"max-jobs": limit})
        text = helpers.render(c)
        c.close()
        assert jobids(text, "hpc_job_info") == {"1", "2", "3"}
        assert not_exported(text) == {"jobs": 0}
    assert JobsCollector.options[-1].default == DEFAULT_MAX_JOBS


def test_gpu_job_series_are_capped_and_processes_in_no_job_stay(tmp_path):
    fake = fk.h100_node({0: [(1001, 30 << 30), (1004, 1 << 30)], 1: [(1002, 5 << 30), (1003, 6 << 30)]})
    previous = nvml.use(fake)
    try:
        c = GpuCollector(helpers.make_context(
            procfs=os.path.join(FIX, "gpu", "proc"), cls=GpuCollector,
            **{"job-map-dir": os.path.join(FIX, "gpu", "gpu-jobs"), "per-process": True, "max-jobs": "2"}))
        assert c.available() is None
        text = helpers.render(c)
        c.close()
    finally:
        nvml.use(previous)
    helpers.assert_promtool_clean(text)
    # Jobs seen: 4242001-3 (processes), 4242005-6 (mapping directory): the two lowest stay.
    assert jobids(text, "hpc_gpu_job_info") == {"4242001", "4242002"}
    assert jobids(text, "hpc_gpu_job_memory_used_bytes") == {"4242001", "4242002"}
    assert helpers.values(text, "hpc_gpu_process_memory_used_bytes", pid="1004", jobid="") == [1 << 30]
    assert not helpers.values(text, "hpc_gpu_process_memory_used_bytes", pid="1003")
    assert not_exported(text) == {"gpu": 3}
    assert helpers.values(text, "hpc_gpu_up", gpu="0") == [1]  # device series are untouched


def test_energy_series_are_capped_but_every_job_keeps_its_share(tmp_path):
    state = mt.NodeState(meter_uw=400_000_000, jobs={j: mt.Job(10, 0, "0") for j in ("30", "10", "20")})
    root = mt.write(str(tmp_path), state)
    c = EnergyCollector(helpers.make_context(
        procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"), rootfs=root, cls=EnergyCollector,
        **{"gpu": False, "job-map-dir": "", "interval": 3600.0, "max-jobs": "2"}))
    assert c.available() is None
    try:
        assert c.source.refresh_now(), c.source.last_error   # the baseline
        state.packages_uj = [p + 90_000_000 for p in state.packages_uj]
        state.busy_s += 30
        for job in state.jobs.values():
            job.user_s += 10
        mt.write(root, state)
        assert c.source.refresh_now(), c.source.last_error
        text = helpers.render(c)
    finally:
        c.close()
    helpers.assert_promtool_clean(text)
    assert jobids(text, "hpc_job_energy_joules_total") == {"10", "20"}
    assert not_exported(text) == {"energy": 1}
    assert c.totals.jobs.keys() == {"10", "20", "30"}  # attribution still splits among all three


@given(st.sets(st.one_of(st.integers(0, 10**9).map(str), st.text("abcXYZ0123456789_", min_size=1, max_size=8),
                         st.text(min_size=1, max_size=4)), max_size=40), st.integers(0, 50))
def test_kept_jobs_are_the_lowest_ids_whatever_the_order(ids, limit):
    kept = kept_jobs(list(ids), limit)
    if limit == 0 or len(ids) <= limit:
        assert kept is None
        return
    assert len(kept) == limit
    assert kept_jobs(sorted(ids, reverse=True), limit) == kept  # order of discovery does not matter
    worst = max(kept, key=jobid_order)
    assert all(jobid_order(j) > jobid_order(worst) for j in ids - kept)
    # A job past every kept one (a newer numeric id) never displaces a kept job.
    newest = str(max((jobid_order(j)[1] for j in ids), default=0) + 1)
    if all(jobid_order(j)[0] == 0 for j in kept):
        assert kept_jobs(list(ids) + [newest], limit) == kept


@pytest.mark.parametrize("cls", [JobsCollector, GpuCollector, EnergyCollector])
def test_the_option_is_documented_in_serve_help(cls):
    from hpcwatch.exporters.flags import collector_help
    assert f"--collector.{cls.name}.max-jobs" in collector_help(cls)
