"""`usage report` as text (two tables: usage and cost; efficiency and waste), CSV (one row per group) and JSON."""

from __future__ import annotations

import csv
import dataclasses
import datetime
import io
import json

from hpcwatch.accounting.usage import UsageReport, UsageRow
from hpcwatch.exporters.scheduler.outcomes import OUTCOMES

from hpcwatch.version import __version__

# CSV and JSON columns after the grouping keys, in order: (field, header).
COLUMNS = (
    ("jobs", "jobs"), *((f"outcomes.{o}", f"jobs_{o}") for o in OUTCOMES),
    ("core_hours", "core_hours"), ("gpu_hours", "gpu_hours"), ("cpu_efficiency", "cpu_efficiency"),
    ("gpu_efficiency", "gpu_efficiency"), ("mem_efficiency", "mem_efficiency"), ("energy_kwh", "energy_kwh"),
    ("cost", "cost"), ("cost_cpu", "cost_cpu"), ("cost_mem", "cost_mem"), ("cost_gpu", "cost_gpu"),
    ("cost_energy", "cost_energy"), ("idle_cpu_hours", "idle_cpu_hours"), ("idle_gpu_hours", "idle_gpu_hours"),
    ("unused_mem_gb_hours", "unused_mem_gb_hours"), ("waste_cost", "waste_cost"),
    ("wait_p50_s", "queue_wait_p50_s"), ("wait_p90_s", "queue_wait_p90_s"),
)


def _get(row: UsageRow, field: str):
    if field.startswith("outcomes."):
        return row.outcomes.get(field.split(".", 1)[1], 0)
    return getattr(row, field)


def utc(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M")


def period_text(r: UsageReport) -> str:
    return f"{utc(r.query.start)} .. {utc(r.query.end)} UTC"


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.0%}"


def num(x: float | None, digits: int = 0) -> str:
    return "-" if x is None else f"{x:,.{digits}f}"


def wait(s: float | None) -> str:
    if s is None:
        return "-"
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if s >= size:
            return f"{s / size:.1f}{unit}"
    return f"{s:.0f}s"


def failed(row: UsageRow) -> int:
    """Jobs that ended neither in success nor cancelled by their owner or an admin."""
    return sum(n for o, n in row.outcomes.items() if o not in ("success", "cancelled"))


def _table(head: tuple[str, ...], rows: list[tuple[str, ...]], keys: int) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    out = []
    for r in [head, *rows]:
        out.append("  ".join(c.ljust(w) if i < keys else c.rjust(w)
                             for i, (c, w) in enumerate(zip(r, widths))).rstrip())
    return out


def render_text(r: UsageReport) -> str:
    by, cur = r.query.by, r.currency
    groups = [(*(row.key[d] or "-" for d in by), row) for row in r.rows] + [(*(["TOTAL"] + [""] * (len(by) - 1)),
                                                                            r.total)]
    usage = _table((*by, "jobs", "ok", "failed", "cancel", "core-h", "GPU-h", "kWh", f"cost {cur}".strip(),
                    "wait p50", "wait p90"),
                   [(*g[:-1], num(g[-1].jobs), num(g[-1].outcomes.get("success", 0)), num(failed(g[-1])),
                     num(g[-1].outcomes.get("cancelled", 0)), num(g[-1].core_hours, 1), num(g[-1].gpu_hours, 1),
                     num(g[-1].energy_kwh, 1), num(g[-1].cost, 2), wait(g[-1].wait_p50_s), wait(g[-1].wait_p90_s))
                    for g in groups], len(by))
    waste = _table((*by, "CPU eff", "GPU eff", "mem eff", "idle CPU-h", "idle GPU-h", "unused GB-h",
                    f"waste {cur}".strip(), "waste %"),
                   [(*g[:-1], pct(g[-1].cpu_efficiency), pct(g[-1].gpu_efficiency), pct(g[-1].mem_efficiency),
                     num(g[-1].idle_cpu_hours, 1), num(g[-1].idle_gpu_hours, 1), num(g[-1].unused_mem_gb_hours, 1),
                     num(g[-1].waste_cost, 2), pct(g[-1].waste_cost / g[-1].cost if g[-1].cost else None))
                    for g in groups], len(by))
    out = [f"Usage {period_text(r)}, by {', '.join(by)}, from {r.dataset} ({r.files} files)", "", *usage, "",
           "Efficiency and waste", "", *waste, "", *notes(r)]
    return "\n".join(out) + "\n"


def notes(r: UsageReport) -> list[str]:
    """What the figures mean, and what the data lacked."""
    out = ["jobs, outcomes and waits: jobs that ended in the period; hours, energy, cost and waste: the part of "
           "each run inside it.",
           f"waste: allocated CPU time not used; GPU-hours of GPUs below {r.query.gpu_idle_below:.0%} mean "
           "utilisation; memory allocated above the job's peak. Its cost: each job's cost part times the share "
           "wasted."]
    if r.query.prices is not None:
        out.append(f"cost: re-priced under {r.query.prices.source or 'the given price table'}.")
    if r.total.unpriced_jobs:
        out.append(f"{r.total.unpriced_jobs:,} runs carry no cost (summaries written without a price table): "
                   "give --prices FILE to price them.")
    if not r.files:
        out.append("no summaries in the dataset for this period.")
    return out


def render_csv(r: UsageReport) -> str:
    """One line per group: the grouping keys, then COLUMNS (empty where unknown)."""
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([*r.query.by, *(h for _, h in COLUMNS), "currency"])
    for row in r.rows:
        values = [_get(row, f) for f, _ in COLUMNS]
        w.writerow([*(row.key[d] for d in r.query.by), *("" if v is None else v for v in values), r.currency])
    return buf.getvalue()


def row_dict(row: UsageRow) -> dict:
    d = dataclasses.asdict(row)
    d["failed"] = failed(row)
    return d


def to_json(r: UsageReport) -> dict:
    return {
        "period": {"start": datetime.datetime.fromtimestamp(r.query.start, datetime.UTC).isoformat(),
                   "end": datetime.datetime.fromtimestamp(r.query.end, datetime.UTC).isoformat()},
        "group_by": list(r.query.by), "clusters": list(r.query.clusters), "currency": r.currency,
        "gpu_idle_below": r.query.gpu_idle_below,
        "prices": r.query.prices.source if r.query.prices is not None else None,
        "rows": [row_dict(x) for x in r.rows], "total": row_dict(r.total), "notes": notes(r),
        "dataset": r.dataset, "files": r.files, "generated_by": f"hpcwatch {__version__}",
    }


def render_json(r: UsageReport) -> str:
    return json.dumps(to_json(r), indent=2, sort_keys=True) + "\n"
