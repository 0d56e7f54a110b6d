"""The catalogue's preemption-rate, time-to-result and gpu-utilisation SLIs: what each expands to, the
errors a bad entry gets, the input recordings of gpu-utilisation, and `slo report`'s replay of the first
two from job records (events counted by hand)."""

from __future__ import annotations

import pytest
from hpcwatch.slo import conventions as c
from hpcwatch.slo import generate_rules
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.history.events import Grid, RecordSeries
from hpcwatch.slo.history.query import parse_sli_query
from hpcwatch.slo.history.records import frame_from_columns
from hpcwatch.slo.loader import load_documents
from hpcwatch.slo.validate import render_window

T0 = 1_767_225_600   # 2026-01-01T00:00:00Z


def catalogue(**entry) -> list:
    doc = {"apiVersion": "hpcwatch/v1", "kind": "SLOCatalogue",
           "spec": {"service": "hpc", "clusters": ["alpha"], "slos": [{"objective": 95, **entry}]}}
    return load_documents([("c.yaml", doc)])


def test_preemption_rate_counts_preempted_runs_among_those_that_started():
    slo = catalogue(sli="preemption-rate", queues=["gpu"])[0]
    assert slo.min_events == 10 and slo.low_traffic and slo.page_alert.name == "PreemptionRateSLO"
    assert render_window(slo.sli.error_query, "1h") == \
        '(sum(increase(hpc_scheduler_jobs_finished_total{cluster="alpha",queue="gpu",outcome="preempted"}[1h])) ' \
        "or vector(0))"
    assert render_window(slo.sli.total_query, "1h") == \
        'sum(increase(hpc_scheduler_queue_wait_seconds_count{cluster="alpha",queue="gpu"}[1h]))'


def test_time_to_result_reads_the_turnaround_histogram_at_a_bucket_edge():
    slo = catalogue(sli="time-to-result", threshold="6h", queues=["forecast"])[0]
    err = render_window(slo.sli.error_query, "1h")
    assert 'hpc_scheduler_turnaround_seconds_bucket{cluster="alpha",queue="forecast",le="21600.0"}' in err
    assert render_window(slo.sli.total_query, "1h") == \
        'sum(increase(hpc_scheduler_turnaround_seconds_count{cluster="alpha",queue="forecast"}[1h]))'
    with_failures = catalogue(sli="time-to-result", threshold=21600, include_failures=True)[0]
    # A failure is late and in the total; an owner's own cancel is neither.
    assert 'outcome!~"cancelled|success"' in with_failures.sli.error_query
    assert 'outcome!~"cancelled|success"' in with_failures.sli.total_query


@pytest.mark.parametrize("entry, field, expected", [
    ({"sli": "time-to-result", "threshold": "5h"}, "threshold", "a bucket edge of the turnaround histogram"),
    ({"sli": "time-to-result"}, "threshold", "a bucket edge of the turnaround histogram"),
    ({"sli": "gpu-utilisation", "threshold": 50}, "threshold", "a utilisation between 0 and 1"),
    ({"sli": "gpu-utilisation"}, "threshold", "a utilisation between 0 and 1"),
    ({"sli": "time-to-result", "threshold": "6h", "include_failures": "yes"}, "include_failures", ""),
])
def test_bad_entries_name_the_field(entry, field, expected):
    with pytest.raises(SpecError) as err:
        catalogue(**entry)
    assert f"spec.slos[0].{field}" in str(err.value) and expected in str(err.value)


def test_gpu_utilisation_sums_gpu_samples_of_its_own_input_recordings():
    slo = catalogue(sli="gpu-utilisation", threshold=0.6, objective=70)[0]
    assert not slo.low_traffic and slo.min_events is None
    assert [r for r, _ in slo.inputs] == [c.GPU_ALLOCATED, c.GPU_BUSY]
    assert 'hpc_gpu_utilization_ratio{cluster="alpha"} >= 0.6' in slo.inputs[1][1]
    own = 'sloth_id="hpc-gpu-utilisation-alpha",sloth_slo="gpu-utilisation-alpha",sloth_service="hpc"'
    assert render_window(slo.sli.total_query, "5m") == f"sum(sum_over_time({c.GPU_ALLOCATED}{{{own}}}[5m]))"
    groups = {g["name"]: g for g in generate_rules([slo])["groups"]}
    inputs = groups[c.group_inputs(slo.id)]["rules"]
    assert [r["record"] for r in inputs] == [c.GPU_ALLOCATED, c.GPU_BUSY]
    assert inputs[0]["labels"]["sloth_id"] == slo.id and inputs[0]["labels"]["cluster"] == "alpha"
    queued = catalogue(sli="gpu-utilisation", threshold=0.6, queues=["gpu"])[0]
    assert 'group_left () hpc_job_info{cluster="alpha",partition="gpu"}' in queued.inputs[0][1]


