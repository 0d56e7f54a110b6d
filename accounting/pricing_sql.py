"""The price table as DuckDB SQL: the cost of each part of a summary row, the same arithmetic as cost.py.

`hpcwatch usage report --prices FILE` re-prices the rows it reads (a new table, or summaries written
without one). Per partition, each rate is a CASE over the job's first partition; a GPU-hour is priced by
the GPU's model, longest listed name first, as Rates.gpu_rate does. Prices come from the operator's
file and are written as SQL number literals; partition and model names as SQL string literals.
"""

from __future__ import annotations

from hpcwatch.accounting.cost import GB, J_PER_KWH
from hpcwatch.accounting.layout import sql_str
from hpcwatch.accounting.prices import PriceTable, Rates

PARTITION = "split_part(partition, ',', 1)"


def _num(x: float | None) -> str:
    return "NULL" if x is None else repr(float(x))


def _by_partition(prices: PriceTable, pick) -> str:
    """CASE over the job's partition of one rate (`pick(rates)` -> SQL), the default rates last."""
    arms = [f"WHEN {PARTITION} = {sql_str(name)} THEN {pick(rates)}" for name, rates in prices.listed()]
    return f"(CASE {' '.join(arms)} ELSE {pick(prices.default)} END)" if arms else pick(prices.default)


def _gpu_rate(rates: Rates, model: str) -> str:
    """The price of a GPU-hour of the model in SQL expression `model` (longest listed name contained in it)."""
    arms = [f"WHEN contains(lower({model}), {sql_str(name.lower())}) THEN {_num(price)}"
            for name, price in rates.gpu_models()]
    return f"(CASE {' '.join(arms)} ELSE {_num(rates.gpu_hour)} END)" if arms else _num(rates.gpu_hour)


def _rate_or_zero(rate: float | None, quantity: str) -> str:
    """cost.py's _part: no price costs 0; a price with an unknown quantity leaves the part unknown."""
    return "0.0" if not rate else f"{quantity} * {_num(rate)}"


def cost_parts(prices: PriceTable) -> dict[str, str]:
    """SQL for cost_cpu, cost_mem, cost_gpu, cost_energy and cost of a summary row under `prices`."""
    hours = "(coalesce(elapsed_s, 0) / 3600.0)"
    mem = f"(coalesce(mem_alloc_bytes, mem_req_bytes) / {GB!r})"
    cpu = _by_partition(prices, lambda r: _rate_or_zero(r.cpu_hour, f"cpus_alloc * {hours}"))
    memory = _by_partition(prices, lambda r: _rate_or_zero(r.mem_gb_hour, f"{mem} * {hours}"))
    energy = _by_partition(prices, lambda r: "0.0" if not r.kwh else f"energy_j / {J_PER_KWH!r} * {_num(r.kwh)}")
    # Each allocated GPU at the price of its model: NVML's per-GPU model where known, else the allocation's
    # (cost.py's _gpu_cost); unknown when any GPU has no price.
    n = "coalesce(gpus_alloc, 0)"
    seen = "list_filter(coalesce(per_gpu, []), lambda g: g.model <> '')"
    models = (f"list_concat(list_transform({seen}[1:{n}], lambda g: g.model), "
              f"list_transform(range(greatest(0, {n} - len({seen}))), lambda i: coalesce(gpu_model, '')))")
    rates = _by_partition(prices, lambda r: f"list_transform({models}, lambda m: {_gpu_rate(r, 'm')})")
    gpu = (f"(CASE WHEN coalesce(gpus_alloc, 0) = 0 THEN 0.0 WHEN list_count({rates}) < len({rates}) THEN NULL "
           f"ELSE list_sum({rates}) * {hours} END)")
    parts = {"cost_cpu": cpu, "cost_mem": memory, "cost_gpu": gpu, "cost_energy": energy}
    parts["cost"] = " + ".join(f"coalesce({p}, 0)" for p in parts.values())
    return parts
