"""Differential test: the pandas replay against real Prometheus 2.42 evaluating the generated rules.

The same synthetic job history (3 days, with a node-failure incident and a queue-wait incident) is
(1) replayed by `hpcwatch.slo.history` from its sacct dump, and (2) written as OpenMetrics samples
of the neutral families every 60 s, exactly as the scheduler exporter would expose them, backfilled
with `promtool tsdb create-blocks-from openmetrics` into the TSDB of a real Prometheus. Prometheus
does not evaluate recording rules over the past, so the test range-queries the generated rules'
own expressions (each `slo:sli_error:ratio_rate<w>` rule's expr; the period rule with the recorded
5m series inlined as a subquery at the 5m step; each alert's expr with the recordings inlined).

Tolerance, and why: ratios and budgets agree to 1e-9 relative. Samples sit on the evaluation grid
(60 s scrapes, 5 m steps), Prometheus 2.x range selectors include the sample at t - w, and every
counter starts at 0 before the first event, so `increase()` is an exact difference with no
extrapolation; what remains is float summation order. Alert fire and resolve times must match
exactly at the 5-minute step (Prometheus would evaluate them every rule interval; both sides here
evaluate on the same grid). The period subquery covers [t - 7d, t] and pandas (t - 7d, t]: equal here
because the history is shorter than the period.
"""

from __future__ import annotations

import os
import re
import subprocess
import time

import numpy as np
import pytest
from helpers import IN_CI, require_binary
from hpcwatch.slo import conventions as c
from hpcwatch.slo import load_specs
from hpcwatch.slo.generate import slo_groups
from hpcwatch.slo.goformat import prom_duration
from hpcwatch.slo.history import from_jobs, load_jobs
from hpcwatch.slo.history.events import Grid, RecordSeries
from hpcwatch.slo.history.synthetic import Incident, synthetic_jobs, to_sacct

from hpcwatch.harness.prometheus import Prometheus
from hpcwatch.harness.util import MissingDaemon

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo_history")
STEP, SCRAPE = 300, 60
RTOL = 1e-9


