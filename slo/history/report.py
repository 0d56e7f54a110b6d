"""Specs + a history source -> one `Report` (per SLO: the replayed history, or why it was skipped)."""

from __future__ import annotations

import dataclasses
import time

import numpy as np
from hpcwatch.slo.history.compute import SLOHistory, replay
from hpcwatch.slo.history.events import Grid, RecordSeries, sli_from_records
from hpcwatch.slo.history.progress import Progress
from hpcwatch.slo.history.query import UnsupportedQuery
from hpcwatch.slo.history.records import InputReport, JobRecords
from hpcwatch.slo.history.scope import check_scope
from hpcwatch.slo.model import SLO


@dataclasses.dataclass
class Report:
    histories: list[SLOHistory]
    skipped: list[tuple[SLO, str]]
    source: str
    start: int
    end: int
    step: int
    input: InputReport | None = None
    generated_at: float = dataclasses.field(default_factory=time.time)


def fmt_range(start: float, end: float) -> str:
    fmt = "%Y-%m-%d %H:%M"
    return f"{time.strftime(fmt, time.gmtime(start))} .. {time.strftime(fmt, time.gmtime(end))} UTC"


def _warmup(slos: list[SLO]) -> int:
    """History needed before the report start: a period of short-window ratios plus the longest window."""
    return max((s.period_s + max(s.windows.windows()) for s in slos), default=0)


def check_step(slos: list[SLO], step: int) -> None:
    for s in slos:
        for w in s.windows.windows():
            if w % step:
                raise ValueError(f"slo {s.id!r}: alert window {w}s is not a multiple of the step {step}s; "
                                 "choose a step that divides every window (5m, 1m)")


def from_jobs(slos: list[SLO], records: JobRecords, start: float | None, end: float | None, step: int,
              progress: Progress | None = None) -> Report:
    check_step(slos, step)
    frame = records.frame
    ends = frame["end"].to_numpy()
    if start is None:
        start = float(np.nanmin(ends)) if len(ends) else time.time() - 86400
    if end is None:
        end = float(np.nanmax(ends)) if len(ends) else time.time()
    s0, e0 = int(np.floor(start / step)) * step, int(np.ceil(end / step)) * step
    grid = Grid.covering(s0 - _warmup(slos), e0, step)
    outside = (ends <= grid.start - step) | (ends > grid.end)
    if outside.any():
        records.report.drop("outside_range", int(outside.sum()), None)
        frame = frame[~outside].reset_index(drop=True)
        records.report.used = len(frame)
    check_scope(slos, frame, f" ending in {fmt_range(grid.start, grid.end)}" if outside.any() else "")
    series = RecordSeries(frame, grid)
    hists, skipped = [], []
    if progress:
        progress.stage("replaying SLOs", len(slos))
    for slo in slos:
        try:
            hists.append(replay(slo, sli_from_records(slo, series), s0, e0))
        except UnsupportedQuery as exc:
            skipped.append((slo, f"not computable from job records: {exc}; use --prometheus"))
        if progress:
            progress.advance()
    if progress:
        progress.done()
    return Report(hists, skipped, f"jobs: {records.report.source}", s0, e0, step, records.report)


def from_prometheus(slos: list[SLO], client, start: float, end: float, step: int, mode: str = "sli",
                    progress: Progress | None = None) -> Report:
    from hpcwatch.slo.history.prom import sli_from_prometheus

    check_step(slos, step)
    s0, e0 = int(np.floor(start / step)) * step, int(np.ceil(end / step)) * step
    grid = Grid.covering(s0 - _warmup(slos), e0, step)
    hists = []
    if progress:
        progress.stage("querying Prometheus", len(slos))
    for slo in slos:
        hists.append(replay(slo, sli_from_prometheus(slo, client, grid, mode), s0, e0))
        if progress:
            progress.advance()
    if progress:
        progress.done()
    return Report(hists, [], f"prometheus: {client.url} ({mode})", s0, e0, step, None)
