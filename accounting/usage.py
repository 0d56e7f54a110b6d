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
# whether the job ended in it, `idle_gpus` the GPUs the job held idle.
def _rows_sql(relation: str, query: UsageQuery) -> str:
    costs = cost_parts(query.prices) if query.prices is not None else {p: p for p in COST_PARTS}
    thr = repr(float(query.gpu_idle_below))
    clusters = (" AND cluster IN (" + ", ".join(f"$c{i}" for i in range(len(query.clusters))) + ")"
                if query.clusters else "")
    return f"""
    WITH src AS (
        SELECT cluster, account, "user", partition, outcome, start, "end", elapsed_s, cpus_alloc, cpu_time_s,
               coalesce(mem_alloc_bytes, mem_req_bytes) AS mem_bytes, mem_peak_bytes, gpus_alloc, gpu_util_mean,
               per_gpu, energy_j, queue_wait_s, currency,
               {", ".join(f"{sql} AS {name}" for name, sql in costs.items())}
        FROM {relation}
        WHERE "end" >= $start AND (start < $end OR "end" < $end){clusters}
    )
    SELECT *,
        ("end" >= $start AND "end" < $end) AS ended,
        CASE WHEN start IS NULL OR coalesce(elapsed_s, 0) <= 0 THEN 0.0
             WHEN start >= $start AND "end" <= $end THEN 1.0
             ELSE greatest(0.0, epoch(least("end", $end)) - epoch(greatest(start, $start)))
                  / nullif(epoch("end") - epoch(start), 0) END AS f,
        CASE WHEN coalesce(gpus_alloc, 0) = 0 THEN 0
             WHEN len(coalesce(per_gpu, [])) > 0
                 THEN len(list_filter(per_gpu, lambda g: g.util_mean < {thr}))
                      + greatest(0, gpus_alloc - len(per_gpu))
             WHEN gpu_util_mean < {thr} THEN gpus_alloc
             ELSE 0 END AS idle_gpus
    FROM src"""


# A run's waste cost: each cost part times the share of that part the job left unused.
WASTE_COST = ("(coalesce(cost_cpu * greatest(0, 1 - cpu_time_s / nullif(cpus_alloc * elapsed_s, 0)), 0)"
              " + coalesce(cost_mem * greatest(0, 1 - mem_peak_bytes / nullif(mem_bytes, 0)), 0)"
              " + coalesce(cost_gpu * idle_gpus / nullif(gpus_alloc, 0), 0))")


def _aggregates() -> list[tuple[str, str]]:
    """(name, SQL aggregate) of every figure of a UsageRow, over the rows of _rows_sql."""
    ov = "coalesce(elapsed_s, 0) * f"
    out = [("jobs", "count(*) FILTER (WHERE ended)")]
    out += [(f"o_{o}", f"count(*) FILTER (WHERE ended AND outcome = '{o}')") for o in OUTCOMES]
    out += [
        ("core_hours", f"coalesce(sum(cpus_alloc * {ov}), 0) / 3600"),
        ("gpu_hours", f"coalesce(sum(coalesce(gpus_alloc, 0) * {ov}), 0) / 3600"),
        ("cpu_efficiency", f"sum(cpu_time_s * f) / nullif(sum(cpus_alloc * {ov}) FILTER "
                           "(WHERE cpu_time_s IS NOT NULL), 0)"),
        ("gpu_efficiency", f"sum(gpu_util_mean * gpus_alloc * {ov}) / nullif(sum(gpus_alloc * {ov}) FILTER "
                           "(WHERE gpu_util_mean IS NOT NULL), 0)"),
        ("mem_efficiency", f"sum(mem_peak_bytes::DOUBLE * {ov}) FILTER (WHERE mem_bytes > 0) / nullif(sum(mem_bytes"
                           f"::DOUBLE * {ov}) FILTER (WHERE mem_peak_bytes IS NOT NULL AND mem_bytes > 0), 0)"),
        ("energy_kwh", "coalesce(sum(energy_j * f), 0) / 3.6e6"),
    ]
    out += [(p, f"coalesce(sum({p} * f), 0)") for p in COST_PARTS]
    out += [
        ("idle_cpu_hours", "coalesce(sum(greatest(0, cpus_alloc * elapsed_s - cpu_time_s) * f), 0) / 3600"),
        ("idle_gpu_hours", f"coalesce(sum(idle_gpus * {ov}), 0) / 3600"),
        ("unused_mem_gb_hours", f"coalesce(sum(greatest(0, mem_bytes - mem_peak_bytes) / {GB!r} * {ov}), 0) / 3600"),
        ("waste_cost", f"coalesce(sum(f * {WASTE_COST}), 0)"),
        ("wait", "quantile_cont(queue_wait_s, [0.5, 0.9]) FILTER (WHERE ended AND queue_wait_s IS NOT NULL)"),
        ("unpriced_jobs", "count(*) FILTER (WHERE f > 0 AND cost IS NULL)"),
    ]
    return out


def _row(key: dict[str, str], values: dict) -> UsageRow:
    r = UsageRow(key=key, jobs=int(values["jobs"]), outcomes={o: int(values[f"o_{o}"]) for o in OUTCOMES})
    for f in dataclasses.fields(UsageRow):
        if f.name in values and f.name not in ("jobs", "key"):
            v = values[f.name]
            setattr(r, f.name, None if v is None or (isinstance(v, float) and math.isnan(v)) else v)
    wait = values["wait"] or [None, None]
    r.wait_p50_s, r.wait_p90_s = wait[0], wait[1]
    r.unpriced_jobs = int(values["unpriced_jobs"])
    return r


