"""`--prometheus URL`: the SLI series from Prometheus range queries, for the same replay as job records.

Two ways in: `sli` (default) range-queries the SLO's own error and total queries over each alert
window, so it works before any rule is deployed (the neutral families or any Sloth/OpenSLO query);
`rules` reads the recorded `slo:sli_error:ratio_rate<window>` and `slo:sli_events:count<window>`
series of deployed rules, selected by `sloth_id`.
"""

from __future__ import annotations

import json
import math
import re
import urllib.error
import urllib.parse
import urllib.request

import numpy as np
from hpcwatch.slo import conventions as c
from hpcwatch.slo.goformat import prom_duration
from hpcwatch.slo.history.compute import SLIData, error_ratio
from hpcwatch.slo.history.events import Grid
from hpcwatch.slo.model import SLO, EventsSLI
from hpcwatch.slo.validate import render_window

MAX_POINTS = 10000   # Prometheus refuses more than 11,000 points per series in one query_range


class PrometheusError(RuntimeError):
    """Prometheus unreachable or a query refused (the message names the query)."""


class PrometheusClient:
    def __init__(self, url: str, timeout: float = 60.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def _get(self, path: str, params: dict[str, str]) -> dict:
        url = f"{self.url}{path}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as resp:
                doc = json.loads(resp.read())
        except urllib.error.HTTPError as exc:
            body = exc.read()[:300].decode("utf-8", "replace")
            raise PrometheusError(f"{params.get('query', path)!r}: HTTP {exc.code}: {body}") from None
        except (urllib.error.URLError, OSError, ValueError) as exc:
            raise PrometheusError(f"{self.url}: {getattr(exc, 'reason', exc)}") from None
        if doc.get("status") != "success":
            raise PrometheusError(f"{params.get('query', path)!r}: {doc.get('error', doc)}")
        return doc["data"]

    def query(self, expr: str, at: float | None = None) -> list[dict]:
        """Instant query: the result vector (each {"metric": labels, "value": [ts, "v"]})."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return list(self._get("/api/v1/query", params).get("result", []))

    def range_sum(self, query: str, grid: Grid) -> np.ndarray:
        """sum over the returned series at each grid time; NaN where no series had a sample."""
        out = np.full(grid.n, np.nan)
        per = MAX_POINTS
        for first in range(0, grid.n, per):
            last = min(grid.n, first + per) - 1
            data = self._get("/api/v1/query_range", {
                "query": query, "start": str(grid.start + first * grid.step),
                "end": str(grid.start + last * grid.step), "step": str(grid.step)})
            for series in data.get("result", []):
                for ts, val in series.get("values", []):
                    i = round((float(ts) - grid.start) / grid.step)
                    v = float(val)
                    if 0 <= i < grid.n and not math.isnan(v):
                        out[i] = v if np.isnan(out[i]) else out[i] + v
        return out


_OR_ZERO = re.compile(r"\s*\bor\s+vector\s*\(\s*0(?:\.0*)?\s*\)")
_SELECTOR = re.compile(r'[a-zA-Z_:][a-zA-Z0-9_:]*\s*\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*\}')


def first_data(grid: Grid, *series: np.ndarray) -> int | None:
    """The first grid time at which any of the series has a sample: where Prometheus' data begins."""
    have = np.zeros(grid.n, dtype=bool)
    for s in series:
        have |= ~np.isnan(s)
    return int(grid.times()[np.argmax(have)]) if have.any() else None


def presence_query(query: str) -> str:
    """A query that has a sample wherever any series the SLI reads exists: `count(sel1) or count(sel2) ...`.

    The SLI itself will not do: `or vector(0)` answers 0 before any series exists, and `a - b` answers
    nothing while a series on one side (say, user cancels) has not appeared yet.
    """
    selectors = list(dict.fromkeys(m.group(0) for m in _SELECTOR.finditer(query)))
    if not selectors:
        return _OR_ZERO.sub("", query)
    return " or ".join(f"count({sel})" for sel in selectors)


def sli_from_prometheus(slo: SLO, client: PrometheusClient, grid: Grid, mode: str = "sli") -> SLIData:
    ratio, events = {}, {}
    windows = slo.windows.windows()
    longs = set(slo.windows.long_windows())
    if mode == "rules":
        flt = f'{{{c.LABEL_ID}="{slo.id}"}}'
        for w in windows:
            ratio[w] = client.range_sum(f"{c.sli_error_metric(w)}{flt}", grid)
            if w in longs and slo.min_events:
                events[w] = np.nan_to_num(client.range_sum(f"{c.sli_events_metric(w)}{flt}", grid), nan=-1)
        return SLIData(grid.times(), ratio, events, data_start=first_data(grid, *ratio.values()))
    short = prom_duration(min(windows))
    if not isinstance(slo.sli, EventsSLI):
        for w in windows:
            ratio[w] = client.range_sum(render_window(slo.sli.error_ratio_query, prom_duration(w)), grid)
        seen = client.range_sum(render_window(presence_query(slo.sli.error_ratio_query), short), grid)
        return SLIData(grid.times(), ratio, events, data_start=first_data(grid, seen))

    def pair(w: int) -> tuple[np.ndarray, np.ndarray]:
        err = np.nan_to_num(client.range_sum(render_window(slo.sli.error_query, prom_duration(w)), grid))
        tot = np.nan_to_num(client.range_sum(render_window(slo.sli.total_query, prom_duration(w)), grid))
        return err, tot

    for w in windows:
        err, tot = pair(w)
        ratio[w] = error_ratio(err, tot)
        if w in longs:
            events[w] = tot * w if slo.events_per_second else tot
    step_err, step_tot = pair(grid.step)
    seen = client.range_sum(render_window(presence_query(slo.sli.total_query), short), grid)
    return SLIData(grid.times(), ratio, events, step_err, step_tot, first_data(grid, seen))
