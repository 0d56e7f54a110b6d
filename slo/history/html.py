"""The HTML report: one self-contained page (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

import html
import time

import numpy as np
from hpcwatch.slo.goformat import prom_duration
from hpcwatch.slo.history.compute import SLOHistory
from hpcwatch.slo.history.report import Report
from hpcwatch.slo.history.svg import HLine, Line, line_chart, timeline
from hpcwatch.slo.history.text import dur, pct, ts
from hpcwatch.slo.history.verdict import verdict

from hpcwatch.version import __version__

PAGE, TICKET = "#d64545", "#e59400"
WINDOW_COLORS = ("#2f6fdf", "#7b52c9", "#16a394", "#8a94a6")

CSS = """
body{font:14px/1.45 -apple-system,'Segoe UI',Roboto,'DejaVu Sans',sans-serif;color:#1d2433;background:#eef1f6;margin:0}
main{max-width:960px;margin:0 auto;padding:24px 16px 60px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:0}h3{font-size:13px;margin:18px 0 4px;color:#4b5567;
text-transform:uppercase;letter-spacing:.04em}
.sub{color:#5b6577;margin:0 0 18px}
section{background:#fff;border-radius:10px;box-shadow:0 1px 3px rgba(20,30,50,.12);padding:18px 20px;margin:18px 0}
table{border-collapse:collapse;width:100%;font-size:13px}th,td{padding:5px 8px;text-align:right;border-bottom:1px solid #edf0f4}
th:first-child,td:first-child{text-align:left}th{color:#5b6577;font-weight:600}
.badge{display:inline-block;padding:2px 9px;border-radius:10px;font-size:12px;font-weight:600;color:#fff;margin-left:8px;
vertical-align:2px}.met{background:#1f9d55}.missed{background:#d64545}.nodata{background:#8a94a6}
.cards{display:flex;gap:10px;flex-wrap:wrap;margin:12px 0 4px}.card{flex:1;min-width:120px;background:#f6f8fb;
border-radius:8px;padding:8px 12px}.card b{display:block;font-size:20px}.card span{color:#5b6577;font-size:12px}
.bad b{color:#d64545}.good b{color:#1f9d55}
.chart{width:100%;height:auto;display:block}.tick{font-size:11px;fill:#6b7588}.ref-label{font-size:11px;font-weight:600}
.lane{font-size:12px;fill:#1d2433;font-weight:600}.none{font-size:12px;fill:#8a94a6}
.legend{font-size:12px;color:#4b5567;margin:2px 0 0}.legend span{white-space:nowrap}
.legend i{display:inline-block;width:18px;height:3px;vertical-align:middle;margin:0 4px 0 12px}
.legend i.hatch{height:10px;background:repeating-linear-gradient(45deg,#eceff4 0 3px,#d5dae3 3px 5px)}
.note{color:#5b6577;font-size:12px}
.verdict{font-size:15px;line-height:1.55;margin:10px 0 6px;max-width:70em}
.warm b{color:#8a94a6}
"""


def _e(s: object) -> str:
    return html.escape(str(s), quote=True)


def _legend(items: list[tuple[str, str]]) -> str:
    """Swatches and names; a name starting 'warm-up' gets the charts' hatch."""
    return '<p class="legend">' + "".join(
        f'<span><i class="hatch"></i>{_e(label)}</span>' if label.startswith("warm-up") else
        f'<span><i style="background:{c}"></i>{_e(label)}</span>' for label, c in items) + "</p>"


def _badge(met: bool | None) -> str:
    if met is None:
        return '<span class="badge nodata">no events</span>'
    return '<span class="badge met">objective met</span>' if met else '<span class="badge missed">objective missed</span>'


def _card(value: str, label: str, cls: str = "") -> str:
    return f'<div class="card {cls}"><b>{_e(value)}</b><span>{_e(label)}</span></div>'


def _warmup_shade(data_start: int, until: int, why: str) -> tuple[float, float, str, str] | None:
    """The hatched warm-up span of a chart, or None when the data already fill the windows."""
    return (float(data_start), float(until), "warm-up", f"warm-up until {ts(until)}: {why}") if until > data_start \
        else None


def _slo_section(h: SLOHistory, report: Report) -> str:
    s, slo, f = h.summary, h.slo, h.frame
    if not len(f):
        return f'<section><h2>{_e(slo.id)}</h2><p>No grid points in the range.</p></section>'
    times = f.index.to_numpy().astype(float)
    obj = slo.objective_ratio
    w_fast, w_slow = slo.windows.page_quick.long_s, slo.windows.ticket_quick.long_s
    sli_fast, sli_slow = 1 - f[f"ratio_{w_fast}"].to_numpy(), 1 - f[f"ratio_{w_slow}"].to_numpy()
    sli_period = 1 - f["ratio_period"].to_numpy()
    finite = sli_slow[~np.isnan(sli_slow)]
    low = min(obj - 3 * (1 - obj), float(np.percentile(finite, 2)) if len(finite) else obj)
    low = max(0.0, low)
    sli_chart = line_chart(
        f"{slo.id}: SLI against the objective", times,
        [Line(f"SLI over {prom_duration(w_fast)}", sli_fast, "#9db8ec", 1.0),
         Line(f"SLI over {prom_duration(w_slow)}", sli_slow, "#2f6fdf", 1.8),
         Line(f"SLI over the {prom_duration(slo.period_s)} period (rules' mean of {prom_duration(slo.windows.page_quick.short_s)} ratios)",
              sli_period, "#1d2433", 1.4, "6 3")],
        [HLine(f"objective {slo.objective:g}%", obj, PAGE)], (low, 1.0), "%")
    rem = f["budget_remaining"].to_numpy()
    warm = f["warmup"].to_numpy()
    full = rem[~warm]
    if not np.isnan(full).all():
        rmin = float(np.nanmin(full))
    else:   # all warm-up: scale to what is there, but a partial period's extremes do not squash the chart
        rmin = max(-1.0, float(np.nanmin(rem))) if not np.isnan(rem).all() else 0.0
    period = prom_duration(slo.period_s)
    budget_shade = _warmup_shade(s["data_start"], s["budget_from"], f"the {period} period reaches back before the "
                                 "data: the budget stands on part of a period and is left out of its lowest point")
    budget_chart = line_chart(
        f"{slo.id}: error budget remaining", times,
        [Line("budget remaining", rem, "#1f9d55" if rmin >= 0 else "#c2410c", 1.8, fill_to=0.0)],
        [HLine("budget exhausted", 0.0, PAGE)], (min(-0.1, rmin * 1.05), 1.05), "%", shade=budget_shade)
    burn_lines, hl, seen = [], [], set()
    longs = sorted({c.long_s for c in h.conditions}) or slo.windows.long_windows()
    for i, w in enumerate(longs):
        burn_lines.append(Line(f"burn rate over {prom_duration(w)}", f[f"burn_{w}"].to_numpy(),
                               WINDOW_COLORS[i % len(WINDOW_COLORS)], 1.3))
    for c in h.conditions:
        if (c.severity, round(c.factor, 6)) in seen:
            continue
        seen.add((c.severity, round(c.factor, 6)))
        hl.append(HLine(f"{c.severity} x{c.factor:.3g} ({prom_duration(c.short_s)}/{prom_duration(c.long_s)})",
                        c.factor, PAGE if c.severity == "page" else TICKET))
    peak = max([float(np.nanmax(ln.values)) for ln in burn_lines if not np.isnan(ln.values).all()] + [1.0])
    top = min(1e4, max(2 * max((c.factor for c in h.conditions), default=1.0), peak * 1.5))
    bands = [(e.fired, e.resolved or report.end, PAGE if e.severity == "page" else TICKET) for e in h.episodes]
    alert_shade = _warmup_shade(s["data_start"], s["alerts_from"], "alert windows reach back before the data: "
                                "each condition is replayed once its long window is full")
    burn_chart = line_chart(f"{slo.id}: burn rate against the alert thresholds", times, burn_lines, hl,
                            (0.1, top), "x", log=True, bands=bands, shade=alert_shade)
    lanes = []
    for sev, color, meta in (("page", PAGE, slo.page_alert), ("ticket", TICKET, slo.ticket_alert)):
        if meta is None:
            continue
        spans = [(e.fired, e.resolved or report.end,
                  (f"{sev} {e.alert}: fired {ts(e.fired)}, "
                   f"{'resolved ' + ts(e.resolved) if e.resolved else 'still firing'} ({dur(e.duration(report.end))})"))
                 for e in h.episodes if e.severity == sev]
        lanes.append((f"{sev}", color, spans))
    tl = timeline(f"{slo.id}: alert timeline", times[0], times[-1], lanes, alert_shade)
    cards = [
        _card(pct(s["attained"], 3), "attained SLI (events)", "" if s["met"] is None else ("good" if s["met"] else "bad")),
        _card(f"{slo.objective:g}%", f"objective over {prom_duration(slo.period_s)}"),
        _card(pct(s["budget_remaining_end"], 1),
              "budget left at the end" if s["budget_complete"] else
              f"budget at the end, warm-up: {dur(s['end'] - s['data_start'])} of {period} in the data",
              ("bad" if (s["budget_remaining_end"] or 0) < 0 else "good") if s["budget_complete"] else "warm"),
        _card(pct(s["budget_remaining_min"], 1),
              f"lowest budget ({ts(s['budget_remaining_min_at'])})" if s["budget_remaining_min"] is not None
              else f"lowest budget: from {ts(s['budget_from'])}, the first full {period} period"),
        _card(f"{s['page_alerts']} / {s['ticket_alerts']}", "page / ticket alerts"),
    ]
    if s["events"] is not None:
        cards.append(_card(f"{s['events']:,.0f}", f"events, {s['error_events']:,.0f} errors"))
    rows = "".join(
        f"<tr><td>{_e(e.severity)}</td><td>{_e(e.alert)}</td><td>{ts(e.fired)}</td>"
        f"<td>{ts(e.resolved) if e.resolved else 'still firing'}</td><td>{dur(e.duration(report.end))}</td>"
        f"<td>{_e('+'.join(e.conditions))}</td><td>x{e.peak_burn:.1f}</td></tr>" for e in h.episodes)
    alerts = (f"<table><tr><th>severity</th><th>alert</th><th>fired (UTC)</th><th>resolved</th><th>for</th>"
              f"<th>condition</th><th>peak burn</th></tr>{rows}</table>" if rows
              else '<p class="note">No page or ticket alert would have fired.</p>')
    guard = f"; alerts need {slo.min_events} events in the long window" if slo.min_events else ""
    return (f'<section id="{_e(slo.id)}"><h2>{_e(slo.id)}{_badge(s["met"])}</h2>'
            f'<p class="verdict">{_e(verdict(h, report.end))}</p>'
            f'<p class="note">{_e(slo.description or slo.service)} · labels '
            f'{_e(", ".join(f"{k}={v}" for k, v in slo.labels.items()) or "none")}{_e(guard)}</p>'
            f'<div class="cards">{"".join(cards)}</div>'
            f"<h3>SLI against the objective</h3>{sli_chart}"
            + _legend([(f"{prom_duration(w_fast)} window", "#9db8ec"), (f"{prom_duration(w_slow)} window", "#2f6fdf"),
                       ("period (rules)", "#1d2433"), ("objective", PAGE)])
            + f"<h3>Error budget remaining (rolling {prom_duration(slo.period_s)})</h3>{budget_chart}"
            + (_legend([("warm-up: budget on part of a period", "#d5dae3")]) if budget_shade else "")
            + f"<h3>Burn rate against the alert thresholds</h3>{burn_chart}"
            + _legend([(ln.label, ln.color) for ln in burn_lines] + [("page threshold", PAGE),
                                                                    ("ticket threshold", TICKET)]
                      + ([("warm-up: windows not yet full", "#d5dae3")] if alert_shade else []))
            + f"<h3>Alert timeline</h3>{tl}<h3>Alerts that would have fired</h3>{alerts}</section>")


def _overview(report: Report) -> str:
    rows = []
    for h in report.histories:
        s = h.summary
        state = "no events" if s["met"] is None else ("met" if s["met"] else "missed")
        rows.append(f'<tr><td><a href="#{_e(h.slo.id)}">{_e(h.slo.id)}</a></td><td>{h.slo.objective:g}%</td>'
                    f'<td>{pct(s["attained"], 3)}</td><td>{pct(s["budget_remaining_end"], 1)}'
                    f'{"" if s["budget_complete"] else "*"}</td>'
                    f'<td>{pct(s["budget_remaining_min"], 1)}</td><td>{s["page_alerts"]}</td>'
                    f'<td>{s["ticket_alerts"]}</td><td>{state}</td></tr>')
    for slo, why in report.skipped:
        rows.append(f'<tr><td>{_e(slo.id)}</td><td>{slo.objective:g}%</td><td colspan="6" class="note">'
                    f'{_e(why)}</td></tr>')
    warm = any(not h.summary["budget_complete"] for h in report.histories)
    note = ('<p class="note">* warm-up: the data do not yet cover a full period, so the budget stands on part of '
            "one; the lowest budget counts full periods only.</p>" if warm else "")
    return ("<section><h2>Summary</h2><table><tr><th>SLO</th><th>objective</th><th>attained</th>"
            "<th>budget left</th><th>lowest budget</th><th>pages</th><th>tickets</th><th></th></tr>"
            + "".join(rows) + "</table>" + note + "</section>")


def _input(report: Report) -> str:
    r = report.input
    if r is None:
        return ""
    rows = "".join(f"<tr><td>{_e(what)}</td><td>{_e(kind)}</td><td>{n:,}</td></tr>" for kind, n, what in r.lines())
    ex = "".join(f"<li><b>{_e(k)}</b>: {_e(v[0])}</li>" for k, v in sorted(r.examples.items()) if v)
    return (f"<section><h2>Input</h2><p>{r.records:,} records read ({_e(r.fmt)}) from {_e(r.source)}; "
            f"{r.used:,} finished runs used.</p>"
            + (f"<table><tr><th>what</th><th></th><th>count</th></tr>{rows}</table>" if rows else "")
            + (f'<ul class="note">{ex}</ul>' if ex else "") + "</section>")


def render_html(report: Report) -> str:
    title = f"SLO history {ts(report.start)} to {ts(report.end)} UTC"
    body = _overview(report) + "".join(_slo_section(h, report) for h in report.histories) + _input(report)
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}</style></head><body><main>'
            f"<h1>{_e(title)}</h1><p class=\"sub\">Replayed from {_e(report.source)} at a {prom_duration(report.step)} "
            f"step with the windows, burn-rate factors and min_events guard of the generated rules. "
            f"hpcwatch {__version__}, {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(report.generated_at))}.</p>"
            f"{body}</main></body></html>\n")
