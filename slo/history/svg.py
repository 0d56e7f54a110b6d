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
HALO = 'stroke="#fbfcfe" stroke-width="3" stroke-linejoin="round" paint-order="stroke"'


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


# Candidate time-axis steps, finest first, with the label format each uses.
TIME_STEPS = ((3600, "%H:%M"), (3 * 3600, "%H:%M"), (6 * 3600, "%d %b %H:%M"), (12 * 3600, "%d %b %H:%M"),
              (86400, "%d %b"), (2 * 86400, "%d %b"), (7 * 86400, "%d %b"), (14 * 86400, "%d %b"),
              (30 * 86400, "%b %Y"), (91 * 86400, "%b %Y"), (365 * 86400, "%Y"))
TICK_CHAR_W, LABEL_CHAR_W, LABEL_H = 6.6, 7.0, 13.0   # px per character at 11 px (ticks, bold labels); line height


def _time_ticks(t0: float, t1: float, width: float = W - LEFT - RIGHT) -> list[tuple[float, str]]:
    """Ticks on round times whose labels fit side by side: at most 9, each label's width plus a gap apart."""
    span = max(1.0, t1 - t0)
    for step, fmt in TIME_STEPS:
        label_w = len(time.strftime(fmt, time.gmtime(t0))) * TICK_CHAR_W + 12
        if span / step <= 9 and step / span * width >= label_w:
            break
    first = math.ceil(t0 / step) * step
    return [(t, time.strftime(fmt, time.gmtime(t))) for t in np.arange(first, t1 + 1, step)]


def _tick_label(x: float, y: float, label: str) -> str:
    """A time label centred on x, or pinned to the chart's edge where centring would cut it off."""
    half = len(label) * TICK_CHAR_W / 2
    anchor, tx = "middle", x
    if x - half < 2:
        anchor, tx = "start", max(2.0, x - 4)
    elif x + half > W - 2:
        anchor, tx = "end", min(W - 2.0, x + 4)
    return f'<text x="{tx:.1f}" y="{y:.1f}" text-anchor="{anchor}" class="tick">{_esc(label)}</text>'


@dataclasses.dataclass
class Placed:
    """A text box already on the chart (x0..x1, top..bottom), for labels that must not overlap."""

    x0: float
    x1: float
    top: float
    bottom: float

    def hits(self, other: Placed) -> bool:
        return self.x0 < other.x1 and other.x0 < self.x1 and self.top < other.bottom and other.top < self.bottom


def place_label(placed: list[Placed], x_right: float, width: float, baseline: float, lo: float, hi: float) -> float:
    """The baseline nearest `baseline` (within [lo, hi]) where a right-aligned label overlaps no placed one."""
    for k in range(0, 40):
        for y in ((baseline,) if k == 0 else (baseline - k * 4, baseline + k * 4)):
            if not lo <= y <= hi:
                continue
            box = Placed(x_right - width, x_right, y - LABEL_H + 2, y + 2)
            if not any(box.hits(p) for p in placed):
                placed.append(box)
                return y
    placed.append(Placed(x_right - width, x_right, baseline - LABEL_H + 2, baseline + 2))
    return baseline


def _fmt(v: float, unit: str) -> str:
    if unit == "si":   # 1.5k, 2M: amounts of money, hours, energy
        for suffix, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
            if abs(v) >= size:
                return f"{v / size:g}{suffix}"
        return f"{v:g}"
    if unit == "%":
        return f"{v * 100:.{0 if abs(v * 100) >= 10 or v == 0 else 2}f}%"
    if unit == "x":
        return f"{v:g}x"
    return f"{v:g}"


def _shade(x0: float, x1: float, top: float, height: float, label: str) -> str:
    """A grey hatched span (warm-up) with its explanation as a tooltip."""
    return (f'<rect class="warmup" x="{x0:.1f}" y="{top:.1f}" width="{max(1.0, x1 - x0):.1f}" height="{height:.1f}" '
            f'fill="url(#hatch)" stroke="none"><title>{_esc(label)}</title></rect>')


HATCH = ('<defs><pattern id="hatch" width="6" height="6" patternUnits="userSpaceOnUse" '
         'patternTransform="rotate(45)"><rect width="6" height="6" fill="#eceff4"/>'
         '<line x1="0" y1="0" x2="0" y2="6" stroke="#d5dae3" stroke-width="2"/></pattern></defs>')