def test_without_recordings_the_inputs_go_too():
    from hpcwatch.slo.generate import Options

    slo = catalogue(sli="gpu-utilisation", threshold=0.5)[0]
    names = [g["name"] for g in generate_rules([slo], Options(recordings=False))["groups"]]
    assert c.group_inputs(slo.id) not in names


def _records(rows: list[tuple]) -> RecordSeries:
    cols = {k: [r[i] for r in rows] for i, k in enumerate(("jobid", "queue", "outcome", "cause", "submit", "start",
                                                           "end"))}
    frame = frame_from_columns({**cols, "cluster": ["alpha"] * len(rows)})
    return RecordSeries(frame, Grid.covering(T0, T0 + 86400, 300))


def test_replay_from_job_records_counts_what_the_exporter_would():
    h = 3600.0
    rows = [  # jobid, queue, outcome, cause, submit, start, end
        ("1", "gpu", "success", "none", T0, T0 + 60, T0 + h),            # started, done in 1 h
        ("2", "gpu", "preempted", "system", T0, T0 + 120, T0 + 2 * h),   # started, preempted
        ("3", "gpu", "cancelled", "none", T0, None, T0 + 300),           # never started
        ("4", "gpu", "success", "none", T0, T0 + 7 * h, T0 + 8 * h),     # done in 8 h: late for 6 h
        ("5", "gpu", "failed", "user", T0, T0 + 60, T0 + 600),           # started, failed
    ]
    series = _records(rows)
    preempt = catalogue(sli="preemption-rate", queues=["gpu"])[0]
    day = 86400
    assert series.evaluate(parse_sli_query(preempt.sli.error_query), day)[-1] == 1
    assert series.evaluate(parse_sli_query(preempt.sli.total_query), day)[-1] == 4     # jobs 1, 2, 4, 5 started
    ttr = catalogue(sli="time-to-result", threshold="6h", queues=["gpu"])[0]
    assert series.evaluate(parse_sli_query(ttr.sli.error_query), day)[-1] == 1          # job 4
    assert series.evaluate(parse_sli_query(ttr.sli.total_query), day)[-1] == 2          # the two successes
    strict = catalogue(sli="time-to-result", threshold="6h", queues=["gpu"], include_failures=True)[0]
    assert series.evaluate(parse_sli_query(strict.sli.error_query), day)[-1] == 3       # + jobs 2 and 5
    assert series.evaluate(parse_sli_query(strict.sli.total_query), day)[-1] == 4       # job 3 withdrawn


def test_node_availability_leaves_nodes_under_maintenance_out_of_both_sides():
    slo = catalogue(sli="node-availability", objective=97)[0]
    assert 'hpc_scheduler_nodes{cluster="alpha",state!~"maint"}' in slo.sli.total_query
    assert "maint" not in slo.sli.error_query
    with pytest.raises(SpecError, match="nodes under maintenance are left out"):
        catalogue(sli="node-availability", unavailable_states=["down", "maint"])


def test_slo_report_backtests_the_shipped_catalogue(capsys):
    """`hpcwatch slo report` over the shipped catalogue (examples/slo/hpc-catalogue.yaml) replays
    preemption-rate and time-to-result from job records with their own verdict wording, and lists
    gpu-utilisation as skipped, pointing at --prometheus (tests/integration/test_slo_history_promtool.py
    replays it from there)."""
    import json
    import os

    from hpcwatch.cli import main

    spec = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "slo", "hpc-catalogue.yaml")
    assert main(["slo", "report", "-i", spec, "--synthetic", "--from", "2026-10-01", "--to", "2026-10-15",
                 "--format", "json", "--no-series"]) == 0
    doc = json.loads(capsys.readouterr().out)
    verdicts = {s["id"]: s["verdict"] for s in doc["slos"]}
    assert "job runs that started ran without being preempted" in verdicts["hpc-preemption-rate-alpha-gpu"]
    assert "gave their result within the threshold" in verdicts["hpc-time-to-result-alpha-batch"]
    skipped = {s["id"]: s["reason"] for s in doc["skipped"]}
    assert "use --prometheus" in skipped["hpc-gpu-utilisation-alpha"]
