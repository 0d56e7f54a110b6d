"""Pure generators: one immutable SLO in, Prometheus rules out (Sloth's rule by rule, plus the guard).

Each kind of rule is its own small function: SLI recordings, metadata recordings, alerts and
hpcwatch's low-traffic guard. Names come from `conventions`; numbers are printed as Go prints them.
"""

from __future__ import annotations

import dataclasses

from hpcwatch.slo import conventions as c
from hpcwatch.slo.goformat import go_float, go_float_f, go_hours, label_filter, prom_duration
from hpcwatch.slo.model import SLO, EventsSLI
from hpcwatch.slo.validate import render_window

from hpcwatch.version import __version__

SLOTH_VERSION = f"hpcwatch-{__version__}"


@dataclasses.dataclass(frozen=True)
class AlertCondition:
    """One half of a page or ticket alert: both windows above `threshold` (factor x budget), and, when
    `min_events` is set, at least that many events in the long window."""

    severity: str
    speed: str
    short_s: int
    long_s: int
    factor: float
    threshold: float
    min_events: int | None


def alert_conditions(slo: SLO) -> list[AlertCondition]:
    """The exact conditions the alerts evaluate, for the dashboards and the backtest engine."""
    out = []
    for severity, quick, slow in slo.burn_windows():
        for speed, w in (("quick", quick), ("slow", slow)):
            out.append(AlertCondition(severity, speed, w.short_s, w.long_s, w.factor,
                                      w.factor * slo.error_budget, slo.min_events))
    return out


def _merge(*maps) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in maps:
        out.update(m)
    return dict(sorted(out.items()))


def _rule(record: str | None = None, alert: str | None = None, expr: str = "", labels=None,
          annotations=None) -> dict:
    r: dict = {"record": record} if record else {"alert": alert}
    r["expr"] = expr
    if labels:
        r["labels"] = labels
    if annotations:
        r["annotations"] = annotations
    return r


def sli_recordings(slo: SLO) -> list[dict]:
    """slo:sli_error:ratio_rate<w> for every alert window, and the period one averaged from the 5m rule."""
    ids = c.id_labels(slo)
    rules = []
    for w in slo.windows.windows():
        rules.append(_rule(record=c.sli_error_metric(w), expr=_sli_expr(slo, prom_duration(w)),
                           labels=_merge(ids, {c.LABEL_WINDOW: prom_duration(w)}, slo.labels)))
    short = slo.windows.page_quick.short_s
    metric, flt, period = c.sli_error_metric(short), label_filter(ids), prom_duration(slo.period_s)
    # The mean of ratios is not the ratio of sums, but the 5m ratios are all weighted the same, so
    # sum_over_time / count_over_time of them is the period's ratio at the cost of one cheap series.
    expr = (f"sum_over_time({metric}{flt}[{period}])\n/ ignoring ({c.LABEL_WINDOW})\n"
            f"count_over_time({metric}{flt}[{period}])\n")
    rules.append(_rule(record=c.sli_error_metric(slo.period_s), expr=expr,
                       labels=_merge(ids, {c.LABEL_WINDOW: period}, slo.labels)))
    return rules


def _sli_expr(slo: SLO, window: str) -> str:
    if isinstance(slo.sli, EventsSLI):
        # `(total) > 0` drops windows without events: a 0/0 NaN or x/0 +Inf would otherwise poison
        # the period's sum_over_time for the whole period.
        return render_window(f"({slo.sli.error_query})\n/\n(({slo.sli.total_query}) > 0)\n", window)
    return render_window(f"({slo.sli.error_ratio_query})", window)


def meta_recordings(slo: SLO, sloth_version: str = SLOTH_VERSION) -> list[dict]:
    """Objective, budget, period, burn rates and the info series Sloth's dashboards read."""
    ids = c.id_labels(slo)
    labels = _merge(ids, slo.labels)
    flt = label_filter(ids)
    ratio = go_float(slo.objective_ratio)

    def burn(window_s: int) -> str:
        return (f"{c.sli_error_metric(window_s)}{flt}\n/ on({c.LABEL_ID}, {c.LABEL_SLO}, {c.LABEL_SERVICE}) "
                f"group_left\n{c.ERROR_BUDGET_RATIO}{flt}\n")

    info = _merge(labels, {c.LABEL_VERSION: sloth_version, c.LABEL_MODE: slo.mode, c.LABEL_SPEC: slo.spec,
                           c.LABEL_OBJECTIVE: go_float_f(slo.objective)}, slo.info_labels)
    return [
        _rule(record=c.OBJECTIVE_RATIO, expr=f"vector({ratio})", labels=labels),
        _rule(record=c.ERROR_BUDGET_RATIO, expr=f"vector(1-{ratio})", labels=labels),
        _rule(record=c.TIME_PERIOD_DAYS, expr=f"vector({go_float(go_hours(slo.period_s) / 24)})", labels=labels),
        _rule(record=c.CURRENT_BURN_RATE, expr=burn(slo.windows.page_quick.short_s), labels=labels),
        _rule(record=c.PERIOD_BURN_RATE, expr=burn(slo.period_s), labels=labels),
        _rule(record=c.PERIOD_BUDGET_REMAINING, expr=f"1 - {c.PERIOD_BURN_RATE}{flt}", labels=labels),
        _rule(record=c.SLO_INFO, expr="vector(1)", labels=info),
    ]