def line_chart(title: str, times: np.ndarray, lines: list[Line], hlines: list[HLine], y_range: tuple[float, float],
               unit: str = "", log: bool = False, bands: list[tuple[float, float, str]] | None = None,
               shade: tuple[float, float, str, str] | None = None) -> str:
    """One chart: series against time, reference lines, optional shaded time bands (alerts firing) and a
    hatched span `shade` = (start, end, short label, explanation) such as the warm-up."""
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
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>{HATCH if shade else ""}'),
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fbfcfe" stroke="#d9dee7"/>']
    placed: list[Placed] = []
    labels: list[str] = []
    if shade:
        x0, x1 = float(fx(max(t0, shade[0]))), float(fx(min(t1, shade[1])))
        if x1 > x0:
            out.append(_shade(x0, x1, TOP, ph, shade[3]))
            width = len(shade[2]) * LABEL_CHAR_W
            if x1 - x0 >= width + 8:
                y = place_label(placed, x0 + 6 + width, width, TOP + 14, TOP + 12, TOP + ph - 4)
                labels.append(f'<text x="{x0 + 6:.1f}" y="{y:.1f}" class="ref-label shade-label" fill="#6b7588" '
                              f'{HALO}>{_esc(shade[2])}</text>')
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
                   + _tick_label(x, H - 9, label))
    # Reference labels from the top down, each moved off the ones above it (thresholds can sit close).
    for h in sorted((h for h in hlines if lo <= h.y <= hi), key=lambda h: float(fy(h.y))):
        y = float(fy(h.y))
        out.append(f'<line class="ref" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{h.color}" '
                   f'stroke-dasharray="{h.dash}" stroke-width="1.3"><title>{_esc(h.label)}</title></line>')
        width = len(h.label) * LABEL_CHAR_W
        ty = place_label(placed, W - RIGHT - 4, width, y - 4, TOP + 12, TOP + ph - 3)
        labels.append(f'<text x="{W - RIGHT - 4}" y="{ty:.1f}" text-anchor="end" class="ref-label" '
                      f'fill="{h.color}" {HALO}>{_esc(h.label)}</text>')
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
    out.extend(labels)   # over the lines, each on a halo of the background, so a line never crosses text
    out.append("</svg>")
    return "".join(out)


def timeline(title: str, t0: float, t1: float, lanes: list[tuple[str, str, list[tuple[float, float, str]]]],
             shade: tuple[float, float, str, str] | None = None) -> str:
    """Lanes of intervals: [(lane label, color, [(start, end, tooltip)])]; `shade` hatches a span (warm-up)."""
    lane_h, gap = 26, 10
    height = TOP + len(lanes) * (lane_h + gap) + BOTTOM
    pw = W - LEFT - RIGHT

    def fx(t: float) -> float:
        return LEFT + (t - t0) / ((t1 - t0) or 1) * pw

    out = [(f'<svg class="chart timeline" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>{HATCH if shade else ""}')]
    for t, label in _time_ticks(t0, t1):
        x = fx(float(t))
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{height - BOTTOM}" stroke="#eef0f4"/>'
                   + _tick_label(x, height - 9, label))
    for i, (label, color, spans) in enumerate(lanes):
        y = TOP + i * (lane_h + gap)
        out.append(f'<rect x="{LEFT}" y="{y}" width="{pw}" height="{lane_h}" fill="#f4f6f9" rx="3"/>'
                   f'<text x="{LEFT - 6}" y="{y + lane_h / 2 + 4}" text-anchor="end" class="lane">{_esc(label)}</text>')
        free = float(LEFT)   # where the lane's own note may start: after the warm-up
        if shade and shade[1] > t0:
            x0, x1 = fx(max(t0, shade[0])), fx(min(t1, shade[1]))
            out.append(_shade(x0, x1, y, lane_h, shade[3]))
            free = x1
        for a, b, tip in spans:
            x0, x1 = fx(a), fx(b)
            out.append(f'<rect class="episode" x="{x0:.1f}" y="{y + 3}" width="{max(2.0, x1 - x0):.1f}" '
                       f'height="{lane_h - 6}" fill="{color}" rx="2"><title>{_esc(tip)}</title></rect>')
        if not spans:
            note = "would not have fired"
            if free + 8 + len(note) * TICK_CHAR_W > W - RIGHT:
                free, note = float(LEFT), "warm-up for the whole range: not replayed"
            out.append(f'<text x="{free + 8:.1f}" y="{y + lane_h / 2 + 4}" class="none">{note}</text>')
    out.append("</svg>")
    return "".join(out)


@dataclasses.dataclass
class Point:
    """One dot of a scatter chart; `label` is drawn beside it when set, `tip` shows on hover."""

    x: float
    y: float
    color: str
    tip: str
    label: str = ""


def _y_grid(y: float, label: str) -> str:
    """A horizontal grid line across the plot with its value at the left."""
    return (f'<line x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="#e6e9ef"/>'
            f'<text x="{LEFT - 6}" y="{y + 4:.1f}" text-anchor="end" class="tick">{_esc(label)}</text>')


