"""`hpcwatch usage report`: usage, efficiency, energy, cost, waste and queue wait over a period, grouped by
any of cluster, account, user and partition, read from the summary dataset with DuckDB.

What counts where:
- **usage** (core- and GPU-hours, energy, cost, waste) is the part of each run inside the period: a job
  that ran across its start or end counts with the share of its run time inside, as sreport's hourly
  rollups count it; a job wholly inside counts whole (CPUs x sacct's elapsed time, exactly);
- **jobs** (counts by outcome, queue wait) are the jobs that ended in the period, as `sacct -S -E` lists them;
- **efficiency** is a ratio of totals: CPU time used / CPU time allocated, GPU utilisation weighted by
  GPU-hours, memory peak / memory allocated weighted by run time; jobs with no figure are left out of both;
- **waste** is what was allocated and not used: idle CPU-hours (allocated CPU time less CPU time used),
  GPU-hours of GPUs whose mean utilisation was below the threshold (or that no sample saw used: the
  gpu_idle rule of `job report`), and memory allocated above the job's peak, in GB-hours; its cost is
  each job's cost part times the share of that part it wasted.
"""

from __future__ import annotations

import dataclasses
import datetime
import math
import re
from collections.abc import Sequence

import duckdb
from hpcwatch.accounting.cost import GB
from hpcwatch.accounting.layout import data_files, deduplicated, month_of_file
from hpcwatch.accounting.prices import PriceTable
from hpcwatch.accounting.pricing_sql import cost_parts
from hpcwatch.accounting.rules import GPU_IDLE
from hpcwatch.exporters.scheduler.outcomes import OUTCOMES

DIMENSIONS = ("cluster", "account", "user", "partition")
COST_PARTS = ("cost", "cost_cpu", "cost_mem", "cost_gpu", "cost_energy")


class UsageError(RuntimeError):
    """The report cannot be made (the message says why and what to change)."""


@dataclasses.dataclass(frozen=True)
class UsageQuery:
    """What to report: the period [start, end) in Unix seconds, the grouping, and how to judge waste."""

    start: float
    end: float
    by: tuple[str, ...] = ("account",)
    clusters: tuple[str, ...] = ()
    gpu_idle_below: float = GPU_IDLE
    prices: PriceTable | None = None

    def __post_init__(self) -> None:
        bad = [d for d in self.by if d not in DIMENSIONS]
        if bad or len(set(self.by)) != len(self.by):
            raise UsageError(f"--by {','.join(self.by)}: expected distinct names among {', '.join(DIMENSIONS)}")
        if not self.end > self.start:
            raise UsageError("the period is empty: --to must be after --from")
        if not 0 <= self.gpu_idle_below <= 1:
            raise UsageError(f"--gpu-idle-below {self.gpu_idle_below}: expected a utilisation between 0 and 1")


@dataclasses.dataclass
class UsageRow:
    """One group's figures; None where no job of the group had the figure."""

    key: dict[str, str]
    jobs: int = 0
    outcomes: dict[str, int] = dataclasses.field(default_factory=dict)
    core_hours: float = 0.0
    gpu_hours: float = 0.0
    cpu_efficiency: float | None = None
    gpu_efficiency: float | None = None
    mem_efficiency: float | None = None
    energy_kwh: float = 0.0
    cost: float = 0.0
    cost_cpu: float = 0.0
    cost_mem: float = 0.0
    cost_gpu: float = 0.0
    cost_energy: float = 0.0
    idle_cpu_hours: float = 0.0
    idle_gpu_hours: float = 0.0
    unused_mem_gb_hours: float = 0.0
    waste_cost: float = 0.0
    wait_p50_s: float | None = None
    wait_p90_s: float | None = None
    unpriced_jobs: int = 0


@dataclasses.dataclass
class UsageReport:
    query: UsageQuery
    dataset: str
    files: int
    currency: str
    rows: list[UsageRow]
    total: UsageRow
    users: list[UsageRow]                       # per user, for the efficiency-against-usage chart
    generated_at: float
    series: dict | None = None                  # cost and waste by account over time (HTML)