def openmetrics(frame, t0: int, t1: int) -> str:
    """The neutral families at every scrape time, from the same records the replay reads."""
    grid = Grid(t0, SCRAPE, (t1 - t0) // SCRAPE + 1)
    series = RecordSeries(frame, grid)
    from hpcwatch.slo.history.query import parse_sli_query

    times = grid.times()
    lines = ["# HELP hpc_scheduler_jobs_finished Job runs that reached a terminal state.",
             "# TYPE hpc_scheduler_jobs_finished counter"]

    def emit(name: str, labels: str, values: np.ndarray) -> None:
        lines.extend(f"{name}{{{labels}}} {v:g} {t}" for t, v in zip(times.tolist(), values.tolist()))

    combos = frame[["queue", "outcome", "cause"]].astype(str).drop_duplicates().itertuples(index=False)
    for q, o, ca in sorted(combos):
        sel = f'hpc_scheduler_jobs_finished_total{{queue="{q}",outcome="{o}",cause="{ca}"}}'
        emit("hpc_scheduler_jobs_finished_total", f'cluster="alpha",queue="{q}",outcome="{o}",cause="{ca}"',
             series.evaluate(parse_sli_query(f"sum(increase({sel}[{t1 - t0 + SCRAPE}s]))"), t1 - t0 + SCRAPE))
    for fam, kind, func in (("hpc_scheduler_queue_wait_seconds", "histogram", "increase"),
                            ("hpc_scheduler_turnaround_seconds", "histogram", "increase"),
                            ("hpc_scheduler_pending_wait_seconds", "histogram", None)):
        lines += [f"# HELP {fam} Wait.", f"# TYPE {fam} {kind}"]
        for q in sorted(frame["queue"].astype(str).unique()):
            for le in ("3600.0", "+Inf"):
                sel = f'{fam}_bucket{{queue="{q}",le="{le}"}}'
                expr = f"sum(increase({sel}[{t1 - t0 + SCRAPE}s]))" if func else f"sum({sel})"
                emit(f"{fam}_bucket", f'cluster="alpha",queue="{q}",le="{le}"',
                     series.evaluate(parse_sli_query(expr), t1 - t0 + SCRAPE))
            cnt = f'{fam}_count{{queue="{q}"}}'
            expr = f"sum(increase({cnt}[{t1 - t0 + SCRAPE}s]))" if func else f"sum({cnt})"
            values = series.evaluate(parse_sli_query(expr), t1 - t0 + SCRAPE)
            # The exporter exposes the pending-wait distribution as a plain histogram family too.
            emit(f"{fam}_count", f'cluster="alpha",queue="{q}"', values)
            emit(f"{fam}_sum", f'cluster="alpha",queue="{q}"', np.zeros_like(values))
    # The gpu-utilisation SLO's input recordings as Prometheus would have recorded them: 4 GPUs held, 3 of
    # them busy, from the second day on (its replay reads only these).
    gpu = 'sloth_id="hpc-gpu-utilisation-alpha",sloth_service="hpc",sloth_slo="gpu-utilisation-alpha"'
    held = np.where(times >= t0 + 86400, 1.0, np.nan)
    for name, value in (("slo:hpc_gpu_allocated:count", 4), ("slo:hpc_gpu_busy:count", 3)):
        lines += [f"# TYPE {name} gauge"]
        lines.extend(f"{name}{{{gpu}}} {value} {t}" for t, h in zip(times.tolist(), held.tolist()) if h == 1)
    lines.append("# EOF")
    return "\n".join(lines) + "\n"


def _rules(slo) -> dict[str, str]:
    """record or alert name -> expr, from the generated groups."""
    out = {}
    for g in slo_groups(slo):
        for r in g["rules"]:
            # Page and ticket alerts share one name; their severity label tells them apart.
            out[r.get("record") or f'{r["alert"]}/{r["labels"][c.LABEL_SEVERITY]}'] = r["expr"]
    return out


def _inline(expr: str, rules: dict[str, str]) -> str:
    def sub(m: re.Match) -> str:
        return f"({rules[m.group(1)].strip()})"
    return re.sub(r"(slo:sli_(?:error:ratio_rate|events:count)\w+)\{[^}]*\}", sub, expr)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    promtool = require_binary("promtool")
    require_binary("prometheus")
    tmp = tmp_path_factory.mktemp("slo-diff")
    end = int(time.time()) // 3600 * 3600 - 3600        # inside the default 15d retention
    start = end - 3 * 86400
    df = synthetic_jobs(6000, start + 6 * 3600, 2.5, seed=11, mean_wait_s=600,
                        incidents=(Incident(86400, 3 * 3600, node_fail=0.3), Incident(1.5 * 86400, 6 * 3600,
                                                                                       wait_factor=10)))
    path = tmp / "sacct.txt"
    path.write_text(to_sacct(df))
    records = load_jobs([str(path)], cluster="alpha")
    first = int(min(records.frame["submit"].min(), records.frame["end"].min())) // STEP * STEP - STEP
    prom = Prometheus(str(tmp), {"global": {"evaluation_interval": "1m"}})
    os.makedirs(os.path.join(prom.dir, "data"), exist_ok=True)
    om = tmp / "history.om"
    om.write_text(openmetrics(records.frame, first, end))
    proc = subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om),
                           os.path.join(prom.dir, "data")], capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    try:
        prom.start()
    except MissingDaemon as exc:
        if IN_CI:
            pytest.fail(str(exc))
        pytest.skip(str(exc))
    slos = load_specs([os.path.join(FIX, "differential.yaml")])
    report = from_jobs(slos, records, first + STEP, end, STEP)
    yield prom, report, first + STEP, end
    prom.stop()


def _range(prom, expr: str, start: int, end: int, step: int) -> dict[int, float]:
    doc = prom.get_json("/api/v1/query_range", {"query": expr, "start": str(start), "end": str(end),
                                                "step": str(step)})
    assert doc["status"] == "success", doc
    out: dict[int, float] = {}
    for s in doc["data"]["result"]:
        for t, v in s["values"]:
            out[int(float(t))] = out.get(int(float(t)), 0.0) + float(v)
    return out


def _compare(pandas_series, prom_values: dict[int, float], what: str) -> None:
    for t, v in pandas_series.items():
        got = prom_values.get(int(t))
        if np.isnan(v):
            assert got is None, f"{what} at {t}: pandas undefined, Prometheus {got}"
        else:
            assert got is not None, f"{what} at {t}: pandas {v}, Prometheus no sample"
            assert got == pytest.approx(v, rel=RTOL, abs=1e-12), f"{what} at {t}"


def test_error_ratio_over_every_window_matches(world):
    prom, report, start, end = world
    for h in report.histories:
        rules = _rules(h.slo)
        defined = 0
        for w in h.slo.windows.windows():
            got = _range(prom, rules[c.sli_error_metric(w)], start, end, STEP)
            _compare(h.frame[f"ratio_{w}"], got, f"{h.slo.id} ratio {prom_duration(w)}")
            defined += len(got)
        assert defined > 1000, h.slo.id


