"""SLO history: loaders and their account of bad input, the query subset, the vectorised replay
against a row-by-row oracle, and the `hpcwatch slo report` command in its three formats."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest
from hpcwatch.slo import alert_conditions, load_specs
from hpcwatch.slo.history import from_jobs, load_jobs, render
from hpcwatch.slo.history.events import Grid
from hpcwatch.slo.history.flux import load_flux
from hpcwatch.slo.history.query import UnsupportedQuery, parse_sli_query
from hpcwatch.slo.history.reference import reference_replay
from hpcwatch.slo.history.sacct import load_sacct
from hpcwatch.slo.history.synthetic import Incident, synthetic_jobs, to_sacct
from hypothesis import given, settings
from hypothesis import strategies as st

from hpcwatch.cli import main

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo_history")
SPEC = os.path.join(FIX, "catalogue.yaml")
T0 = 1767225600  # 2026-01-01T00:00:00Z


def fixture(name: str) -> str:
    return os.path.join(FIX, name)


@pytest.fixture(scope="module")
def slos():
    return load_specs([SPEC])


@pytest.fixture(scope="module")
def history(tmp_path_factory):
    df = synthetic_jobs(4000, T0, 6, seed=3, incidents=(Incident(2 * 86400, 4 * 3600, node_fail=0.3),))
    path = tmp_path_factory.mktemp("hist") / "sacct.txt"
    path.write_text(to_sacct(df))
    return str(path)


# ------------------------------------------------------------------ bad input: counted, never raised
def test_sacct_bad_input_is_counted_not_dropped():
    r = load_jobs([fixture("sacct-bad-input.txt")], cluster="alpha")
    rep = r.report
    assert rep.records == 16
    assert rep.used + sum(rep.dropped.values()) == rep.records
    assert rep.dropped == {"duplicate": 1, "malformed": 2, "no_end_time": 1, "not_finished": 2, "step": 1,
                           "truncated": 1, "unknown_state": 1}
    assert rep.flagged["requeued"] == 1          # job 101: a REQUEUED run then a NODE_FAIL run
    assert rep.flagged["array_tasks"] == 2
    assert rep.flagged["array_collapsed"] == 1   # 102_[3-6]: four tasks cancelled before they ran
    assert rep.flagged["never_started"] == 2
    assert rep.flagged["unknown_time"] == 2
    f = r.frame.set_index("jobid")
    assert f.loc["101@1767225900@1767225960", ["outcome", "cause"]].tolist() == ["node_fail", "system"]
    assert int(r.frame["count"].sum()) == 7 - 1 + 4   # the collapsed array record stands for 4 jobs
    # The mapping is the exporter's: a cancel by root is the system's doing, by the owner nobody's.
    causes = dict(zip(r.frame["jobid"].str.split("@").str[0], r.frame["cause"]))
    assert causes["105"] == "system" and causes["102"] == "none"


def test_flux_bad_lines_and_truncated_document():
    r = load_jobs([fixture("flux-jobs-bad.jsonl")], cluster="alpha")
    assert r.report.records == 7 and r.report.used == 3
    assert r.report.dropped == {"malformed": 1, "truncated": 1, "not_finished": 1, "unknown_state": 1}
    outcomes = sorted(r.frame["outcome"].astype(str))
    assert outcomes == ["cancelled", "node_fail", "success"]   # exec + "lost contact" = node failure
    with open(os.path.join(FIX, "..", "flux", "0.88", "after", "jobs.json")) as fh:
        doc = fh.read()
    cut = load_flux(doc[: len(doc) // 2], "cut", "alpha")
    assert cut.report.dropped["truncated"] == 1 and cut.report.used > 0


def test_csv_bad_rows():
    r = load_jobs([fixture("jobs-bad.csv")], cluster="alpha")
    assert r.report.records == 7 and r.report.used == 3
    assert r.report.dropped == {"duplicate": 1, "malformed": 1, "no_end_time": 1, "unknown_state": 1}
    assert sorted(r.frame["end"].tolist()) == [1767226200.0, 1767226300.0, 1767227400.0]


def test_parquet_and_csv_equal_sacct(history, tmp_path):
    import pandas as pd

    df = synthetic_jobs(500, T0, 1, seed=5)
    df.to_parquet(tmp_path / "j.parquet")
    df.to_csv(tmp_path / "j.csv", index=False)
    (tmp_path / "j.txt").write_text(to_sacct(df))
    frames = [load_jobs([str(tmp_path / n)], cluster="alpha").frame for n in ("j.parquet", "j.csv", "j.txt")]
    for f in frames[1:]:
        assert len(f) == len(frames[0]) == 500
        pd.testing.assert_series_equal(f["outcome"].astype(str).reset_index(drop=True),
                                       frames[0]["outcome"].astype(str).reset_index(drop=True))
    # sacct prints whole seconds
    assert np.allclose(frames[2]["end"], np.floor(frames[0]["end"]))


@settings(max_examples=150, deadline=None)
@given(st.lists(st.text(alphabet="0123456789|_[]-+.abcNUKwonT:CMPLED \n", max_size=120), max_size=12))
def test_sacct_loader_never_raises(lines):
    r = load_sacct(["JobID|JobIDRaw|Partition|State|ExitCode|Submit|Eligible|Start|End\n", *lines], "fuzz", "a")
    assert r.report.used + sum(r.report.dropped.values()) >= r.report.used


@settings(max_examples=150, deadline=None)
@given(st.text(max_size=300))
def test_flux_loader_never_raises(text):
    r = load_flux(text, "fuzz", "a")
    assert r.report.used <= r.report.records or r.report.records == 0


# ------------------------------------------------------------------ the query subset
def test_catalogue_queries_parse(slos):
    kinds = {}
    for s in slos:
        try:
            parse_sli_query(s.sli.error_query)
            kinds[s.name] = "ok"
        except UnsupportedQuery as exc:
            kinds[s.name] = str(exc)
    assert kinds["job-success-alpha-batch"] == kinds["queue-wait-alpha-batch"] == "ok"
    assert "sum_over_time" in kinds["node-availability-alpha"]


def test_query_subset():
    q = parse_sli_query('sum(rate(x_total{a=~"b|c"}[{{.window}}])) * 2 - (sum(increase(y[1h])) or vector(0))')
    (t1, c1), (t2, c2) = q.terms
    assert (t1.func, t1.window_s, c1) == ("rate", None, 2.0) and (t2.window_s, c2) == (3600, -1.0)
    assert t1.matchers[0].matches("c") and not t1.matchers[0].matches("bc")
    for bad in ("sum by (queue) (increase(x[5m]))", "histogram_quantile(0.9, x)", "sum(x) / sum(y)"):
        with pytest.raises(UnsupportedQuery):
            parse_sli_query(bad)


# ------------------------------------------------------------------ replay = the rules, row by row
def test_replay_matches_row_by_row_oracle(slos, history):
    records = load_jobs([history], cluster="alpha")
    job_slos = [s for s in slos if s.name.startswith("job-success")]
    report = from_jobs(job_slos, records, None, None, 300)
    rows = [{"cluster": r.cluster, "queue": r.queue, "outcome": r.outcome, "cause": r.cause, "end": r.end,
             "count": r.count} for r in records.frame.itertuples()]
    for h in report.histories:
        grid_start = report.start - (h.slo.period_s + max(h.slo.windows.windows()))
        n = (report.end - grid_start) // 300 + 1
        ref = reference_replay(h.slo, rows, grid_start, 300, n, h.summary["data_start"])
        keep = slice(n - len(h.frame), n)
        for w in h.slo.windows.windows():
            exp = np.array([np.nan if v is None else v for v in ref["ratio"][w][keep]])
            np.testing.assert_allclose(h.frame[f"ratio_{w}"].to_numpy(), exp, rtol=1e-12, equal_nan=True)
        exp_b = np.array([np.nan if v is None else v for v in ref["budget"][keep]])
        np.testing.assert_allclose(h.frame["budget_remaining"].to_numpy(), exp_b, rtol=1e-9, atol=1e-12,
                                   equal_nan=True)
        assert h.frame["alert_page"].tolist() == ref["page"][keep]
        assert h.frame["alert_ticket"].tolist() == ref["ticket"][keep]
        assert h.summary["events"] == ref["total"]
    # The incident pages on both queues, and nothing pages outside its 4 hours plus the slow 6h window.
    for h in report.histories:
        pages = [e for e in h.episodes if e.severity == "page"]
        assert pages, h.slo.id
        assert all(T0 + 2 * 86400 <= e.fired <= T0 + 2 * 86400 + 10 * 3600 for e in pages)


def test_min_events_guard_blocks_alerts_on_few_jobs(slos):
    """Two jobs, one failed by the system: a 50% error ratio, but below min_events nothing fires."""
    import pandas as pd
    from hpcwatch.slo.history.records import InputReport, JobRecords, frame_from_columns

    frame = frame_from_columns({"jobid": ["1", "2"], "cluster": ["alpha"] * 2, "queue": ["batch"] * 2,
                                "outcome": ["success", "node_fail"], "cause": ["none", "system"],
                                "end": [T0 + 100.0, T0 + 200.0]})
    slo = slos[0]
    assert slo.min_events == 10
    rep = from_jobs([slo], JobRecords(frame, InputReport("t", "t")), T0, T0 + 86400, 300)
    h = rep.histories[0]
    assert h.frame["ratio_3600"].max() == 0.5 and not h.episodes
    assert isinstance(h.frame, pd.DataFrame)
    assert all(c.min_events == 10 for c in alert_conditions(slo))


def test_step_must_divide_windows(slos, history):
    with pytest.raises(ValueError, match="multiple of the step"):
        from_jobs(slos, load_jobs([history], cluster="alpha"), None, None, 420)


def test_grid_alignment():
    g = Grid.covering(1000.5, 2000, 300)
    assert g.start == 900 and g.end == 2100
    assert g.index_ge(np.array([900.0, 901.0, 1200.0])).tolist() == [0, 1, 1]


# ------------------------------------------------------------------ the command
def test_cli_text_json_html(history, tmp_path, capsys):
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history]) == 0
    text = capsys.readouterr().out
    assert "hpc-job-success-alpha-batch" in text and "would have fired" in text
    assert "hpc-node-availability-alpha: skipped: not computable from job records" in text
    out = tmp_path / "r.json"
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history, "--format", "json", "-o", str(out)]) == 0
    doc = json.loads(out.read_text())
    first = doc["slos"][0]
    assert first["id"] == "hpc-job-success-alpha-batch" and first["alerts"]
    assert len(first["series"]["time"]) == len(first["series"]["budget_remaining"])
    assert doc["input"]["used"] == 4000 and doc["skipped"][0]["id"] == "hpc-node-availability-alpha"
    html_out = tmp_path / "r.html"
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history, "--format", "html", "-o", str(html_out)]) == 0
    page = html_out.read_text()
    assert page.count("<svg") == 12 and "http://" not in page.replace('xmlns="http://www.w3.org/2000/svg"', "")


def test_cli_errors_are_one_line(tmp_path, capsys):
    assert main(["slo", "report", "--spec", SPEC, "--jobs", str(tmp_path / "missing.txt")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and "Traceback" not in err
    assert main(["slo", "report", "--spec", SPEC, "--jobs", fixture("jobs-bad.csv"), "--from", "yesterday"]) == 2
    assert "time 'yesterday'" in capsys.readouterr().err


def test_progress_only_when_asked(history, capsys):
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history, "--progress"]) == 0
    assert "replaying SLOs" in capsys.readouterr().err
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history]) == 0
    assert "replaying" not in capsys.readouterr().err


def test_render_is_deterministic_text(history):
    records = load_jobs([history], cluster="alpha")
    rep = from_jobs(load_specs([SPEC]), records, None, None, 300)
    assert render(rep, "text") == render(rep, "text")


# ------------------------------------------------------------------ warm-up
def _frame(rows):
    from hpcwatch.slo.history.records import InputReport, JobRecords, frame_from_columns

    cols = {k: [r[i] for r in rows] for i, k in enumerate(("jobid", "queue", "outcome", "cause", "end"))}
    return JobRecords(frame_from_columns({**cols, "cluster": ["alpha"] * len(rows)}), InputReport("t", "t"))


def _burst_then_quiet(days: float, burst_jobs: int = 30) -> list:
    """A failure burst in the first 40 minutes of the data, then a healthy queue (one job a minute)."""
    rows = [(f"b{i}", "batch", "node_fail" if i % 2 else "success", "system" if i % 2 else "none",
             T0 + 60.0 * (i + 1)) for i in range(burst_jobs)]
    rows += [(f"j{i}", "batch", "success", "none", T0 + 2400.0 + 60 * i) for i in range(int(days * 1440) - 40)]
    return rows


def test_warmup_leaves_partial_windows_out_of_lowest_budget_and_alerts(slos):
    """A burst in the data's first 40 minutes: no 1-hour window is full yet, so no page; the 30-day budget
    of a 4-hour-old history is not its lowest point. Before warm-up, this read -163% beside "met"."""
    batch = [s for s in slos if s.name == "job-success-alpha-batch"]
    rep = from_jobs(batch, _frame(_burst_then_quiet(35)), None, None, 300)
    h = rep.histories[0]
    s = h.summary
    assert s["met"] is True and s["data_start"] == T0
    assert s["budget_from"] == T0 + 30 * 86400 and s["budget_complete"] is True
    # The partial period right after the burst is far below zero; it is warm-up, so it is not the minimum.
    early = h.frame.loc[T0 + 3600: T0 + 4 * 3600, "budget_remaining"]
    assert early.min() < -1.0 and h.frame.loc[T0 + 3600, "warmup"]
    assert s["budget_remaining_min"] > 0.4 and s["budget_remaining_min_at"] >= s["budget_from"]
    # What the rules would have done on the partial windows, and what the replay counts.
    assert h.frame["rules_alert_page"].any() and not h.frame["alert_page"].any()
    assert s["page_alerts"] == 0
    # With less than a period of data there is no lowest budget at all, and the text says so.
    short = from_jobs(batch, _frame(_burst_then_quiet(7)), None, None, 300)
    assert short.histories[0].summary["budget_remaining_min"] is None
    assert not short.histories[0].summary["budget_complete"]
    text = render(short, "text")
    assert "warm-up" in text and "cannot be judged yet" in text
    assert "-1" not in text.split("\n")[3].split()[6]     # no "-163%" in the "min budget" column


def test_warmup_counts_from_history_before_the_report(slos):
    """Records reaching back before --from fill the windows: nothing in the report is warm-up."""
    batch = [s for s in slos if s.name == "job-success-alpha-batch"]
    rows = _burst_then_quiet(45)
    rep = from_jobs(batch, _frame(rows), T0 + 40 * 86400, T0 + 44 * 86400, 300)
    s = rep.histories[0].summary
    assert s["budget_complete"] and s["warmup_s"] == 0 and not rep.histories[0].frame["alert_warmup"].any()


def test_json_carries_warmup(history, tmp_path):
    out = tmp_path / "r.json"
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history, "--format", "json", "-o", str(out)]) == 0
    first = json.loads(out.read_text())["slos"][0]
    assert first["summary"]["budget_complete"] is False and first["summary"]["budget_remaining_min"] is None
    assert any(first["series"]["warmup"]) and "rules_alert_page" in first["series"]
    assert first["verdict"].startswith("Job success (queue batch of cluster alpha)")


# ------------------------------------------------------------------ specs that select nothing
def test_spec_matching_no_record_is_an_error_listing_what_there_is(history, tmp_path, capsys):
    text = open(SPEC).read()
    for wrong, bad in (("clusters: [alpha]", "clusters: [beta]"), ("queues: [batch, gpu]", "queues: [batch, gpus]")):
        spec = tmp_path / "spec.yaml"
        spec.write_text(text.replace(wrong, bad))
        assert main(["slo", "report", "--spec", str(spec), "--jobs", history]) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and err.count("\n") == 1, err
        assert "match no job record" in err and "cluster alpha: queue" in err
        assert "gpu (" in err and "batch (" in err and "runs)" in err
        if "gpus" in bad:
            assert 'hpc-job-success-alpha-gpus {cluster="alpha",queue="gpus"}' in err
            assert "batch" not in err.split("match no job record")[1].split(".")[0]


def test_scope_check_respects_the_range(history, capsys):
    """Runs outside --from/--to are not what the spec is checked against, and the message says so."""
    assert main(["slo", "report", "--spec", SPEC, "--jobs", history, "--from", "2020-01-01",
                 "--to", "2020-01-02"]) == 2
    err = capsys.readouterr().err
    assert "ending in 20" in err and "hold no finished runs" in err


# ------------------------------------------------------------------ verdicts
def test_every_slo_gets_a_verdict_in_every_format(history, tmp_path):
    records = load_jobs([history], cluster="alpha")
    rep = from_jobs(load_specs([SPEC]), records, None, None, 300)
    from hpcwatch.slo.history.verdict import verdict

    for h in rep.histories:
        v = verdict(h, rep.end)
        met = "met its" if h.summary["met"] else "missed its"
        assert met in v and f"{h.summary['events']:,.0f} jobs" in v, v
        assert "burn rate" not in v and "ratio" not in v          # plain words
        assert "cannot be judged yet" in v                         # 6 days of a 30-day period
        pages = h.summary["page_alerts"]
        assert ("paged" in v) == bool(pages) and ("No page or ticket" in v) == (not h.episodes)
    page = render(rep, "html")
    assert page.count('<p class="verdict">') == len(rep.histories)


# ------------------------------------------------------------------ --synthetic
def test_synthetic_history_covers_the_specs_scopes(capsys):
    assert main(["slo", "report", "--spec", SPEC, "--synthetic", "--from", "2026-01-01", "--to", "2026-03-02"]) == 0
    out = capsys.readouterr().out
    assert "--synthetic: 60 days" in out
    for slo in ("hpc-job-success-alpha-batch", "hpc-job-success-alpha-gpu", "hpc-queue-wait-alpha-batch"):
        row = next(line for line in out.splitlines() if line.startswith(slo + " "))
        assert row.split()[-1] in ("met", "MISSED") and "*" not in row, row   # a full period after warm-up
    assert "On-call would have been paged" in out
    # Deterministic: the same history each time.
    assert main(["slo", "report", "--spec", SPEC, "--synthetic", "--from", "2026-01-01", "--to", "2026-03-02"]) == 0
    assert capsys.readouterr().out == out


def test_synthetic_scopes_from_any_spec():
    from hpcwatch.slo.history.synthetic import spec_scopes

    examples = os.path.join(os.path.dirname(__file__), "..", "..", "examples", "slo")
    catalogue = load_specs([os.path.join(examples, "hpc-catalogue.yaml")])
    assert spec_scopes(catalogue, "x") == {"alpha": ("batch", "gpu")}
    # A Sloth spec over other families names no cluster or queue: the default cluster's two queues.
    assert spec_scopes(load_specs([os.path.join(examples, "sloth-prometheus.yaml")]), "x") == {"x": ("batch", "gpu")}


# ------------------------------------------------------------------ chart layout
def test_time_ticks_fit_side_by_side():
    from hpcwatch.slo.history.svg import LEFT, RIGHT, TICK_CHAR_W, W, _time_ticks

    for days in (0.2, 1, 2, 3, 7, 10, 30, 60, 90, 400):
        ticks = _time_ticks(T0, T0 + days * 86400)
        assert 2 <= len(ticks) <= 10, (days, len(ticks))
        px = (W - LEFT - RIGHT) / (days * 86400)
        for (a, la), (b, lb) in zip(ticks, ticks[1:]):
            assert (b - a) * px >= (len(la) + len(lb)) / 2 * TICK_CHAR_W + 8, (days, la, lb)


def test_threshold_labels_are_moved_apart():
    from hpcwatch.slo.history.svg import LABEL_H, Placed, place_label

    placed: list[Placed] = []
    ys = [place_label(placed, 900, 120, y, 20, 190) for y in (100, 103, 105, 150)]
    assert ys[0] == 100 and ys[3] == 150
    assert all(abs(a - b) >= LABEL_H for i, a in enumerate(ys) for b in ys[i + 1:])
    assert all(20 <= y <= 190 for y in ys)


def test_attained_counts_each_run_once_with_pending_terms(slos):
    """Queue wait with include_pending: a run that waited 3 hours past submit is one late job, not one per
    5-minute step it spent pending (the SLI's instant term), and 30 quick runs are 30 good ones."""
    from hpcwatch.slo.history.records import InputReport, JobRecords, frame_from_columns

    wait = [s for s in slos if s.name == "queue-wait-alpha-batch"]
    n = 31
    submit = [T0 + 600.0] + [T0 + 3600.0 * 5 + 60 * i for i in range(n - 1)]
    start = [T0 + 600.0 + 3 * 3600] + [t + 30 for t in submit[1:]]
    frame = frame_from_columns({"jobid": [str(i) for i in range(n)], "cluster": ["alpha"] * n,
                                "queue": ["batch"] * n, "outcome": ["success"] * n, "cause": ["none"] * n,
                                "submit": submit, "eligible": submit, "start": start,
                                "end": [t + 600 for t in start]})
    s = from_jobs(wait, JobRecords(frame, InputReport("t", "t")), T0, T0 + 86400, 300).histories[0].summary
    assert (s["events"], s["error_events"]) == (31, 1)