def _ts(t: float) -> datetime.datetime:
    return datetime.datetime.fromtimestamp(t, datetime.UTC)


def _month(t: float) -> str:
    return _ts(t).strftime("%Y-%m")


def period_files(root: str, query: UsageQuery) -> list[str]:
    """Data files that can hold runs overlapping the period: months from the period's first onwards
    (a job is filed under the month it ended, which is never before the period starts)."""
    files = [f for c in (query.clusters or (None,)) for f in data_files(root, c)]
    first = _month(query.start)
    return sorted(f for f in set(files) if month_of_file(f) >= first)


# Per row: `f` is the share of the run inside the period (1 when wholly inside, so sums stay exact), `ended`
# whether the job ended in it, `idle_gpus` the GPUs the job held idle. Of the per-GPU list only the
# utilisation is read (DuckDB then skips the other fields' pages).
def _rows_sql(relation: str, query: UsageQuery) -> str:
    costs = cost_parts(query.prices) if query.prices is not None else {p: p for p in COST_PARTS}
    thr = repr(float(query.gpu_idle_below))
    clusters = (" AND cluster IN (" + ", ".join(f"$c{i}" for i in range(len(query.clusters))) + ")"
                if query.clusters else "")
    columns = f"""cluster, account, "user", partition, outcome, start, "end", elapsed_s, cpus_alloc, cpu_time_s,
               coalesce(mem_alloc_bytes, mem_req_bytes) AS mem_bytes, mem_peak_bytes, gpus_alloc, gpu_util_mean,
               list_transform(per_gpu, lambda g: g.util_mean) AS gpu_utils, energy_j, queue_wait_s, currency,
               {", ".join(f"{sql} AS {name}" for name, sql in costs.items())}"""
    # Two scans, each a plain range DuckDB prunes row groups with (an OR of the two would read every row
    # group of every later month): runs that overlap the period, and jobs that ended in it never having run.
    return f"""
    WITH src AS (
        SELECT {columns} FROM {relation} WHERE start < $end AND "end" >= $start{clusters}
        UNION ALL
        SELECT {columns} FROM {relation} WHERE start IS NULL AND "end" >= $start AND "end" < $end{clusters}
    )
    SELECT *,
        ("end" >= $start AND "end" < $end) AS ended,
        CASE WHEN start IS NULL OR coalesce(elapsed_s, 0) <= 0 THEN 0.0
             WHEN start >= $start AND "end" <= $end THEN 1.0
             ELSE greatest(0.0, epoch(least("end", $end)) - epoch(greatest(start, $start)))
                  / nullif(epoch("end") - epoch(start), 0) END AS f,
        CASE WHEN coalesce(gpus_alloc, 0) = 0 THEN 0
             WHEN len(coalesce(gpu_utils, [])) > 0
                 THEN len(list_filter(gpu_utils, lambda u: u < {thr})) + greatest(0, gpus_alloc - len(gpu_utils))
             WHEN gpu_util_mean < {thr} THEN gpus_alloc
             ELSE 0 END AS idle_gpus
    FROM src"""


# A run's waste cost: each cost part times the share of that part the job left unused.
WASTE_COST = ("(coalesce(cost_cpu * greatest(0, 1 - cpu_time_s / nullif(cpus_alloc * elapsed_s, 0)), 0)"
              " + coalesce(cost_mem * greatest(0, 1 - mem_peak_bytes / nullif(mem_bytes, 0)), 0)"
              " + coalesce(cost_gpu * idle_gpus / nullif(gpus_alloc, 0), 0))")


