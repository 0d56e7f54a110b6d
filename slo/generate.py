"""Pure generators: one immutable SLO in, Prometheus rules out (Sloth's rule by rule, plus the guard).

Each kind of rule is its own small function: SLI recordings, metadata recordings, alerts and
hpcwatch's low-traffic guard. They run as Sloth's default SLO plugin chain (`plugins.py`), so
Sloth's built-in plugins can replace or extend them. Names come from `conventions`; numbers are
printed as Go prints them.
"""

from __future__ import annotations

import dataclasses

from hpcwatch.slo import conventions as c
from hpcwatch.slo.goformat import go_float, go_float_f, go_hours, label_filter, prom_duration
from hpcwatch.slo.model import SLO, EventsSLI, PluginCall
from hpcwatch.slo.validate import render_window

from hpcwatch.version import __version__

SLOTH_VERSION = f"hpcwatch-{__version__}"
_OPS = {"lt": "<", "lte": "<=", "gt": ">", "gte": ">="}


@dataclasses.dataclass(frozen=True)
class Options:
    """What `hpcwatch slo generate` options change in the rules.

    `guard` writes `((total) > 0)` as the events SLI's denominator (hpcwatch's; `--sloth-compatible`
    drops it); `recordings`/`alerts` are Sloth's --disable-recordings/--disable-alerts;
    `cli_plugins` Sloth's --slo-plugins chain; `default_plugins` False is --disable-default-slo-plugins.
    """

    sloth_version: str = SLOTH_VERSION
    guard: bool = True
    recordings: bool = True
    alerts: bool = True
    cli_plugins: tuple[PluginCall, ...] = ()
    default_plugins: bool = True


DEFAULT_OPTIONS = Options()


@dataclasses.dataclass
class RuleGroup:
    name: str
    interval: int | None = None
    rules: list[dict] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class SLORules:
    """What the plugin chain builds for one SLO (Sloth's PromSLORules): three groups plus extras."""

    sli: RuleGroup
    meta: RuleGroup
    alerts: RuleGroup
    extra: list[RuleGroup] = dataclasses.field(default_factory=list)


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


def merge_labels(*maps) -> dict[str, str]:
    out: dict[str, str] = {}
    for m in maps:
        out.update(m)
    return dict(sorted(out.items()))


def rule(record: str | None = None, alert: str | None = None, expr: str = "", labels=None,
         annotations=None, for_s: int | None = None) -> dict:
    r: dict = {"record": record} if record else {"alert": alert}
    r["expr"] = expr
    if for_s:
        r["for"] = prom_duration(for_s)
    if labels:
        r["labels"] = labels
    if annotations:
        r["annotations"] = annotations
    return r


def events_ratio(error: str, total: str, guard: bool) -> str:
    """Sloth's `(error)\\n/\\n(total)\\n`; hpcwatch's guard `((total) > 0)` drops windows without
    events, whose 0/0 NaN or x/0 +Inf would otherwise poison the period's sum_over_time."""
    return f"({error})\n/\n(({total}) > 0)\n" if guard else f"({error})\n/\n({total})\n"


def period_metric(slo: SLO) -> str:
    """The period's error ratio series: rolling `ratio_rate<period>`, or calendar-to-date."""
    return c.sli_calendar_metric(slo.calendar.duration) if slo.calendar else c.sli_error_metric(slo.period_s)


def period_recording(slo: SLO) -> dict:
    """The period's error ratio: the mean of the shortest window's ratios (Sloth's optimized rule).

    The mean of ratios is not the ratio of sums, but the 5m ratios are all weighted the same, so
    sum_over_time / count_over_time of them is the period's ratio at the cost of one cheap series.
    A calendar period only averages the ratios since its last boundary (the budget resets there).
    """
    ids = c.id_labels(slo)
    metric = c.sli_error_metric(slo.windows.page_quick.short_s) + label_filter(ids)
    period = prom_duration(slo.period_s)
    if slo.calendar is None:
        rng = f"[{period}]"
    else:
        idx = c.CALENDAR_INDEX + label_filter(ids)
        step = prom_duration(slo.windows.page_quick.short_s)
        metric = f"({metric} and on() ({idx} == {idx} @ end()))"
        rng = f"[{prom_duration(slo.calendar.max_s)}:{step}]"
    expr = (f"sum_over_time({metric}{rng})\n/ ignoring ({c.LABEL_WINDOW})\n"
            f"count_over_time({metric}{rng})\n")
    window = slo.calendar.duration if slo.calendar else period
    return rule(record=period_metric(slo), expr=expr, labels=merge_labels(ids, {c.LABEL_WINDOW: window}, slo.labels))


