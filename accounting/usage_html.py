"""`usage report --format html`: one self-contained page in the SLO history report's style (its CSS, cards
and SVG charts): headline cards, cost and waste by account over time, efficiency against usage per user,
and the table of groups."""

from __future__ import annotations

import time

import numpy as np
from hpcwatch.accounting.usage import UsageReport, UsageRow
from hpcwatch.accounting.usage_render import failed, notes, num, pct, period_text, wait
from hpcwatch.slo.history.html import CSS, _card, _e, _legend
from hpcwatch.slo.history.svg import HLine, Point, scatter_chart, stacked_bars

from hpcwatch.version import __version__

COLORS = ("#2f6fdf", "#d64545", "#16a394", "#e59400", "#7b52c9", "#1f9d55", "#c2410c", "#0e7490", "#8a94a6")
LABELLED_USERS = 8      # the heaviest users get their name beside their dot


def _cards(r: UsageReport) -> str:
    t, cur = r.total, r.currency
    waste_share = t.waste_cost / t.cost if t.cost else None
    cards = [
        _card(f"{num(t.cost, 0)} {cur}".strip(), "cost"),
        _card(f"{num(t.waste_cost, 0)} {cur}".strip(), f"wasted ({pct(waste_share)} of cost)",
              "bad" if (waste_share or 0) > 0.25 else ""),
        _card(num(t.core_hours, 0), "core-hours"),
        _card(num(t.gpu_hours, 0), "GPU-hours"),
        _card(num(t.energy_kwh, 0), "kWh"),
        _card(pct(t.cpu_efficiency), "CPU efficiency"),
        _card(pct(t.gpu_efficiency), "GPU utilisation"),
        _card(f"{num(t.jobs)}", f"jobs, {num(failed(t))} failed"),
        _card(f"{wait(t.wait_p50_s)} / {wait(t.wait_p90_s)}", "queue wait p50 / p90"),
    ]
    return f'<div class="cards">{"".join(cards)}</div>'


STEP_S = {"day": 86400, "week": 7 * 86400, "month": 31 * 86400}


def _over_time(r: UsageReport, metric: str, title: str) -> str:
    """Stacked bars per bucket, one colour per account (the largest at the bottom, the rest as 'other')."""
    s = r.series
    if not s or not s["times"]:
        return '<p class="note">No runs in the period.</p>'
    series = [(a or "(no account)", np.asarray(s[metric][a], dtype=float), "#b8c0cc" if a == "other" else
               COLORS[i % len(COLORS)]) for i, a in enumerate(s["accounts"])]
    chart = stacked_bars(title, np.asarray(s["times"], dtype=float), STEP_S[s["unit"]], series)
    return chart + _legend([(label, color) for label, _, color in series])


def _users_chart(r: UsageReport, gpu: bool) -> str:
    hours = (lambda u: u.gpu_hours) if gpu else (lambda u: u.core_hours)
    eff = (lambda u: u.gpu_efficiency) if gpu else (lambda u: u.cpu_efficiency)
    users = [u for u in r.users if hours(u) > 0 and eff(u) is not None]
    if not users:
        return ""
    top = {u.key["user"] for u in sorted(users, key=lambda u: -hours(u))[:LABELLED_USERS]}
    unit = "GPU-hours" if gpu else "core-hours"
    points = [Point(hours(u), eff(u), "#d64545" if eff(u) < 0.5 else "#2f6fdf",
                    f"{u.key['user']}: {num(hours(u), 1)} {unit}, {pct(eff(u))} "
                    f"{'GPU utilisation' if gpu else 'CPU efficiency'}, {num(u.cost, 2)} {r.currency}",
                    u.key["user"] if u.key["user"] in top else "") for u in users]
    what = "GPU utilisation" if gpu else "CPU efficiency"
    chart = scatter_chart(f"{what} against {unit} per user", points, f"{unit} (log scale)", what, (0.0, 1.0), "%",
                          [HLine("50%", 0.5, "#e59400")])
    return (f"<h3>{_e(what)} against {unit} per user</h3>{chart}"
            + _legend([("below 50%", "#d64545"), ("50% or more", "#2f6fdf")]))


def _table(r: UsageReport) -> str:
    by, cur = r.query.by, r.currency
    head = "".join(f"<th>{_e(d)}</th>" for d in by) + "".join(
        f"<th>{h}</th>" for h in ("jobs", "failed", "core-h", "GPU-h", "CPU eff", "GPU eff", "mem eff", "kWh",
                                  f"cost {cur}", f"waste {cur}", "idle CPU-h", "idle GPU-h", "unused GB-h",
                                  "wait p50", "wait p90"))

    def row(keys: list[str], u: UsageRow, cls: str = "") -> str:
        cells = [num(u.jobs), num(failed(u)), num(u.core_hours, 1), num(u.gpu_hours, 1), pct(u.cpu_efficiency),
                 pct(u.gpu_efficiency), pct(u.mem_efficiency), num(u.energy_kwh, 1), num(u.cost, 2),
                 num(u.waste_cost, 2), num(u.idle_cpu_hours, 1), num(u.idle_gpu_hours, 1),
                 num(u.unused_mem_gb_hours, 1), wait(u.wait_p50_s), wait(u.wait_p90_s)]
        return (f'<tr class="{cls}">' + "".join(f"<td>{_e(k or '-')}</td>" for k in keys)
                + "".join(f"<td>{c}</td>" for c in cells) + "</tr>")

    body = "".join(row([u.key[d] for d in by], u) for u in r.rows)
    total = row(["TOTAL"] + [""] * (len(by) - 1), r.total, "total")
    return f"<table><tr>{head}</tr>{body}{total}</table>"


def render_html(r: UsageReport) -> str:
    title = f"Usage {period_text(r)}"
    unit = (r.series or {}).get("unit", "day")
    body = [
        f"<section><h2>Summary</h2>{_cards(r)}</section>",
        f"<section><h2>Cost by account</h2><h3>cost per {unit}</h3>"
        f"{_over_time(r, 'cost', f'cost per {unit} by account ({r.currency})')}"
        f"<h3>waste per {unit}</h3>{_over_time(r, 'waste_cost', f'waste per {unit} by account ({r.currency})')}"
        "</section>",
        f"<section><h2>Efficiency against usage</h2>{_users_chart(r, False)}{_users_chart(r, True)}"
        + ("" if r.users else '<p class="note">No runs in the period.</p>') + "</section>",
        f"<section><h2>By {_e(', '.join(r.query.by))}</h2><div class=\"wide\">{_table(r)}</div></section>",
        "<section><h2>How to read it</h2>" + "".join(f'<p class="note">{_e(n)}</p>' for n in notes(r))
        + "</section>",
    ]
    return (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{_e(title)}</title>'
            f'<meta name="viewport" content="width=device-width,initial-scale=1"><style>{CSS}'
            "tr.total td{font-weight:600;border-top:2px solid #d9dee7}.wide{overflow-x:auto}</style></head><body><main>"
            f"<h1>{_e(title)}</h1><p class=\"sub\">From the summary dataset {_e(r.dataset)} ({r.files} files), "
            f"grouped by {_e(', '.join(r.query.by))}. hpcwatch {__version__}, "
            f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime(r.generated_at))}.</p>"
            + "".join(body) + "</main></body></html>\n")
