"""Cost of a job under a price table: allocated CPU-, memory GB- and GPU-hours, and attributed kWh."""

from __future__ import annotations

from hpcwatch.accounting.prices import PriceTable
from hpcwatch.accounting.record import JobSummary

GB = float(1 << 30)   # Slurm counts memory in powers of 1024
J_PER_KWH = 3.6e6


def apply_cost(s: JobSummary, prices: PriceTable) -> None:
    """Fill the cost columns of `s`; a part whose quantity is unknown is None and noted as missing."""
    rates = prices.rates(s.partition)
    hours = (s.elapsed_s or 0.0) / 3600.0
    s.currency = prices.currency
    s.cost_cpu = _part(s, "cost_cpu", s.cpus_alloc, rates.cpu_hour, hours)
    mem = s.mem_alloc_bytes if s.mem_alloc_bytes is not None else s.mem_req_bytes
    s.cost_mem = _part(s, "cost_mem", None if mem is None else mem / GB, rates.mem_gb_hour, hours)
    s.cost_gpu = _gpu_cost(s, prices.rates(s.partition), hours)
    if s.energy_j is None:
        s.cost_energy = None if rates.kwh else 0.0
        if rates.kwh:
            s.note_missing("cost_energy", "no energy measured for the job")
    else:
        s.cost_energy = s.energy_j / J_PER_KWH * (rates.kwh or 0.0)
    parts = (s.cost_cpu, s.cost_mem, s.cost_gpu, s.cost_energy)
    s.cost = sum(p for p in parts if p is not None)


def _part(s: JobSummary, name: str, quantity: float | None, rate: float | None, hours: float) -> float | None:
    if not rate:
        return 0.0
    if quantity is None:
        s.note_missing(name, "quantity unknown")
        return None
    return quantity * hours * rate


def _gpu_cost(s: JobSummary, rates, hours: float) -> float | None:
    """Each GPU at the price of its model: per-GPU models from NVML where known, else the allocation's."""
    n = s.gpus_alloc or 0
    if n == 0:
        return 0.0
    models = [g.model for g in s.per_gpu if g.model][:n]
    models += [s.gpu_model] * (n - len(models))
    total = 0.0
    for model in models:
        rate = rates.gpu_rate(model)
        if rate is None:
            s.note_missing("cost_gpu", f"no gpu_hour price for model {model or 'untyped'!r}")
            return None
        total += rate * hours
    return total