def alert_rules(slo: SLO) -> list[dict]:
    """Page and ticket: (quick short and long above factor x budget) or (slow short and long above)."""
    flt = label_filter(c.id_labels(slo))
    budget = go_float(slo.error_budget)
    rules = []
    for severity, quick, slow in slo.burn_windows():
        meta = slo.page_alert if severity == c.SEVERITY_PAGE else slo.ticket_alert
        parts = []
        for w in (quick, slow):
            cond = (f"    max({c.sli_error_metric(w.short_s)}{flt} > ({go_float(w.factor)} * {budget})) "
                    f"without ({c.LABEL_WINDOW})\n    and\n"
                    f"    max({c.sli_error_metric(w.long_s)}{flt} > ({go_float(w.factor)} * {budget})) "
                    f"without ({c.LABEL_WINDOW})\n")
            if slo.min_events:
                # Low traffic: one failed job among ten is a 1000x burn; require evidence first.
                cond += (f"    and\n    max({c.sli_events_metric(w.long_s)}{flt} >= {slo.min_events}) "
                         f"without ({c.LABEL_WINDOW})\n")
            parts.append(f"(\n{cond})")
        title = (f"({severity}) {{{{$labels.{c.LABEL_SERVICE}}}}} {{{{$labels.{c.LABEL_SLO}}}}} "
                 "SLO error budget burn rate is too fast.")
        summary = (f"{{{{$labels.{c.LABEL_SERVICE}}}}} {{{{$labels.{c.LABEL_SLO}}}}} "
                   "SLO error budget burn rate is over expected.")
        rules.append(_rule(alert=meta.name, expr="\nor\n".join(parts) + "\n",
                           labels=_merge({c.LABEL_SEVERITY: severity}, meta.labels),
                           annotations=_merge({"title": title, "summary": summary}, meta.annotations)))
    return rules


def guard_recordings(slo: SLO) -> list[dict]:
    """slo:sli_events:count<long window>: events the SLI saw, for the min_events guard."""
    if not slo.min_events or not isinstance(slo.sli, EventsSLI):
        return []
    ids = c.id_labels(slo)
    rules = []
    for w in slo.windows.long_windows():
        total = render_window(slo.sli.total_query, prom_duration(w))
        # A rate query gives events per second; the guard counts events.
        expr = f"({total}) * {w}" if slo.events_per_second else f"({total})"
        rules.append(_rule(record=c.sli_events_metric(w), expr=expr,
                           labels=_merge(ids, {c.LABEL_WINDOW: prom_duration(w)}, slo.labels)))
    return rules


def _group(name: str, rules: list[dict], interval: int | None) -> dict:
    g: dict = {"name": name}
    if interval:
        g["interval"] = prom_duration(interval)
    g["rules"] = rules
    return g


def slo_groups(slo: SLO, sloth_version: str = SLOTH_VERSION) -> list[dict]:
    """The rule groups of one SLO, in Sloth's order (SLI, meta, alerts) then the guard group."""
    groups = [_group(c.group_sli(slo.id), sli_recordings(slo), slo.intervals.sli),
              _group(c.group_meta(slo.id), meta_recordings(slo, sloth_version), slo.intervals.meta)]
    alerts = alert_rules(slo)
    if alerts:
        groups.append(_group(c.group_alerts(slo.id), alerts, slo.intervals.alerts))
    guard = guard_recordings(slo)
    if guard:
        groups.append(_group(c.group_guard(slo.id), guard, slo.intervals.sli))
    return groups


def generate_rules(slos: list[SLO], sloth_version: str = SLOTH_VERSION) -> dict:
    """A Prometheus rule file document `{"groups": [...]}` for the SLOs, in input order."""
    groups: list[dict] = []
    for slo in slos:
        groups.extend(slo_groups(slo, sloth_version))
    return {"groups": groups}