def sli_expr(slo: SLO, window: str, guard: bool = True) -> str:
    if isinstance(slo.sli, EventsSLI):
        return render_window(events_ratio(slo.sli.error_query, slo.sli.total_query, guard), window)
    return render_window(f"({slo.sli.error_ratio_query})", window)


def sli_recordings(slo: SLO, guard: bool = True, optimized: bool = True) -> list[dict]:
    """slo:sli_error:ratio_rate<w> for every window, and the period's.

    A period that is also an alert window (`--period 3d`) keeps the one exact window rule."""
    ids = c.id_labels(slo)
    rules = []
    if slo.calendar is not None:
        rules.append(rule(record=c.CALENDAR_INDEX, expr=slo.calendar.index_expr, labels=merge_labels(ids, slo.labels)))
    windows = slo.sli_windows()
    for w in windows:
        rules.append(rule(record=c.sli_error_metric(w), expr=sli_expr(slo, prom_duration(w), guard),
                          labels=merge_labels(ids, {c.LABEL_WINDOW: prom_duration(w)}, slo.labels)))
    if slo.calendar is not None:
        rules.append(period_recording(slo))
    elif slo.period_s not in windows:
        if optimized:
            rules.append(period_recording(slo))
        else:
            rules.append(rule(record=c.sli_error_metric(slo.period_s),
                              expr=sli_expr(slo, prom_duration(slo.period_s), guard),
                              labels=merge_labels(ids, {c.LABEL_WINDOW: prom_duration(slo.period_s)}, slo.labels)))
    return rules


def meta_recordings(slo: SLO, sloth_version: str = SLOTH_VERSION) -> list[dict]:
    """Objective, budget, period, burn rates and the info series Sloth's dashboards read."""
    ids = c.id_labels(slo)
    labels = merge_labels(ids, slo.labels)
    flt = label_filter(ids)
    ratio = go_float(slo.objective_ratio)

    def burn(metric: str) -> str:
        return (f"{metric}{flt}\n/ on({c.LABEL_ID}, {c.LABEL_SLO}, {c.LABEL_SERVICE}) "
                f"group_left\n{c.ERROR_BUDGET_RATIO}{flt}\n")

    info = merge_labels(labels, {c.LABEL_VERSION: sloth_version, c.LABEL_MODE: slo.mode, c.LABEL_SPEC: slo.spec,
                                 c.LABEL_OBJECTIVE: go_float_f(slo.objective)}, slo.info_labels)
    remaining = f"1 - {c.PERIOD_BURN_RATE}{flt}"
    calendar = []
    if slo.calendar is not None:
        # Only the elapsed part of a calendar period has spent budget: at the boundary it is whole again.
        calendar.append(rule(record=c.CALENDAR_ELAPSED, labels=labels, expr=slo.calendar.elapsed_expr))
        remaining = (f"1 - {c.PERIOD_BURN_RATE}{flt}\n* on({c.LABEL_ID}, {c.LABEL_SLO}, {c.LABEL_SERVICE}) "
                     f"group_left\n{c.CALENDAR_ELAPSED}{flt}\n")
    return [
        rule(record=c.OBJECTIVE_RATIO, expr=f"vector({ratio})", labels=labels),
        rule(record=c.ERROR_BUDGET_RATIO, expr=f"vector(1-{ratio})", labels=labels),
        rule(record=c.TIME_PERIOD_DAYS, expr=f"vector({go_float(go_hours(slo.period_s) / 24)})", labels=labels),
        rule(record=c.CURRENT_BURN_RATE, expr=burn(c.sli_error_metric(slo.windows.page_quick.short_s)),
             labels=labels),
        rule(record=c.PERIOD_BURN_RATE, expr=burn(period_metric(slo)), labels=labels),
        *calendar,
        rule(record=c.PERIOD_BUDGET_REMAINING, expr=remaining, labels=labels),
        rule(record=c.SLO_INFO, expr="vector(1)", labels=info),
    ]