def test_period_sli_and_budget_match(world):
    prom, report, start, end = world
    for h in report.histories:
        rules = _rules(h.slo)
        short = rules[c.sli_error_metric(h.slo.windows.page_quick.short_s)].strip()
        period = prom_duration(h.slo.period_s)
        # The period rule with its recorded 5m series inlined as a subquery at the 5m step.
        ratio = (f"sum_over_time(({short})[{period}:{prom_duration(STEP)}]) / "
                 f"count_over_time(({short})[{period}:{prom_duration(STEP)}])")
        budget = f"1 - ({ratio}) / (1 - {h.slo.objective_ratio!r})"
        hourly = h.frame[h.frame.index % 3600 == 0]
        first_hour = -(-start // 3600) * 3600
        _compare(hourly["budget_remaining"], _range(prom, budget, first_hour, end, 3600), f"{h.slo.id} budget")
        _compare(hourly["ratio_period"], _range(prom, ratio, first_hour, end, 3600), f"{h.slo.id} period ratio")


def test_alert_fire_and_resolve_times_match(world):
    prom, report, start, end = world
    fired = 0
    for h in report.histories:
        rules = _rules(h.slo)
        for sev, meta in (("page", h.slo.page_alert), ("ticket", h.slo.ticket_alert)):
            expr = _inline(rules[f"{meta.name}/{sev}"], rules)
            got = set(_range(prom, expr, start, end, STEP))
            want = {int(t) for t, on in h.frame[f"rules_alert_{sev}"].items() if on}
            assert got == want, f"{h.slo.id} {sev}: only Prometheus {sorted(got - want)[:5]}, " \
                                f"only pandas {sorted(want - got)[:5]}"
            fired += len(want)
            # The replay's own count leaves out only what fired on windows reaching back before the data.
            counted = {int(t) for t, on in h.frame[f"alert_{sev}"].items() if on}
            longest = max(c.long_s for c in h.conditions if c.severity == sev)
            assert counted <= want
            assert {t for t in want if t - longest >= h.summary["data_start"]} <= counted
    assert fired > 0, "the incidents must make some alert fire, or this test compares nothing"


def test_prometheus_source_finds_where_the_data_begin(world):
    """`--prometheus`: the replay from range queries agrees with the job-records replay, including where
    the data begin (warm-up), since the TSDB holds nothing before the backfilled history."""
    from hpcwatch.slo.history import from_prometheus
    from hpcwatch.slo.history.prom import PrometheusClient

    prom, report, start, end = world
    again = from_prometheus([h.slo for h in report.histories], PrometheusClient(prom.url), start, end, STEP)
    for jobs, live in zip(report.histories, again.histories):
        # The backfilled series begin at the first submit (counters at 0), a step before `start`; the job
        # records begin at their first end, later. Each source's warm-up starts where its own data do.
        assert start - STEP <= live.summary["data_start"] <= start + STEP, jobs.slo.id
        assert live.summary["data_start"] <= jobs.summary["data_start"]
        assert live.summary["alerts_from"] > start and live.summary["budget_complete"] is False
        for w in jobs.slo.windows.windows():
            _compare(jobs.frame[f"ratio_{w}"], {int(t): v for t, v in live.frame[f"ratio_{w}"].dropna().items()},
                     f"{jobs.slo.id} ratio {prom_duration(w)} (--prometheus)")
        assert live.summary["budget_remaining_min"] is None    # 3 days of a 7-day period: all warm-up


def test_gpu_utilisation_replays_from_its_input_recordings(world):
    """`--prometheus` replays gpu-utilisation from the input recordings (job records cannot: it is listed
    as skipped there): 1 GPU-sample in 4 below the threshold in every window, from where they begin."""
    from hpcwatch.slo.history import from_prometheus
    from hpcwatch.slo.history.prom import PrometheusClient

    prom, report, start, end = world
    skipped = {slo.id: why for slo, why in report.skipped}
    assert "use --prometheus" in skipped["hpc-gpu-utilisation-alpha"]
    slo = next(slo for slo, _ in report.skipped if slo.id == "hpc-gpu-utilisation-alpha")
    live = from_prometheus([slo], PrometheusClient(prom.url), start, end, STEP).histories[0]
    ratios = live.frame["ratio_300"].dropna()
    assert len(ratios) > 500 and set(ratios.round(12)) == {0.25}
    assert ratios.index.min() >= start + 86400 - STEP
    from hpcwatch.slo.history.verdict import verdict

    assert live.summary["events"] > 0 and "GPU-samples of allocated GPUs" in verdict(live, end)