def scatter_chart(title: str, points: list[Point], x_title: str, y_title: str, y_range: tuple[float, float],
                  y_unit: str = "", hlines: list[HLine] | None = None) -> str:
    """Dots on a log x axis (usage spans decades) against a linear y axis, with reference lines."""
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM - 12
    xs = [p.x for p in points if p.x > 0]
    lo_e = math.floor(math.log10(min(xs))) if xs else 0
    hi_e = max(lo_e + 1, math.ceil(math.log10(max(xs)))) if xs else 1
    lo, hi = y_range

    def fx(x: float) -> float:
        return LEFT + (math.log10(max(x, 10 ** lo_e)) - lo_e) / (hi_e - lo_e) * pw

    def fy(y: float) -> float:
        return TOP + ph - (min(max(y, lo), hi) - lo) / ((hi - lo) or 1) * ph

    out = [(f'<svg class="chart scatter" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>'),
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fbfcfe" stroke="#d9dee7"/>']
    for v in nice_ticks(lo, hi):
        out.append(_y_grid(fy(v), _fmt(v, y_unit)))
    for e in range(lo_e, hi_e + 1):
        x = fx(10 ** e)
        out.append(f'<line x1="{x:.1f}" x2="{x:.1f}" y1="{TOP}" y2="{TOP + ph}" stroke="#eef0f4"/>'
                   f'<text x="{x:.1f}" y="{TOP + ph + 14}" text-anchor="middle" class="tick">'
                   f'{_fmt(10 ** e, "si")}</text>')
    out.append(f'<text x="{LEFT + pw / 2:.1f}" y="{H - 4}" text-anchor="middle" class="tick">{_esc(x_title)}</text>'
               f'<text x="12" y="{TOP + ph / 2:.1f}" text-anchor="middle" class="tick" '
               f'transform="rotate(-90 12 {TOP + ph / 2:.1f})">{_esc(y_title)}</text>')
    for h in hlines or ():
        if lo <= h.y <= hi:
            y = fy(h.y)
            out.append(f'<line class="ref" x1="{LEFT}" x2="{W - RIGHT}" y1="{y:.1f}" y2="{y:.1f}" stroke="{h.color}" '
                       f'stroke-dasharray="{h.dash}" stroke-width="1.3"><title>{_esc(h.label)}</title></line>')
    boxes: list[tuple[float, float, float, float]] = []   # labels drawn so far, so none covers another
    for p in points:
        if p.x <= 0:
            continue
        x, y = fx(p.x), fy(p.y)
        out.append(f'<circle class="dot" cx="{x:.1f}" cy="{y:.1f}" r="4" fill="{p.color}" fill-opacity="0.7">'
                   f'<title>{_esc(p.tip)}</title></circle>')
        box = (x + 6, y - 15, x + 6 + 6.6 * len(p.label), y - 3)
        if p.label and box[2] < W and not any(b[0] < box[2] and box[0] < b[2] and b[1] < box[3] and box[1] < b[3]
                                              for b in boxes):
            boxes.append(box)
            out.append(f'<text x="{x + 6:.1f}" y="{y - 5:.1f}" class="tick">{_esc(p.label)}</text>')
    out.append("</svg>")
    return "".join(out)


def stacked_bars(title: str, times: np.ndarray, step: float, series: list[tuple[str, np.ndarray, str]],
                 unit: str = "si") -> str:
    """One bar per time bucket [t, t + step), stacked by series (label, values, color) bottom up."""
    t0, t1 = float(times[0]), float(times[-1]) + step
    pw, ph = W - LEFT - RIGHT, H - TOP - BOTTOM
    totals = np.sum([np.nan_to_num(v) for _, v, _ in series], axis=0) if series else np.zeros(len(times))
    hi = float(max(totals.max(initial=0.0), 1e-9)) * 1.08

    def fx(t: float) -> float:
        return LEFT + (t - t0) / ((t1 - t0) or 1) * pw

    def fy(v: float) -> float:
        return TOP + ph - v / hi * ph

    out = [(f'<svg class="chart bars" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" '
            f'xmlns="http://www.w3.org/2000/svg"><title>{_esc(title)}</title>'),
           f'<rect x="{LEFT}" y="{TOP}" width="{pw}" height="{ph}" fill="#fbfcfe" stroke="#d9dee7"/>']
    out += [_y_grid(fy(v), _fmt(v, unit)) for v in nice_ticks(0.0, hi) if v <= hi]
    for t, label in _time_ticks(t0, t1):
        out.append(f'<text x="{fx(float(t)):.1f}" y="{H - 9}" text-anchor="middle" class="tick">{_esc(label)}</text>')
    width = max(1.0, pw / len(times) * 0.8)
    base = np.zeros(len(times))
    for label, values, color in series:
        v = np.nan_to_num(np.asarray(values, dtype=float))
        for i, t in enumerate(times):
            if v[i] <= 0:
                continue
            y0, y1 = fy(base[i]), fy(base[i] + v[i])
            out.append(f'<rect class="bar" x="{fx(float(t)) + width * 0.125:.1f}" y="{y1:.1f}" width="{width:.1f}" '
                       f'height="{max(0.5, y0 - y1):.1f}" fill="{color}"><title>{_esc(label)}: '
                       f'{_esc(_fmt(float(v[i]), unit))} ({time.strftime("%Y-%m-%d", time.gmtime(float(t)))})'
                       "</title></rect>")
        base += v
    out.append("</svg>")
    return "".join(out)
