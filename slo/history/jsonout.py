"""The JSON report: the summary, alerts and input account per SLO, and the series at the report step."""

from __future__ import annotations

import json
import math

from hpcwatch.slo.history.report import Report
from hpcwatch.slo.history.verdict import verdict

from hpcwatch.version import __version__


def _clean(v):
    if isinstance(v, float) and (math.isnan(v) or math.isinf(v)):
        return None
    return v


def _col(series) -> list:
    return [_clean(float(x)) if not isinstance(x, (bool,)) else bool(x) for x in series.tolist()]


def report_dict(report: Report, series: bool = True) -> dict:
    slos = []
    for h in report.histories:
        f = h.frame
        item = {
            "id": h.slo.id, "service": h.slo.service, "name": h.slo.name, "objective": h.slo.objective,
            "period_s": h.slo.period_s, "labels": dict(h.slo.labels), "min_events": h.slo.min_events,
            "summary": {k: _clean(v) if not isinstance(v, dict) else {a: _clean(b) for a, b in v.items()}
                        for k, v in h.summary.items()},
            "verdict": verdict(h, report.end),
            "alert_conditions": [{"severity": c.severity, "speed": c.speed, "short_s": c.short_s, "long_s": c.long_s,
                                  "factor": c.factor, "threshold": c.threshold, "min_events": c.min_events}
                                 for c in h.conditions],
            "alerts": [{"severity": e.severity, "alert": e.alert, "fired": e.fired, "resolved": e.resolved,
                        "conditions": list(e.conditions), "peak_burn": _clean(e.peak_burn)} for e in h.episodes],
        }
        if series:
            item["series"] = {"time": [int(t) for t in f.index.tolist()],
                              **{c: _col(f[c]) for c in f.columns if not c.startswith("cond_")}}
        slos.append(item)
    return {
        "generator": f"hpcwatch {__version__} slo report", "source": report.source,
        "start": report.start, "end": report.end, "step_s": report.step,
        "input": report.input.to_dict() if report.input else None,
        "slos": slos,
        "skipped": [{"id": s.id, "reason": why} for s, why in report.skipped],
    }


def render_json(report: Report, series: bool = True) -> str:
    return json.dumps(report_dict(report, series), indent=1, allow_nan=False) + "\n"
