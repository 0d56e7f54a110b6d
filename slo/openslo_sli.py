"""OpenSLO SLIs and budgeting methods as SLI queries over `{{.window}}`, so every window's error ratio
`slo:sli_error:ratio_rate<w>` (and with it Sloth's metadata, the alerts and their tests) means what
OpenSLO says, whatever the method:

- ratioMetric, `counter: true`: each query's series become `increase(series[{{.window}}])` (events in
  the window); `counter: false`: `sum_over_time(series[{{.window}}])` (each sample counts its events);
  a query that already holds `{{.window}}` is used as written. `good` gives errors `total - good`.
- raw (`rawType: success|failure`): the ratio is averaged over the window (a 1m subquery), or used as
  written when it holds `{{.window}}`.
- thresholdMetric: every minute is one occurrence, bad when the value fails `op value`.
- Occurrences: errors / events in the window.
- Timeslices: the window is cut into `timeSliceWindow` slices aligned to the epoch (a subquery with
  that step); a slice is bad when its good ratio is below `timeSliceTarget`; the error ratio is the
  fraction of bad slices. Slices without events count neither way.
- RatioTimeslices: the mean of the slices' error ratios.
"""

from __future__ import annotations

import dataclasses
import re

from hpcwatch.slo.generate import events_ratio
from hpcwatch.slo.goformat import go_float, prom_duration
from hpcwatch.slo.model import EventsSLI, RawSLI
from hpcwatch.slo.validate import Fields, check_query, render_window

W = "{{.window}}"
_SENTINEL = "[999w]"  # stands for [{{.window}}] while the query is a parsed AST
_INVERSE = {"lt": ">=", "lte": ">", "gt": "<=", "gte": "<"}  # bad when the good comparison fails
SAMPLE = "1m"  # resolution of threshold and raw-ratio samples: one occurrence a minute


@dataclasses.dataclass(frozen=True)
class Budgeting:
    method: str  # Occurrences, Timeslices, RatioTimeslices
    slice: str | None = None  # Prometheus duration of a time slice
    slice_target: float | None = None  # Timeslices: a slice is good when its good ratio >= this


@dataclasses.dataclass(frozen=True)
class RatioQueries:
    """A ratioMetric as read from the SLI: windowed query templates (None when absent)."""

    good: str | None = None
    bad: str | None = None
    total: str | None = None
    raw: str | None = None
    raw_type: str = "failure"


def windowed(f: Fields, query: str, field: str, counter: bool | None) -> str:
    """The query as a `{{.window}}` template: as written, or its series wrapped per `counter`."""
    import promql_parser as p

    check_query(query, f, field, windowed=False)
    if "{{" in query:
        return query
    if counter is None:
        raise f.fail(field, "a query with {{.window}}, or ratioMetric.counter: true (counters: hpcwatch takes "
                     "increase over each window) or false (each sample counts events: sum_over_time)", query)
    expr = p.parse(query)
    ranges: list = []
    p.walk(expr, pre_visit=lambda n: ranges.append(n) if isinstance(n, (p.MatrixSelector, p.SubqueryExpr))
           else None)
    if ranges:
        raise f.fail(field, "no fixed range in a counter query: hpcwatch puts each window's range on its series "
                     "(or write [{{.window}}] yourself)", query)
    func = "increase" if counter else "sum_over_time"

    def wrap(node):
        if not isinstance(node, p.VectorSelector):
            return None
        if node.at is not None or (node.offset is not None and node.offset.total_seconds() < 0):
            raise f.fail(field, "a counter query without @ or negative offsets", query)
        text = (node.name or "") + (str(node.matchers) if node.matchers.matchers or not node.name else "")
        tail = f" offset {p.display_duration(node.offset)}" if node.offset else ""
        return p.parse(f"{func}({text}{_SENTINEL}{tail})")

    # The parser prints a bare metric name as `name{}`; write it as people do.
    out = re.sub(r"([a-zA-Z0-9_:])\{\}", r"\1", str(p.transform(expr, post_visit=wrap))).replace(_SENTINEL, f"[{W}]")
    if isinstance(expr, p.AggregateExpr) and str(expr.op) == "sum" and expr.modifier is None:
        return out
    # One series for the SLO: OpenSLO's good, bad and total are single numbers.
    return f"sum({out})"


def _slices(ratio: str, b: Budgeting) -> str:
    """Error ratio over the window from per-slice error ratios (Timeslices or RatioTimeslices)."""
    per_slice = render_window(ratio, b.slice)
    if b.method == "Timeslices":
        per_slice = f"(1 - ({per_slice.strip()})) < bool {go_float(b.slice_target)}"
    return f"avg_over_time(({per_slice.strip()})[{W}:{b.slice}])"


def ratio_sli(q: RatioQueries, b: Budgeting) -> EventsSLI | RawSLI:
    if q.raw is not None:
        ratio = q.raw if q.raw_type == "failure" else f"1 - ({q.raw})"
        if "{{" not in q.raw and b.method == "Occurrences":
            return RawSLI(f"avg_over_time(({ratio})[{W}:{SAMPLE}])")
        if b.method == "Occurrences":
            return RawSLI(ratio)
        if "{{" in q.raw:
            raise ValueError("a raw ratio with {{.window}} cannot be cut into time slices; "
                             "give the instant ratio")
        return RawSLI(_slices(f"avg_over_time(({ratio})[{W}:{SAMPLE}])", b))
    error = q.bad if q.bad is not None else f"({q.total}) - ({q.good})"
    if b.method == "Occurrences":
        # Errors and events, so the guard and min_events can count them.
        return EventsSLI(error, q.total)
    return RawSLI(_slices(events_ratio(error, q.total, True), b))


def threshold_sli(query: str, op: str, value: float, b: Budgeting) -> RawSLI:
    """Every minute is an occurrence: bad when the value fails `op value`."""
    bad = f"({query.strip()}) {_INVERSE[op]} bool {go_float(value)}"
    per_sample = f"avg_over_time(({bad})[{W}:{SAMPLE}])"
    if b.method == "Occurrences":
        return RawSLI(per_sample)
    return RawSLI(_slices(per_sample, b))


def slice_duration(f: Fields, value: object, field: str) -> str:
    """`timeSliceWindow`: a duration shorthand, or a number of minutes."""
    from hpcwatch.slo.openslo_time import nominal_seconds, parse_shorthand

    if isinstance(value, (int, float)) and not isinstance(value, bool) and value > 0 and value == int(value):
        return prom_duration(int(value) * 60)
    try:
        n, unit = parse_shorthand(value)
    except ValueError:
        raise f.fail(field, "a time slice such as 1m or 5m (a number means minutes)", value) from None
    if unit in "MQY":
        raise f.fail(field, "a time slice of seconds to weeks", value)
    return prom_duration(nominal_seconds(n, unit))
