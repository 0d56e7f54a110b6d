"""The SLO over time, from per-window SLI series: error ratios, the period SLI, budget, burn and alert replay.

Every number is the one the generated rules compute (`hpcwatch.slo.generate`), on the same model:
the error ratio over each alert window is error/total with windows of no events left undefined (the
`(total) > 0` guard); the period error ratio is the mean of the defined short-window ratios over the
period (Sloth's sum_over_time / count_over_time); budget remaining is 1 - period ratio / (1 -
objective); each alert fires while, for its quick or slow condition, both windows' ratios exceed
factor x budget and, with min_events, the long window saw that many events (`alert_conditions`).
The rules evaluate every rule interval; here every grid step, so fire and resolve times are exact
to one step.

Warm-up: a window that reaches back before the first data (`SLIData.data_start`) is not full, so its
ratio stands on a fraction of the window. An alert condition is replayed only once its long window
is full, and the period budget only counts from the first full period: its lowest point and the
time spent exhausted ignore warm-up (a 4-hour-old "30-day" budget with one bad hour reads -160%).
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
from hpcwatch.slo.generate import AlertCondition, alert_conditions
from hpcwatch.slo.model import SLO


@dataclasses.dataclass
class SLIData:
    """What a source gives for one SLO on the grid `times` (Unix seconds).

    ratio: window seconds -> error ratio (NaN where the window had no events); events: long window
    seconds -> events in it (the min_events guard); step_errors / step_total: the SLI's error and
    total over each step (for the attained SLI over the report), None when the source has no counts.
    """

    times: np.ndarray
    ratio: dict[int, np.ndarray]
    events: dict[int, np.ndarray]
    step_errors: np.ndarray | None = None
    step_total: np.ndarray | None = None
    data_start: int | None = None  # first instant the source has data; None: the grid's start


@dataclasses.dataclass(frozen=True)
class AlertEpisode:
    """One replayed alert: when it would have fired and resolved (None: still firing at the end)."""

    severity: str
    alert: str
    fired: int
    resolved: int | None
    conditions: tuple[str, ...]
    peak_burn: float

    def duration(self, end: int) -> int:
        return (self.resolved if self.resolved is not None else end) - self.fired


@dataclasses.dataclass
class SLOHistory:
    """One SLO replayed over [start, end]: the frame (indexed by time) and its summary."""

    slo: SLO
    frame: pd.DataFrame
    conditions: list[AlertCondition]
    episodes: list[AlertEpisode]
    summary: dict
    note: str = ""


def error_ratio(errors: np.ndarray, total: np.ndarray) -> np.ndarray:
    """errors / total where total > 0, else NaN (the rules' `/ ((total) > 0)`)."""
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(total > 0, errors / np.where(total > 0, total, 1.0), np.nan)


def meta_budget(slo: SLO) -> float:
    """slo:error_budget:ratio as recorded: `vector(1 - objective_ratio)`."""
    return 1 - slo.objective_ratio


def _window_cols(slo: SLO) -> list[int]:
    return slo.windows.windows()


def replay(slo: SLO, data: SLIData, start: int, end: int) -> SLOHistory:
    """Evaluate the SLO's rules over the grid; keep [start, end] in the result."""
    times = data.times
    step = int(times[1] - times[0]) if len(times) > 1 else 1
    short = slo.windows.page_quick.short_s
    data_start = int(times[0]) if data.data_start is None else max(int(times[0]), int(data.data_start))
    cols: dict[str, np.ndarray] = {}
    for w in _window_cols(slo):
        cols[f"ratio_{w}"] = data.ratio[w]
    for w, ev in data.events.items():
        cols[f"events_{w}"] = ev
    period_n = max(1, slo.period_s // step)
    # Sloth's period SLI: the mean of the defined short-window ratios over the period.
    period_ratio = pd.Series(data.ratio[short]).rolling(period_n, min_periods=1).mean().to_numpy()
    cols["ratio_period"] = period_ratio
    budget = meta_budget(slo)
    for w in _window_cols(slo):
        cols[f"burn_{w}"] = data.ratio[w] / budget
    cols["burn_period"] = period_ratio / budget
    cols["budget_remaining"] = 1 - period_ratio / budget
    # Warm-up: the period (budget) or the longest alert window still reaches back before the data.
    cols["warmup"] = times - slo.period_s < data_start
    cols["alert_warmup"] = times - max(slo.windows.long_windows()) < data_start
    conds = alert_conditions(slo)
    for sev in ("page", "ticket"):
        cols[f"alert_{sev}"] = np.zeros(len(times), dtype=bool)
        cols[f"rules_alert_{sev}"] = np.zeros(len(times), dtype=bool)
    for c in conds:
        with np.errstate(invalid="ignore"):
            hit = (data.ratio[c.short_s] > c.threshold) & (data.ratio[c.long_s] > c.threshold)
        if c.min_events:
            ev = data.events.get(c.long_s)
            # Without event counts the guard's series is absent, so the rule cannot fire either.
            hit &= (ev >= c.min_events) if ev is not None else False
        # What the rules would do on this data, and what the replay counts: only once the long window is full.
        cols[f"rules_alert_{c.severity}"] = cols[f"rules_alert_{c.severity}"] | hit
        hit = hit & (times - c.long_s >= data_start)
        cols[f"cond_{c.severity}_{c.speed}"] = hit
        cols[f"alert_{c.severity}"] = cols[f"alert_{c.severity}"] | hit
    if data.step_errors is not None:
        cols["step_errors"] = data.step_errors
        cols["step_total"] = data.step_total
    frame = pd.DataFrame(cols, index=pd.Index(times, name="time"))
    frame = frame.loc[(frame.index >= start) & (frame.index <= end)]
    episodes = _episodes(slo, frame, conds)
    return SLOHistory(slo, frame, conds, episodes, _summary(slo, frame, episodes, step, data_start))


def _episodes(slo: SLO, frame: pd.DataFrame, conds: list[AlertCondition]) -> list[AlertEpisode]:
    out = []
    t = frame.index.to_numpy()
    for sev in ("page", "ticket"):
        col = f"alert_{sev}"
        if col not in frame or not len(frame):
            continue
        on = frame[col].to_numpy()
        edges = np.diff(np.concatenate(([0], on.astype("int8"), [0])))
        starts, stops = np.flatnonzero(edges == 1), np.flatnonzero(edges == -1)
        meta = slo.page_alert if sev == "page" else slo.ticket_alert
        sev_conds = [c for c in conds if c.severity == sev]
        for a, b in zip(starts, stops):
            which = tuple(c.speed for c in sev_conds if frame[f"cond_{sev}_{c.speed}"].to_numpy()[a:b].any())
            peak = max((float(np.nanmax(frame[f"burn_{c.long_s}"].to_numpy()[a:b])) for c in sev_conds), default=0.0)
            out.append(AlertEpisode(sev, meta.name if meta else sev, int(t[a]), int(t[b]) if b < len(t) else None,
                                    which, peak))
    return sorted(out, key=lambda e: (e.fired, e.severity))


def _summary(slo: SLO, frame: pd.DataFrame, episodes: list[AlertEpisode], step: int, data_start: int) -> dict:
    out: dict = {"objective": slo.objective, "period_s": slo.period_s, "step_s": step,
                 "start": int(frame.index[0]) if len(frame) else None,
                 "end": int(frame.index[-1]) if len(frame) else None,
                 "data_start": data_start, "budget_from": data_start + slo.period_s,
                 "alerts_from": data_start + max(slo.windows.long_windows())}
    if "step_total" in frame:
        total = float(np.nansum(frame["step_total"]))
        errors = float(np.nansum(frame["step_errors"]))
        out["events"] = total
        out["error_events"] = errors
        out["attained"] = 1 - errors / total if total > 0 else None
    else:
        out["events"] = out["error_events"] = None
        short = frame.get(f"ratio_{slo.windows.page_quick.short_s}")
        mean = float(np.nanmean(short)) if short is not None and short.notna().any() else None
        out["attained"] = None if mean is None else 1 - mean
    rem = frame["budget_remaining"] if len(frame) else pd.Series(dtype=float)
    out["budget_remaining_end"] = _num(rem.iloc[-1]) if len(rem) else None
    out["budget_complete"] = bool(len(rem)) and not bool(frame["warmup"].iloc[-1])
    out["warmup_s"] = int(frame["warmup"].sum()) * step if len(frame) else 0
    full = rem[~frame["warmup"]] if len(rem) else rem
    out["budget_remaining_min"] = _num(full.min()) if full.notna().any() else None
    out["budget_remaining_min_at"] = int(full.idxmin()) if full.notna().any() else None
    out["budget_exhausted_s"] = int((full < 0).sum()) * step
    out["period_sli_end"] = _num(1 - frame["ratio_period"].iloc[-1]) if len(frame) else None
    out["met"] = None if out["attained"] is None else bool(out["attained"] >= slo.objective_ratio)
    end = out["end"] or 0
    for sev in ("page", "ticket"):
        eps = [e for e in episodes if e.severity == sev]
        out[f"{sev}_alerts"] = len(eps)
        out[f"{sev}_firing_s"] = sum(e.duration(end) for e in eps)
    full_w = {w: frame.index.to_numpy() - w >= data_start for w in slo.windows.long_windows()}
    out["max_burn"] = {str(w): _num(frame[f"burn_{w}"][full_w[w]].max()) for w in slo.windows.long_windows()}
    return out


def _num(x) -> float | None:
    x = float(x)
    return None if np.isnan(x) else x
