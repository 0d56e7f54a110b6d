"""Inline SVG charts drawn from numpy arrays: time-series lines (linear or log axis) and an event timeline.

No JavaScript and nothing fetched: the HTML report opens offline. Long series are reduced to the
minimum and maximum of each pixel column, so spikes survive and a 90-day 5-minute series stays small.
"""

from __future__ import annotations

import dataclasses
import html
import itertools
import math
import time

import numpy as np

W, H = 920, 210
LEFT, RIGHT, TOP, BOTTOM = 62, 16, 14, 28


@dataclasses.dataclass
class Line:
    label: str
    values: np.ndarray
    color: str
    width: float = 1.6
    dash: str = ""
    fill_to: float | None = None


@dataclasses.dataclass
class HLine:
    label: str
    y: float
    color: str
    dash: str = "5 4"


def _esc(s: str) -> str:
    return html.escape(s, quote=True)


def reduce_minmax(t: np.ndarray, v: np.ndarray, columns: int) -> tuple[np.ndarray, np.ndarray]:
    """At most ~2 points per pixel column (its min and max, in time order); NaN gaps kept."""
    n = len(v)
    if n <= 2 * columns:
        return t, v
    edges = np.linspace(0, n, columns + 1).astype(int)
    ts, vs = [], []
    for a, b in itertools.pairwise(edges):
        seg = v[a:b]
        if np.isnan(seg).all():
            ts.append(t[a])
            vs.append(np.nan)
            continue
        i, j = int(np.nanargmin(seg)), int(np.nanargmax(seg))
        for k in sorted({i, j}):
            ts.append(t[a + k])
            vs.append(seg[k])
    return np.asarray(ts), np.asarray(vs, dtype=float)


def _path(xs: np.ndarray, ys: np.ndarray) -> str:
    parts, pen = [], False
    for x, y in zip(xs, ys):
        if np.isnan(y):
            pen = False
            continue
        parts.append(f"{'L' if pen else 'M'}{x:.1f} {y:.1f}")
        pen = True
    return " ".join(parts)


def nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """Round tick values (1, 2, 2.5, 5 x 10^k apart) covering [lo, hi]."""
    raw = (hi - lo) / max(1, n - 1) or 1.0
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 2.5, 5, 10) if m * mag >= raw)
    first = math.ceil(lo / step - 1e-9) * step
    return [round(first + i * step, 12) for i in range(int((hi - first) / step + 1e-9) + 1)]


def _time_ticks(t0: float, t1: float) -> list[tuple[float, str]]:
    span = max(1.0, t1 - t0)
    for step, fmt in ((3600, "%H:%M"),  # noqa: B007 - the loop picks `fmt`, used below (6 * 3600, "%d %b %H:%M"), (86400, "%d %b"), (2 * 86400, "%d %b"),
                      (7 * 86400, "%d %b"), (14 * 86400, "%d %b"), (30 * 86400, "%b %Y")):
        if span / step <= 9:
            break
    first = math.ceil(t0 / step) * step
    return [(t, time.strftime(fmt, time.gmtime(t))) for t in np.arange(first, t1 + 1, step)]


def _fmt(v: float, unit: str) -> str:
    if unit == "%":
        return f"{v * 100:.{0 if abs(v * 100) >= 10 or v == 0 else 2}f}%"
    if unit == "x":
        return f"{v:g}x"
    return f"{v:g}"