def _partials() -> list[tuple[str, str]]:
    """(name, SQL aggregate over the rows of _rows_sql) of the sums every figure is made of; all of them
    add up, so one pass groups by the finest key and the report's groupings roll those rows up."""
    ov = "coalesce(elapsed_s, 0) * f"
    out = [("jobs", "count(*) FILTER (WHERE ended)")]
    out += [(f"o_{o}", f"count(*) FILTER (WHERE ended AND outcome = '{o}')") for o in OUTCOMES]
    out += [
        ("core_s", f"sum(cpus_alloc * {ov})"),
        ("gpu_s", f"sum(coalesce(gpus_alloc, 0) * {ov})"),
        ("cpu_used_s", "sum(cpu_time_s * f)"),
        ("cpu_alloc_s", f"sum(cpus_alloc * {ov}) FILTER (WHERE cpu_time_s IS NOT NULL)"),
        ("gpu_busy_s", f"sum(gpu_util_mean * gpus_alloc * {ov})"),
        ("gpu_seen_s", f"sum(gpus_alloc * {ov}) FILTER (WHERE gpu_util_mean IS NOT NULL)"),
        ("mem_peak_bs", f"sum(mem_peak_bytes::DOUBLE * {ov}) FILTER (WHERE mem_bytes > 0)"),
        ("mem_alloc_bs", f"sum(mem_bytes::DOUBLE * {ov}) FILTER (WHERE mem_peak_bytes IS NOT NULL AND mem_bytes > 0)"),
        ("energy_j", "sum(energy_j * f)"),
        *((p, f"sum({p} * f)") for p in COST_PARTS),
        ("idle_cpu_s", "sum(greatest(0, cpus_alloc * elapsed_s - cpu_time_s) * f)"),
        ("idle_gpu_s", f"sum(idle_gpus * {ov})"),
        ("unused_mem_gbs", f"sum(greatest(0, mem_bytes - mem_peak_bytes) / {GB!r} * {ov})"),
        ("waste_cost", f"sum(f * {WASTE_COST})"),
        ("unpriced_jobs", "count(*) FILTER (WHERE f > 0 AND cost IS NULL)"),
        ("currency_min", "min(currency)"),
        ("currency_max", "max(currency)"),
    ]
    return out


# UsageRow fields as SQL over the rolled-up partial sums.
FIGURES = {
    "jobs": "sum(jobs)", **{f"o_{o}": f"sum(o_{o})" for o in OUTCOMES},
    "core_hours": "coalesce(sum(core_s), 0) / 3600", "gpu_hours": "coalesce(sum(gpu_s), 0) / 3600",
    "cpu_efficiency": "sum(cpu_used_s) / nullif(sum(cpu_alloc_s), 0)",
    "gpu_efficiency": "sum(gpu_busy_s) / nullif(sum(gpu_seen_s), 0)",
    "mem_efficiency": "sum(mem_peak_bs) / nullif(sum(mem_alloc_bs), 0)",
    "energy_kwh": "coalesce(sum(energy_j), 0) / 3.6e6",
    **{p: f"coalesce(sum({p}), 0)" for p in COST_PARTS},
    "idle_cpu_hours": "coalesce(sum(idle_cpu_s), 0) / 3600", "idle_gpu_hours": "coalesce(sum(idle_gpu_s), 0) / 3600",
    "unused_mem_gb_hours": "coalesce(sum(unused_mem_gbs), 0) / 3600", "waste_cost": "coalesce(sum(waste_cost), 0)",
    "unpriced_jobs": "sum(unpriced_jobs)", "currency": "min(currency_min)", "currency_last": "max(currency_max)",
}