def alert_rules(slo: SLO) -> list[dict]:
    """Page and ticket: (quick short and long above factor x budget) or (slow short and long above);
    then each OpenSLO burn-rate alert condition."""
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
        rules.append(rule(alert=meta.name, expr="\nor\n".join(parts) + "\n",
                          labels=merge_labels({c.LABEL_SEVERITY: severity}, meta.labels),
                          annotations=merge_labels({"title": title, "summary": summary}, meta.annotations)))
    for a in slo.burn_alerts:
        metric = f"{c.sli_error_metric(a.window_s)}{flt}"
        if a.no_data:
            expr = f"absent({metric})"
        else:
            expr = (f"max({metric} {_OPS[a.op]} ({go_float(a.threshold)} * {budget})) "
                    f"without ({c.LABEL_WINDOW})")
        # absent() keeps the selector's equality labels, so a no-data alert still names its SLO.
        rules.append(rule(alert=a.name, expr=expr, for_s=a.for_s,
                          labels=merge_labels({c.LABEL_SEVERITY: a.severity}, a.labels),
                          annotations=dict(a.annotations) or None))
    return rules


def input_recordings(slo: SLO) -> list[dict]:
    """The recordings the SLI queries read (SLO.inputs), labelled as the SLO's other series."""
    labels = merge_labels(c.id_labels(slo), slo.labels)
    return [rule(record=record, expr=expr, labels=labels) for record, expr in slo.inputs]


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
        rules.append(rule(record=c.sli_events_metric(w), expr=expr,
                          labels=merge_labels(ids, {c.LABEL_WINDOW: prom_duration(w)}, slo.labels)))
    return rules


def slo_rules(slo: SLO, opts: Options = DEFAULT_OPTIONS) -> SLORules:
    """The SLO's rule groups after its plugin chain and the --disable-* options."""
    from hpcwatch.slo.plugins import run_chain

    rules = SLORules(RuleGroup(c.group_sli(slo.id), slo.intervals.sli),
                     RuleGroup(c.group_meta(slo.id), slo.intervals.meta),
                     RuleGroup(c.group_alerts(slo.id), slo.intervals.alerts))
    run_chain(slo, opts, rules)
    if not opts.alerts:
        # The min_events guard only serves the alerts.
        rules.alerts.rules = []
        rules.extra = [g for g in rules.extra if g.name != c.group_guard(slo.id)]
    if not opts.recordings:
        rules.sli.rules, rules.meta.rules = [], []
        rules.extra = [g for g in rules.extra if not all("record" in r for r in g.rules)]
    return rules


def _group(g: RuleGroup) -> dict:
    out: dict = {"name": g.name}
    if g.interval:
        out["interval"] = prom_duration(g.interval)
    out["rules"] = g.rules
    return out


def slo_groups(slo: SLO, sloth_version: str | Options = SLOTH_VERSION) -> list[dict]:
    """The rule groups of one SLO, in Sloth's order (SLI, meta, alerts, extras), empty ones left out;
    the second argument is the sloth_version label, or the whole Options."""
    opts = sloth_version if isinstance(sloth_version, Options) else Options(sloth_version=sloth_version)
    r = slo_rules(slo, opts)
    return [_group(g) for g in (r.sli, r.meta, r.alerts, *r.extra) if g.rules]


def generate_rules(slos: list[SLO], sloth_version: str | Options = SLOTH_VERSION) -> dict:
    """A Prometheus rule file document `{"groups": [...]}` for the SLOs, in input order (the second
    argument is the sloth_version label, or the whole Options)."""
    groups: list[dict] = []
    for slo in slos:
        groups.extend(slo_groups(slo, sloth_version))
    return {"groups": groups}