def line_chart(title: str, times: np.ndarray, lines: list[Line], hlines: list[HLine], y_range: tuple[float, float],
               unit: str = "", log: bool = False, bands: list[tuple[float, float, str]] | None = None) -> str:
    """One chart: series against time, reference lines, optional shaded time bands (alerts firing)."""
    t0, t1 = float(times[0]), float(times[-1]) if len(times) > 1 else float(times[0]) + 1
    lo, hi = y_range
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM

    def fy(v: np.ndarray | float):
        v = np.asarray(v, dtype=float)
        if log:
            v = np.log10(np.clip(v, lo, hi))
            a, b = math.log10(lo), math.log10(hi)
        else:
            v = np.clip(v, lo, hi)
            a, b = lo, hi
        return TOP + ph - (v - a) / ((b - a) or 1) * ph

    def fx(t):
        return LEFT + (np.asarray(t, dtype=float) - t0) / ((t1 - t0) or 1) * pw

    out = [(f'<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>'),
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fbfcfe" stroke="#d9dee7"/>']
    for a, b, color in bands or ():
        x0, x1 = float(fx(a)), float(fx(b))
        out.append(f'<rect class="band" x="{x0:.1f}" y="{TOP}" width="{max(1.0, x1 - x0):.1f}" height="{ph}" '
                   f'fill="{color}" opacity="0.13"/>')
    yticks = ([10 ** e for e in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1)] if log
              else nice_ticks(lo, hi))
    for v in yticks:
        if not lo <= v <= hi:
            continue
        y = float(fy(v))
        out.append(f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ef"/>'
                   f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_esc(_fmt(v, unit))}</text>')
    for t, label in _time_ticks(t0, t1):
        x = float(fx(t))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eef0f4"/>'
                   f'<text x="{x:.1f}" y="{H - 9}" text-anchor="middle" class="tick">{_esc(label)}</text>')
    for h in hlines:
        if lo <= h.y <= hi:
            y = float(fy(h.y))
            out.append(f'<line class="ref" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{h.color}" '
                       f'stroke-dasharray="{h.dash}" stroke-width="1.3"><title>{_esc(h.label)}</title></line>'
                       f'<text x="{W - RIGHT - 4}" y="{y - 4:.1f}" text-anchor="end" class="ref-label" '
                       f'fill="{h.color}">{_esc(h.label)}</text>')
    for ln in lines:
        t, v = reduce_minmax(times, np.asarray(ln.values, dtype=float), pw)
        xs, ys = fx(t), fy(v)
        ys = np.where(np.isnan(v), np.nan, ys)
        d = _path(xs, ys)
        if not d:
            continue
        if ln.fill_to is not None:
            base = float(fy(ln.fill_to))
            for seg in d.split("M")[1:]:
                pts = seg.strip().split(" L")
                x_first, x_last = pts[0].split()[0], pts[-1].split()[0]
                out.append(f'<path d="M{x_first} {base:.1f} L{seg.strip()} L{x_last} {base:.1f} Z" '
                           f'fill="{ln.color}" opacity="0.12" stroke="none"/>')
        dash = f' stroke-dasharray="{ln.dash}"' if ln.dash else ""
        out.append(f'<path class="series" d="{d}" fill="none" stroke="{ln.color}" stroke-width="{ln.width}"'
                   f'{dash} stroke-linejoin="round"><title>{_esc(ln.label)}</title></path>')
    out.append("</svg>")
    return "".join(out)


def timeline(title: str, t0: float, t1: float, lanes: list[tuple[str, str, list[tuple[float, float, str]]]]) -> str:
    """Lanes of intervals: [(lane label, color, [(start, end, tooltip)])]."""
    lane_h, gap = 26, 10
    height = TOP + len(lanes) * (lane_h + gap) + BOTTOM
    pw = W - LEFT - RIGHT

    def fx(t: float) -> float:
        return LEFT + (t - t0) / ((t1 - t0) or 1) * pw

    out = [(f'<svg class="chart timeline" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>')]
    for t, label in _time_ticks(t0, t1):
        x = fx(float(t))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}" stroke="#eef0f4"/>'
                   f'<text x="{x:.1f}" y="{height - 9}" text-anchor="middle" class="tick">{_esc(label)}</text>')
    for i, (label, color, spans) in enumerate(lanes):
        y = TOP + i * (lane_h + gap)
        out.append(f'<rect x="{LEFT}" y="{y}" width="{pw}" height="{lane_h}" fill="#f4f6f9" rx="3"/>'
                   f'<text x="{LEFT - 6}" y="{y + lane_h / 2 + 4}" text-anchor="end" class="lane">{_esc(label)}</text>')
        for a, b, tip in spans:
            x0, x1 = fx(a), fx(b)
            out.append(f'<rect class="episode" x="{x0:.1f}" y="{y + 3}" width="{max(2.0, x1 - x0):.1f}" '
                       f'height="{lane_h - 6}" fill="{color}" rx="2"><title>{_esc(tip)}</title></rect>')
        if not spans:
            out.append(f'<text x="{LEFT + 8}" y="{y + lane_h / 2 + 4}" class="none">would not have fired</text>')
    out.append("</svg>")
    return "".join(out)
