"""The text summary: one table row per SLO, the alerts each would have fired, what the input held."""

from __future__ import annotations

import textwrap
import time

from hpcwatch.slo.goformat import prom_duration
from hpcwatch.slo.history.report import Report
from hpcwatch.slo.history.verdict import verdict


def ts(t: float | None) -> str:
    return "-" if t is None else time.strftime("%Y-%m-%d %H:%M", time.gmtime(t))


def pct(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x * 100:.{digits}f}%"


def dur(s: int) -> str:
    if s <= 0:
        return "0"
    d, rest = divmod(int(s), 86400)
    h, rest = divmod(rest, 3600)
    m = rest // 60
    return " ".join(p for p in (f"{d}d" if d else "", f"{h}h" if h else "", f"{m}m" if m and not d else "") if p) \
        or f"{int(s)}s"


def _count(x: float | None) -> str:
    return "-" if x is None else f"{x:,.0f}"


def render_text(report: Report) -> str:
    out = [(f"SLO history {ts(report.start)} .. {ts(report.end)} UTC, step {prom_duration(report.step)}, "
            f"from {report.source}"), ""]
    head = ("SLO", "objective", "attained", "events", "errors", "budget left", "min budget", "page", "ticket", "")
    rows = []
    for h in report.histories:
        s = h.summary
        met = "" if s["met"] is None else ("met" if s["met"] else "MISSED")
        left = pct(s["budget_remaining_end"], 1) + ("" if s["budget_complete"] else "*")
        rows.append((h.slo.id, f"{h.slo.objective:g}%", pct(s["attained"], 3), _count(s["events"]),
                     _count(s["error_events"]), left, pct(s["budget_remaining_min"], 1),
                     str(s["page_alerts"]), str(s["ticket_alerts"]), met))
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    for r in [head, *rows]:
        out.append("  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    out.append("")
    out.extend(textwrap.wrap("attained: 1 - errors/events over the range; budget: the rules' rolling-period "
                             "error budget (slo:period_error_budget_remaining:ratio) at the end and its minimum "
                             "over full periods.", 100))
    if any(not h.summary["budget_complete"] for h in report.histories):
        out.extend(textwrap.wrap("* warm-up: the data do not yet cover a full period, so the budget stands on "
                                 "part of one; its minimum is left out until a full period is covered.", 100))
    for h in report.histories:
        out.append("")
        out.extend(textwrap.wrap(f"{h.slo.id}: {verdict(h, report.end)}", 100, subsequent_indent="  "))
    for h in report.histories:
        if not h.episodes:
            continue
        out.append("")
        out.append(f"{h.slo.id}: alerts that would have fired")
        for e in h.episodes:
            state = f"resolved {ts(e.resolved)}" if e.resolved is not None else "still firing at the end"
            out.append(f"  {e.severity:<6} {e.alert:<28} fired {ts(e.fired)}  {state:<28} "
                       f"{dur(e.duration(report.end)):>8}  ({'+'.join(e.conditions)} burn, peak x{e.peak_burn:.1f})")
    for slo, why in report.skipped:
        out.append("")
        out.append(f"{slo.id}: skipped: {why}")
    if report.input is not None:
        r = report.input
        out.append("")
        out.append(f"input: {r.records:,} records read ({r.fmt}), {r.used:,} finished runs used")
        for kind, n, what in r.lines():
            out.append(f"  {kind:<8} {n:>10,}  {what}")
        for reason, ex in sorted(r.examples.items()):
            for e in ex[:1]:
                out.append(f"  e.g. {reason}: {e}")
    return "\n".join(out) + "\n"
