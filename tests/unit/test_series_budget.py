"""The node agent's series budget (tests/series_budget.json) and the scrape limits derived from it.

Fails when a change grows the series of `hpcwatch serve --agent node` with its defaults on the node
fixture tree with 4 running jobs beyond the budget, or the series each running job adds; the message
names the families that grew and how to raise the budget deliberately."""

from __future__ import annotations

import os

import pytest
import seriesbudget
import yaml
from hpcwatch.exporters.jobcap import DEFAULT_MAX_JOBS
from hpcwatch.exporters.registry import load_all

from hpcwatch import promconfig
from hpcwatch.metric_names import CLUSTER_AGENT_JOB, NODE_AGENT_JOB, NODE_EXPORTER_JOB

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
TARGET_LABELS = ("job", "instance", "cluster", "node")  # what Prometheus adds to every series


@pytest.fixture(scope="module")
def measured() -> dict:
    return seriesbudget.measure()


@pytest.fixture(scope="module")
def budget() -> dict:
    return seriesbudget.load_budget()


def test_default_node_series_stay_within_the_budget(measured, budget):
    assert measured["collectors"] == budget["collectors"], (
        f"the node agent's default collectors on the fixture tree changed: {budget['collectors']} -> "
        f"{measured['collectors']}; {seriesbudget.UPDATE}")
    problems = seriesbudget.overruns(measured, budget)
    assert not problems, "series budget exceeded:\n  " + "\n  ".join(problems) + f"\n{seriesbudget.UPDATE}"


def test_budget_is_measured_not_guessed(measured, budget):
    # The recorded counts are a measurement: far below them means the budget went stale the other way.
    assert seriesbudget.node_total(measured) >= 0.8 * seriesbudget.node_total(budget), (
        f"node series fell from {seriesbudget.node_total(budget)} to {seriesbudget.node_total(measured)}: "
        "run `.venv/bin/python tests/seriesbudget.py --write` to record the new, smaller budget")
    assert measured["per_job"], "no per-job series measured: the jobs collector did not see the fixture jobs"


def test_overrun_message_names_the_families_that_grew(measured, budget):
    grown = {**measured, "node": {**measured["node"], "node_cpu_seconds_total": 10_000},
             "per_job": {**measured["per_job"], "hpc_job_tasks": 5}}
    problems = seriesbudget.overruns(grown, budget)
    assert len(problems) == 2
    assert "node_cpu_seconds_total" in problems[0] and "hpc_job_tasks" in problems[1]


def _jobs(config: dict) -> dict[str, dict]:
    return {job["job_name"]: job for job in config["scrape_configs"]}


LARGE_NODE_CPUS = 256  # logical CPUs of a large 2-socket node (2 x 64 cores, SMT)
NODE_CPU_MODES = 8  # node_cpu_seconds_total series per CPU


def gpu_node_series() -> int:
    """hpc_gpu_ series of the 8 x H100 docs example (the fake NVML), as docs/metrics.md renders it."""
    from hpcwatch.docexamples import gpu
    from hpcwatch.metricsdoc import _render
    families = seriesbudget.series_by_family(_render(gpu(ROOT)))
    return sum(count for name, count in families.items() if name.startswith("hpc_gpu_"))


def test_shipped_sample_limits_hold_a_large_gpu_node_at_the_per_job_cap_three_times_over(budget):
    with open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml"), encoding="utf-8") as fh:
        jobs = _jobs(yaml.safe_load(fh))
    fixture_cpus = budget["node"]["node_cpu_seconds_total"]
    large = (seriesbudget.node_total(budget) - fixture_cpus + LARGE_NODE_CPUS * NODE_CPU_MODES
             + (DEFAULT_MAX_JOBS - budget["jobs"]) * seriesbudget.per_job_total(budget) + gpu_node_series())
    for name in (NODE_AGENT_JOB, NODE_EXPORTER_JOB):
        assert jobs[name]["sample_limit"] == promconfig.NODE_SAMPLE_LIMIT
        assert jobs[name]["sample_limit"] >= 3 * large, (name, large)
    assert jobs[CLUSTER_AGENT_JOB]["sample_limit"] == promconfig.CLUSTER_SAMPLE_LIMIT
    for job in jobs.values():
        assert job["label_limit"] == promconfig.LABEL_LIMIT
        assert job["label_value_length_limit"] == promconfig.LABEL_VALUE_LENGTH_LIMIT


def test_label_limit_leaves_room_over_the_widest_family():
    widest = max((len(spec.labels), spec.name) for cls in load_all().values()
                 for spec in getattr(getattr(cls, "families", None), "values", lambda: [])())
    assert widest[0] + len(TARGET_LABELS) <= promconfig.LABEL_LIMIT // 2, widest


def test_label_value_length_limit_is_above_what_the_exporter_cuts_to():
    from hpcwatch.exporters.labels import LIMIT
    assert promconfig.LABEL_VALUE_LENGTH_LIMIT >= 4 * LIMIT


def test_service_monitors_carry_the_same_limits():
    with open(os.path.join(ROOT, "deploy", "kubernetes", "base", "servicemonitors.yaml"), encoding="utf-8") as fh:
        monitors = {d["metadata"]["name"]: d["spec"] for d in yaml.safe_load_all(fh)}
    for name, samples in ((NODE_AGENT_JOB, promconfig.NODE_SAMPLE_LIMIT),
                          (CLUSTER_AGENT_JOB, promconfig.CLUSTER_SAMPLE_LIMIT)):
        assert monitors[name]["sampleLimit"] == samples
        assert monitors[name]["labelLimit"] == promconfig.LABEL_LIMIT
        assert monitors[name]["labelValueLengthLimit"] == promconfig.LABEL_VALUE_LENGTH_LIMIT
