"""Neutral job records -> the neutral series an SLI query reads, on a fixed time grid, vectorised.

The families are the ones the scheduler exporter writes from the same records:
`hpc_scheduler_jobs_finished_total{cluster,queue,outcome,cause}` counts a run at its end,
`hpc_scheduler_queue_wait_seconds{cluster,queue}` observes start - eligible at its start,
`hpc_scheduler_turnaround_seconds{cluster,queue}` observes end - submit of a successful run at its end,
and the gauge histogram `hpc_scheduler_pending_wait_seconds{cluster,queue}` holds the runs pending at
each instant. An `increase(x[w])` at grid time t counts the events in (t - w, t], which is what
Prometheus returns for a counter sampled at t - w and t.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from hpcwatch.slo.history.query import Linear, Matcher, Term, UnsupportedQuery

FINISHED = "hpc_scheduler_jobs_finished_total"
WAIT = "hpc_scheduler_queue_wait_seconds"
PENDING = "hpc_scheduler_pending_wait_seconds"
TURNAROUND = "hpc_scheduler_turnaround_seconds"
FAMILY_LABELS = {FINISHED: ("cluster", "queue", "outcome", "cause"), WAIT: ("cluster", "queue"),
                 PENDING: ("cluster", "queue"), TURNAROUND: ("cluster", "queue")}


@dataclasses.dataclass(frozen=True)
class Grid:
    """Evaluation times start, start + step, ... (n of them); start is a multiple of step, like Prometheus'
    subquery and query_range alignment."""

    start: int
    step: int
    n: int

    @classmethod
    def covering(cls, t0: float, t1: float, step: int) -> Grid:
        start = int(np.floor(t0 / step)) * step
        end = int(np.ceil(t1 / step)) * step
        return cls(start, step, max(1, (end - start) // step + 1))

    @property
    def end(self) -> int:
        return self.start + (self.n - 1) * self.step

    def times(self) -> np.ndarray:
        return self.start + self.step * np.arange(self.n, dtype="int64")

    def index_ge(self, t: np.ndarray) -> np.ndarray:
        """Index of the first grid time >= t (events at t count from that evaluation on)."""
        return np.ceil((t - self.start) / self.step).astype("int64")

    def index_gt(self, t: np.ndarray) -> np.ndarray:
        return (np.floor((t - self.start) / self.step) + 1).astype("int64")

    def steps(self, window_s: int, what: str = "window") -> int:
        if window_s % self.step:
            raise ValueError(f"{what} {window_s}s is not a multiple of the step {self.step}s: choose a step "
                             "that divides every alert window (5m, 1m)")
        return window_s // self.step


def _family(metric: str) -> tuple[str, str]:
    for fam in (FINISHED, WAIT, PENDING, TURNAROUND):
        if metric == fam:
            return fam, ""
        for suffix in ("_count", "_bucket", "_sum"):
            if fam != FINISHED and metric == fam + suffix:
                return fam, suffix
    raise UnsupportedQuery(f"{metric} is not a family job records give (they give {FINISHED}, {WAIT}, {PENDING}, "
                           f"{TURNAROUND})")


def _label_mask(frame: pd.DataFrame, fam: str, matchers: tuple[Matcher, ...]) -> tuple[np.ndarray, float | None]:
    """Rows whose labels match, and the `le` bound of a _bucket selector."""
    mask = np.ones(len(frame), dtype=bool)
    le = None
    for m in matchers:
        if m.label == "le":
            if m.op != "=":
                raise UnsupportedQuery("le matched other than with =")
            le = float("inf") if m.value == "+Inf" else float(m.value)
            continue
        if m.label == "__name__":
            continue
        if m.label not in FAMILY_LABELS[fam]:
            if not m.matches(""):
                mask[:] = False
            continue
        col = frame[m.label]
        cats = np.array([m.matches(str(v)) for v in col.cat.categories] + [m.matches("")], dtype=bool)
        mask &= cats[col.cat.codes.to_numpy()]   # code -1 (missing) reads the last entry: ''
    return mask, le


SCOPE_LABELS = ("cluster", "queue")


def scope_rows(frame: pd.DataFrame, term: Term) -> np.ndarray:
    """Rows whose cluster and queue the term's matchers accept (outcome, cause and le left aside)."""
    fam, _ = _family(term.metric)
    return _label_mask(frame, fam, tuple(m for m in term.matchers if m.label in SCOPE_LABELS))[0]


