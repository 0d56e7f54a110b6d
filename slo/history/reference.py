"""A plain row-by-row Python replay of event SLIs over job records: the oracle the vectorised engine is
tested against, and the baseline `benchmarks/slo_report.py` times it against.

Deliberately naive: one loop over the records per term, one loop over grid times per window, a deque
for the period mean. Counter terms only (no instant gauges).
"""

from __future__ import annotations

import math
from collections import deque

from hpcwatch.slo.generate import alert_conditions
from hpcwatch.slo.history.query import parse_sli_query


def _labels(row: dict) -> dict:
    return {k: row[k] for k in ("cluster", "queue", "outcome", "cause")}


def reference_replay(slo, rows: list[dict], grid_start: int, step: int, n: int, data_start: int | None = None) -> dict:
    """{'ratio': {w: [..]}, 'period': [..], 'budget': [..], 'page': [bool], 'ticket': [bool], 'errors', 'total'}.

    Alerts are replayed only where the condition's long window lies within the data (after `data_start`).
    """
    data_start = grid_start if data_start is None else data_start
    err_q, tot_q = parse_sli_query(slo.sli.error_query), parse_sli_query(slo.sli.total_query)

    def bins(q):
        out = [0.0] * n
        for row in rows:
            end = row["end"]
            if end is None or (isinstance(end, float) and math.isnan(end)):
                continue
            k = math.ceil((end - grid_start) / step)
            if not 0 <= k < n:
                continue
            labels = _labels(row)
            for term, coef in q.terms:
                if term.func == "gauge" or term.metric != "hpc_scheduler_jobs_finished_total":
                    raise ValueError("the reference replays counter terms of the finished-jobs family only")
                if all(m.matches(labels.get(m.label, "")) for m in term.matchers):
                    out[k] += coef * row["count"]
        return out

    eb, tb = bins(err_q), bins(tot_q)
    ratio, events = {}, {}
    for w in slo.windows.windows():
        k = w // step
        rs, es = [], []
        for i in range(n):
            e = sum(eb[max(0, i - k + 1): i + 1])
            t = sum(tb[max(0, i - k + 1): i + 1])
            rs.append(e / t if t > 0 else None)
            es.append(t)
        ratio[w], events[w] = rs, es
    short = ratio[slo.windows.page_quick.short_s]
    span = slo.period_s // step
    window: deque = deque()
    period, budget = [], []
    for i in range(n):
        window.append(short[i])
        if len(window) > span:
            window.popleft()
        vals = [v for v in window if v is not None]
        p = sum(vals) / len(vals) if vals else None
        period.append(p)
        budget.append(None if p is None else 1 - p / (1 - slo.objective_ratio))
    alerts = {"page": [False] * n, "ticket": [False] * n}
    for c in alert_conditions(slo):
        for i in range(n):
            a, b = ratio[c.short_s][i], ratio[c.long_s][i]
            ok = a is not None and b is not None and a > c.threshold and b > c.threshold
            if c.min_events:
                ok = ok and events[c.long_s][i] >= c.min_events
            ok = ok and grid_start + i * step - c.long_s >= data_start
            alerts[c.severity][i] = alerts[c.severity][i] or ok
    return {"ratio": ratio, "period": period, "budget": budget, **alerts, "errors": sum(eb), "total": sum(tb)}