def _row(key: dict[str, str], values: dict, wait: list | None) -> UsageRow:
    r = UsageRow(key=key, jobs=int(values["jobs"] or 0),
                 outcomes={o: int(values.get(f"o_{o}") or 0) for o in OUTCOMES})
    for f in dataclasses.fields(UsageRow):
        if f.name in values and f.name not in ("jobs", "key", "outcomes"):
            v = values[f.name]
            setattr(r, f.name, None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    r.unpriced_jobs = int(values.get("unpriced_jobs") or 0)
    r.wait_p50_s, r.wait_p90_s = (wait or [None, None])[:2]
    return r


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()



def _fetch(root: str, sql: str, params: dict) -> list[dict]:
    try:
        cur = _connect().execute(sql, params)
        names = [d[0] for d in cur.description]
        return [dict(zip(names, r)) for r in cur.fetchall()]
    except duckdb.Error as exc:
        raise UsageError(f"{root}: query failed: {exc}") from None


def _summed(rows_sql: str, keys: list[str], sets: str, figures: tuple[str, ...] | None = None) -> str:
    """SQL of the FIGURES (or only `figures`) of `rows_sql` (rows with the columns _partials reads) for each
    grouping in `sets` (grouping flag `g`): the partial sums (the heavy pass: one hash aggregation per set),
    then the figures of each of those few rows."""
    k = ", ".join(keys)
    wanted = {n: FIGURES[n] for n in figures or FIGURES}
    partials = [(n, sql) for n, sql in _partials() if any(re.search(rf"\b{n}\b", f) for f in wanted.values())]
    return f"""
        WITH p AS (SELECT {k}, grouping({k}) AS g, {", ".join(f"{sql} AS {name}" for name, sql in partials)}
                   FROM ({rows_sql}) GROUP BY {sets})
        SELECT {k}, g, {", ".join(f"{sql} AS {name}" for name, sql in wanted.items())} FROM p GROUP BY g, {k}"""


def run(root: str, query: UsageQuery, with_series: bool = False, series_top: int = 8) -> UsageReport:
    """The report of `query` over the dataset under `root` (UsageError when it cannot be read); with_series
    adds what the HTML page draws: cost and waste by account over time, and the figures per user."""
    import time

    files = period_files(root, query)
    params = _bind({"start": _ts(query.start), "end": _ts(query.end)}, query)
    report = UsageReport(query=query, dataset=root, files=len(files), currency="", rows=[], total=UsageRow(key={}),
                         users=[], generated_at=time.time())
    currency = ""
    if files:
        relation = deduplicated(files)
        dims = [f'"{d}"' for d in query.by]
        keys, sets = ", ".join(dims), f"GROUPING SETS (({', '.join(dims)}), ())"
        clusters = (" AND cluster IN (" + ", ".join(f"$c{i}" for i in range(len(query.clusters))) + ")"
                    if query.clusters else "")
        # Queue-wait quantiles do not add up: a light pass of their own over the jobs that ended.
        waits = {tuple(v[d] or "" for d in query.by) if v["g"] == 0 else None: v["wait"] for v in _fetch(root, f"""
            SELECT {keys}, grouping({keys}) AS g, quantile_cont(queue_wait_s, [0.5, 0.9]) AS wait FROM {relation}
            WHERE "end" >= $start AND "end" < $end AND queue_wait_s IS NOT NULL{clusters} GROUP BY {sets}""",
            params)}
        for v in _fetch(root, _summed(_rows_sql(relation, query), dims, sets), params):
            if v["g"] == 0:
                key = tuple(v[d] or "" for d in query.by)
                report.rows.append(_row(dict(zip(query.by, key)), v, waits.get(key)))
            else:
                report.total = _row({}, v, waits.get(None))
                currency = _currency(v, query)
        report.rows.sort(key=lambda r: (-r.cost, -r.core_hours, tuple(r.key.values())))
        if with_series:
            report.series, report.users = _series(root, relation, query, params, series_top)
    report.currency = query.prices.currency if query.prices is not None else currency
    return report


def _bind(params: dict, query: UsageQuery) -> dict:
    """Named parameters of the queries: the period, and the clusters as $c0, $c1, ..."""
    return {**params, **{f"c{i}": c for i, c in enumerate(query.clusters)}}


def _currency(total: dict, query: UsageQuery) -> str:
    if query.prices is None and total["currency"] != total["currency_last"]:
        raise UsageError("the summaries in this period carry costs in more than one currency; give --prices "
                         "to price them all under one table")
    return total["currency"] or ""


def bucket_unit(query: UsageQuery) -> str:
    """The step of the charts over time: a day up to two months, a week up to a year, else a month."""
    span = query.end - query.start
    return "day" if span <= 62 * 86400 else "week" if span <= 366 * 86400 else "month"


# What the HTML page draws from the series pass: the bars over time and the efficiency chart per user.
SERIES_FIGURES = ("jobs", "core_hours", "gpu_hours", "cpu_efficiency", "gpu_efficiency", "cost", "waste_cost")


def _series(root: str, relation: str, query: UsageQuery, params: dict, top: int) -> tuple[dict, list[UsageRow]]:
    """Cost, waste and core-hours per time bucket for the `top` accounts by cost (the rest as 'other'), and
    the figures per user: one pass over the runs split into the buckets they overlap, each part weighted by
    the share of the run's time in its bucket (the parts of a run add up to its share in the period)."""
    unit = bucket_unit(query)
    split = f"""
        SELECT * FROM (SELECT * REPLACE (CASE WHEN epoch("end") = epoch(start) THEN f ELSE
            greatest(0.0, epoch(least("end", $end, bucket + INTERVAL 1 {unit}))
                          - epoch(greatest(start, $start, bucket))) / (epoch("end") - epoch(start)) END AS f),
            epoch(bucket) AS t
        FROM (SELECT *, unnest(generate_series(date_trunc('{unit}', greatest(start, $start)),
                                               least("end", $end), INTERVAL 1 {unit})) AS bucket
              FROM ({_rows_sql(relation, query)}) WHERE f > 0)) WHERE f > 0"""
    got = _fetch(root, _summed(split, ["t", "account", '"user"'], 'GROUPING SETS ((t, account), ("user"))',
                               SERIES_FIGURES), params)
    users = [_row({"user": v["user"] or ""}, v, None) for v in got if v["g"] == 0b110]
    users.sort(key=lambda r: (-r.core_hours, r.key["user"]))
    cells = [(v["t"], v["account"] or "", v) for v in got if v["g"] == 0b001]
    by_account: dict[str, tuple[float, float]] = {}
    for _, a, v in cells:
        cost, hours = by_account.get(a, (0.0, 0.0))
        by_account[a] = (cost + v["cost"], hours + v["core_hours"])
    keep = sorted(by_account, key=lambda a: (-by_account[a][0], -by_account[a][1], a))[:top]
    times = sorted({t for t, _, _ in cells})
    index = {t: i for i, t in enumerate(times)}
    names = keep + (["other"] if len(by_account) > len(keep) else [])
    out = {m: {a: [0.0] * len(times) for a in names} for m in ("cost", "waste_cost", "core_hours")}
    for t, a, v in cells:
        for m in out:
            out[m][a if a in keep else "other"][index[t]] += v[m]
    return {"unit": unit, "times": times, "accounts": names, **out}, users


def parse_when(text: str, what: str) -> float:
    """A UTC date or time: 2026-03-01, 2026-03-01T12:00[:00], or now; Unix seconds."""
    if text == "now":
        import time
        return time.time()
    try:
        t = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise UsageError(f"{what} {text!r}: expected a UTC date or time such as 2026-03-01 or 2026-03-01T12:00, "
                         "or now") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


def month_period(text: str) -> tuple[float, float]:
    """[first second, first second of the next month) of 'YYYY-MM' (UTC)."""
    try:
        first = datetime.datetime.strptime(text, "%Y-%m").replace(tzinfo=datetime.UTC)
    except ValueError:
        raise UsageError(f"--month {text!r}: expected YYYY-MM such as 2026-03") from None
    nxt = (first + datetime.timedelta(days=32)).replace(day=1)
    return first.timestamp(), nxt.timestamp()


def dimensions(text: str) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip())


def as_dicts(rows: Sequence[UsageRow]) -> list[dict]:
    return [dataclasses.asdict(r) for r in rows]