class RecordSeries:
    """Per-term event counts of one job-records frame on one grid, cached (terms repeat across SLOs)."""

    def __init__(self, frame: pd.DataFrame, grid: Grid) -> None:
        self.frame = frame
        self.grid = grid
        self._cum: dict[Term, np.ndarray] = {}
        self._gauge: dict[Term, np.ndarray] = {}
        begin = frame["eligible"].fillna(frame["submit"]).to_numpy()
        self.start = frame["start"].to_numpy()
        self.wait = np.maximum(0.0, self.start - begin)         # NaN when it never started or no eligible
        self.success = (frame["outcome"] == "success").to_numpy()
        # Submit to end of a successful run (NaN otherwise), observed at its end as the exporter does.
        self.turnaround = np.where(self.success, np.maximum(0.0, frame["end"].to_numpy() - frame["submit"].to_numpy()),
                                   np.nan)
        self.begin = begin
        self.end = frame["end"].to_numpy()
        self.count = frame["count"].to_numpy().astype("float64")
        # The records begin with their first end: a window reaching back before it is in warm-up.
        first = float(np.nanmin(self.end)) if len(self.end) and not np.isnan(self.end).all() else None
        self.data_start = None if first is None else max(grid.start, int(np.floor(first / grid.step)) * grid.step)

    def _cumulative(self, term: Term) -> np.ndarray:
        """Cumulative events up to each grid time (length n + 1, index 0 = before the grid)."""
        if term in self._cum:
            return self._cum[term]
        fam, suffix = _family(term.metric)
        mask, le = _label_mask(self.frame, fam, term.matchers)
        if fam == FINISHED:
            times, weight = self.end, self.count
        else:
            times, value = (self.end, self.turnaround) if fam == TURNAROUND else (self.start, self.wait)
            weight = self.count
            mask = mask & ~np.isnan(value)
            if suffix == "_bucket":
                if le is None:
                    raise UnsupportedQuery(f"{term.metric} without le")
                mask &= value <= le
            elif suffix == "_sum":
                weight = value * self.count
            elif suffix != "_count":
                raise UnsupportedQuery(f"{term.metric}: use _count, _bucket or _sum")
        idx = self.grid.index_ge(times[mask])
        ok = (idx >= 0) & (idx < self.grid.n)
        bins = np.bincount(idx[ok], weights=weight[mask][ok], minlength=self.grid.n)
        cum = np.concatenate(([0.0], np.cumsum(bins)))
        self._cum[term] = cum
        return cum

    def _pending(self, term: Term) -> np.ndarray:
        """Runs pending at each grid time (begin <= t < start, or < end for runs that never started)."""
        if term in self._gauge:
            return self._gauge[term]
        fam, suffix = _family(term.metric)
        if fam != PENDING or suffix not in ("_count", "_bucket"):
            raise UnsupportedQuery(f"{term.metric} as an instant gauge (job records give {PENDING}_count/_bucket)")
        mask, le = _label_mask(self.frame, fam, term.matchers)
        stop = np.where(np.isnan(self.start), self.end, self.start)
        mask &= ~np.isnan(self.begin) & ~np.isnan(stop)
        lo = self.grid.index_ge(self.begin[mask])
        hi = self.grid.index_ge(stop[mask])
        if suffix == "_bucket":
            if le is None:
                raise UnsupportedQuery(f"{term.metric} without le")
            if le != float("inf"):
                hi = np.minimum(hi, self.grid.index_gt(self.begin[mask] + le))
        n = self.grid.n
        lo, hi = np.clip(lo, 0, n), np.clip(hi, 0, n)
        keep = hi > lo
        w = self.count[mask][keep]
        diff = np.bincount(lo[keep], weights=w, minlength=n + 1) - np.bincount(hi[keep], weights=w, minlength=n + 1)
        out = np.cumsum(diff)[:n]
        self._gauge[term] = out
        return out

    def evaluate(self, q: Linear, window_s: int) -> np.ndarray:
        """The query's value at every grid time with `{{.window}}` = window_s."""
        out = np.full(self.grid.n, q.const, dtype="float64")
        for term, coef in q.terms:
            if term.func == "gauge":
                out += coef * self._pending(term)
                continue
            w = term.window_s or window_s
            k = self.grid.steps(w, "range")
            cum = self._cumulative(term)
            idx = np.arange(1, self.grid.n + 1)
            counted = cum[idx] - cum[np.maximum(idx - k, 0)]
            out += coef * (counted / w if term.func == "rate" else counted)
        return out

    def step_counts(self, q: Linear) -> np.ndarray:
        """Events per step, for the attained SLI over the range: each run counted once.

        Counter terms count what happened in each step; an instant gauge (runs pending past the
        threshold now) is a state, not events, so it counts once, at the last grid time: the runs
        still pending then. Summing it at every step would count a run that waits three hours 36
        times at a 5-minute step.
        """
        out = np.zeros(self.grid.n, dtype="float64")
        out[-1] = q.const
        for term, coef in q.terms:
            if term.func == "gauge":
                out[-1] += coef * self._pending(term)[-1]
            else:
                out += coef * self.evaluate(Linear(((term, 1.0),)), self.grid.step)
        return out

    def validate(self, q: Linear) -> None:
        """Raise UnsupportedQuery now (not mid-report) for a query these records cannot answer."""
        for term, _ in q.terms:
            fam, _ = _family(term.metric)
            if term.func == "gauge" and fam != PENDING:
                raise UnsupportedQuery(f"{term.metric} as an instant gauge")


def sli_from_records(slo, series: RecordSeries):
    """SLIData for one EventsSLI from job records; raises UnsupportedQuery for queries they cannot answer."""
    from hpcwatch.slo.history.compute import SLIData, error_ratio
    from hpcwatch.slo.history.query import parse_sli_query
    from hpcwatch.slo.model import EventsSLI

    if not isinstance(slo.sli, EventsSLI):
        raise UnsupportedQuery("a raw error-ratio SLI (job records count events; use --prometheus)")
    err_q, tot_q = parse_sli_query(slo.sli.error_query), parse_sli_query(slo.sli.total_query)
    series.validate(err_q)
    series.validate(tot_q)
    ratio, events = {}, {}
    for w in sorted(set(slo.windows.windows())):
        total = series.evaluate(tot_q, w)
        ratio[w] = error_ratio(series.evaluate(err_q, w), total)
        if w in slo.windows.long_windows():
            events[w] = total * w if slo.events_per_second else total
    return SLIData(series.grid.times(), ratio, events, series.step_counts(err_q), series.step_counts(tot_q),
                   series.data_start)