def _connect() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def run(root: str, query: UsageQuery, with_series: bool = False, series_top: int = 8) -> UsageReport:
    """The report of `query` over the dataset under `root` (UsageError when it cannot be read)."""
    import time

    files = period_files(root, query)
    params = {"start": _ts(query.start), "end": _ts(query.end)}
    users, rows, total, currency = [], [], UsageRow(key={}), ""
    if files:
        relation = deduplicated(files)
        aggs = _aggregates()
        dims = [f'"{d}"' for d in query.by]
        selected = dims + ([] if "user" in query.by else ['"user"'])
        sets = ", ".join(f"({s})" for s in (", ".join(dims), '"user"', ""))
        # One scan, three groupings: the report's rows, per user (the efficiency chart), the total.
        sql = (f"SELECT {', '.join(selected)}, grouping({', '.join(dims)}) AS g_by, grouping(\"user\") AS g_user, "
               "count(DISTINCT currency) AS currencies, min(currency) AS currency, "
               + ", ".join(f"{sql} AS {name}" for name, sql in aggs)
               + f" FROM ({_rows_sql(relation, query)}) GROUP BY GROUPING SETS ({sets})")
        try:
            cur = _connect().execute(sql, _bind(params, query))
            names = [d[0] for d in cur.description]
            fetched = [dict(zip(names, r)) for r in cur.fetchall()]
        except duckdb.Error as exc:
            raise UsageError(f"{root}: query failed: {exc}") from None
        for v in fetched:
            if v["g_by"] == 0:
                rows.append(_row({d: v[d] or "" for d in query.by}, v))
            elif v["g_user"] == 0:
                users.append(_row({"user": v["user"] or ""}, v))
            else:
                total = _row({}, v)
                currency = _currency(v, query)
        rows.sort(key=lambda r: (-r.cost, -r.core_hours, tuple(r.key.values())))
        users.sort(key=lambda r: (-r.core_hours, r.key["user"]))
    if query.prices is not None:
        currency = query.prices.currency
    report = UsageReport(query=query, dataset=root, files=len(files), currency=currency, rows=rows,
                         total=total, users=users, generated_at=time.time())
    if with_series and files:
        report.series = _series(root, files, query, series_top)
    return report


def _bind(params: dict, query: UsageQuery) -> dict:
    """Named parameters of the queries: the period, and the clusters as $c0, $c1, ..."""
    return {**params, **{f"c{i}": c for i, c in enumerate(query.clusters)}}


def _currency(total: dict, query: UsageQuery) -> str:
    if query.prices is None and (total["currencies"] or 0) > 1:
        raise UsageError("the summaries in this period carry costs in more than one currency; give --prices "
                         "to price them all under one table")
    return total["currency"] or ""


def bucket_unit(query: UsageQuery) -> str:
    """The step of the charts over time: a day up to two months, a week up to a year, else a month."""
    span = query.end - query.start
    return "day" if span <= 62 * 86400 else "week" if span <= 366 * 86400 else "month"


def _series(root: str, files: list[str], query: UsageQuery, top: int) -> dict:
    """Cost and waste cost per bucket for the `top` accounts by cost (the rest as 'other'): each run split
    over the buckets it overlaps by the share of its run time in each."""
    unit = bucket_unit(query)
    sql = f"""
    WITH j AS ({_rows_sql(deduplicated(files), query)}),
    b AS (
        SELECT *, unnest(generate_series(date_trunc('{unit}', greatest(start, $start)),
                                         least("end", $end), INTERVAL 1 {unit})) AS bucket
        FROM j WHERE f > 0),
    s AS (
        SELECT *, CASE WHEN epoch("end") = epoch(start) THEN 0.0 ELSE
            greatest(0.0, epoch(least("end", $end, bucket + INTERVAL 1 {unit}))
                          - epoch(greatest(start, $start, bucket))) / (epoch("end") - epoch(start)) END AS share
        FROM b)
    SELECT epoch(bucket) AS t, account,
           coalesce(sum(cost * share), 0) AS cost,
           coalesce(sum(share * {WASTE_COST}), 0) AS waste_cost,
           coalesce(sum(cpus_alloc * elapsed_s * share), 0) / 3600 AS core_hours
    FROM s GROUP BY ALL ORDER BY t"""
    try:
        rows = _connect().execute(sql, _bind({"start": _ts(query.start), "end": _ts(query.end)}, query)).fetchall()
    except duckdb.Error as exc:
        raise UsageError(f"{root}: query failed: {exc}") from None
    by_account: dict[str, float] = {}
    for _, acct, cost, _, hours in rows:
        by_account[acct or ""] = by_account.get(acct or "", 0.0) + cost + hours * 1e-12
    keep = sorted(by_account, key=lambda a: (-by_account[a], a))[:top]
    times = sorted({t for t, *_ in rows})
    index = {t: i for i, t in enumerate(times)}
    names = keep + (["other"] if len(by_account) > len(keep) else [])
    out = {m: {a: [0.0] * len(times) for a in names} for m in ("cost", "waste_cost", "core_hours")}
    for t, acct, cost, waste, hours in rows:
        a = acct or ""
        a = a if a in keep else "other"
        for m, v in (("cost", cost), ("waste_cost", waste), ("core_hours", hours)):
            out[m][a][index[t]] += v
    return {"unit": unit, "times": times, "accounts": names, **out}


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
