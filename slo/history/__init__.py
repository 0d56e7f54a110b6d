"""hpcwatch.slo.history: replay SLOs over job history or Prometheus data (budgets, burn, alert backtest).

    records = load_jobs(["q1-sacct.txt"], cluster="alpha")      # neutral runs + an account of bad input
    report = from_jobs(load_specs(["slos/"]), records, None, None, 300)
    print(render(report, "text"))                              # or "html", "json"

The SLO model, windows, factors and min_events guard are `hpcwatch.slo`'s; outcome and cause come from
`hpcwatch.exporters.scheduler.outcomes` through the Slurm and Flux adapters' own parsers.
"""

from __future__ import annotations

import time

from hpcwatch.slo.history.compute import AlertEpisode, SLIData, SLOHistory, replay
from hpcwatch.slo.history.load import load_jobs
from hpcwatch.slo.history.report import Report, from_jobs, from_prometheus

__all__ = ["AlertEpisode", "Report", "SLIData", "SLOHistory", "build_report", "from_jobs", "from_prometheus",
           "load_jobs", "render", "replay"]


def build_report(slos, *, jobs=None, jobs_format="auto", prometheus=None, prometheus_source="sli",
                 cluster="default", start=None, end=None, step=300, progress=None, synthetic=False) -> Report:
    """One report from --jobs files, a --prometheus URL or --synthetic history (the CLI's whole pipeline)."""
    if synthetic:
        from hpcwatch.slo.history.synthetic import SAMPLE_DAYS, sample_records

        end = float(int(time.time()) // 86400 * 86400) if end is None else end
        start = end - SAMPLE_DAYS * 86400 if start is None else start
        return from_jobs(slos, sample_records(slos, start, end, cluster), start, end, step, progress)
    if jobs:
        import os

        if progress:
            progress.stage("reading " + ", ".join(os.path.basename(p) for p in jobs),
                           sum(os.path.getsize(p) for p in jobs if os.path.exists(p)))
        records = load_jobs(jobs, jobs_format, cluster, progress.advance if progress else None)
        if progress:
            progress.done()
        return from_jobs(slos, records, start, end, step, progress)
    from hpcwatch.slo.history.prom import PrometheusClient

    end = time.time() if end is None else end
    start = end - max(s.period_s for s in slos) if start is None else start
    return from_prometheus(slos, PrometheusClient(prometheus), start, end, step, prometheus_source, progress)


def render(report: Report, fmt: str, series: bool = True) -> str:
    if fmt == "html":
        from hpcwatch.slo.history.html import render_html
        return render_html(report)
    if fmt == "json":
        from hpcwatch.slo.history.jsonout import render_json
        return render_json(report, series)
    from hpcwatch.slo.history.text import render_text
    return render_text(report)
