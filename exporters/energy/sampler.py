"""Energy counters per job, from successive node samples: deltas, one attribution per interval, totals.

A NodeSample holds cumulative readings (RAPL totals already made monotonic across wraps, GPU energy
since driver load, CPU seconds of the node and of each job) and the meter's power now. Each new
sample makes an Interval against the previous one (attribution.attribute) and adds its parts to
running totals: per job and component, unattributed, and the node's. The first sample only sets the
baseline. A job first seen after that started within the interval, so its CPU time counts from 0.
A reading that went backwards (driver reload, counter reset) counts from 0 as well.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

from hpcwatch.exporters.energy.attribution import COMPONENTS, GpuDelta, Interval, MigShare, attribute


@dataclasses.dataclass(frozen=True)
class MigReading:
    key: str
    sms: int
    jobs: tuple[str, ...]


@dataclasses.dataclass(frozen=True)
class GpuReading:
    """One physical GPU: energy since driver load (J), SMs, jobs, or its MIG instances."""

    key: str
    joules_total: float | None
    sms: int = 0
    jobs: tuple[str, ...] = ()
    instances: tuple[MigReading, ...] | None = None


@dataclasses.dataclass(frozen=True)
class NodeSample:
    at: float                                    # monotonic seconds
    cpu_j_total: float | None = None             # RAPL packages, monotonic
    dram_j_total: float | None = None            # RAPL DRAM, monotonic
    meter_w: float | None = None                 # node power now (hwmon power meter or IPMI), None: no meter
    busy_s_total: float = 0.0                    # node CPU seconds not idle
    ncpus: int = 0                               # online CPUs
    jobs_cpu_s_total: Mapping[str, float] = dataclasses.field(default_factory=dict)
    jobs_cpus: Mapping[str, int] = dataclasses.field(default_factory=dict)
    gpus: Sequence[GpuReading] = ()


def _delta(now: float | None, before: float | None) -> float:
    """now - before; 0 without both readings; `now` itself when the reading went backwards (a reset)."""
    if now is None or before is None:
        return 0.0
    return now - before if now >= before else now


class EnergyTotals:
    """Running joules per job and component, unattributed and node totals; fed one sample at a time."""

    def __init__(self) -> None:
        self.previous: NodeSample | None = None
        self.jobs: dict[str, dict[str, float]] = {}
        self.unattributed: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
        self.node: dict[str, float] = dict.fromkeys(COMPONENTS, 0.0)
        self.has: set[str] = set()               # components this node measures at all

    def feed(self, s: NodeSample) -> Interval | None:
        """Add the interval since the previous sample; returns it (None for the first sample)."""
        prev, self.previous = self.previous, s
        self._note_components(s)
        if prev is None:
            return None
        iv = interval(prev, s)
        a = attribute(iv)
        for c in COMPONENTS:
            self.node[c] += a.node[c]
            self.unattributed[c] += a.unattributed[c]
        for job, parts in a.jobs.items():
            mine = self.jobs.setdefault(job, dict.fromkeys(COMPONENTS, 0.0))
            for c, v in parts.items():
                mine[c] += v
        # Jobs gone from the node: their counters go with them (a summary has read them by then).
        alive = set(s.jobs_cpu_s_total) | {j for g in s.gpus for j in g.jobs} | \
            {j for g in s.gpus for i in (g.instances or ()) for j in i.jobs}
        for job in [j for j in self.jobs if j not in alive]:
            del self.jobs[job]
        return iv

    def _note_components(self, s: NodeSample) -> None:
        if s.cpu_j_total is not None:
            self.has.add("cpu")
        if s.dram_j_total is not None:
            self.has.add("dram")
        if any(g.joules_total is not None for g in s.gpus):
            self.has.add("gpu")
        if s.meter_w is not None:
            self.has.add("other")


def interval(prev: NodeSample, s: NodeSample) -> Interval:
    """The Interval between two samples."""
    dt = max(0.0, s.at - prev.at)
    meter_j = None
    if s.meter_w is not None:
        watts = s.meter_w if prev.meter_w is None else (prev.meter_w + s.meter_w) / 2   # trapezoid
        meter_j = watts * dt
    jobs_cpu = {j: _delta(v, prev.jobs_cpu_s_total.get(j, 0.0)) for j, v in s.jobs_cpu_s_total.items()}
    before = {g.key: g.joules_total for g in prev.gpus}
    gpus = []
    for g in s.gpus:
        joules = _delta(g.joules_total, before.get(g.key)) if g.key in before else 0.0
        instances = None if g.instances is None else tuple(MigShare(i.sms, i.jobs) for i in g.instances)
        gpus.append(GpuDelta(g.key, joules, g.jobs, g.sms, instances))
    exclusive = None
    if len(s.jobs_cpus) == 1 and s.ncpus:
        (job, cpus), = s.jobs_cpus.items()
        if cpus >= s.ncpus:
            exclusive = job
    return Interval(cpu_j=_delta(s.cpu_j_total, prev.cpu_j_total), dram_j=_delta(s.dram_j_total, prev.dram_j_total),
                    meter_j=meter_j, node_busy_s=_delta(s.busy_s_total, prev.busy_s_total), jobs_cpu_s=jobs_cpu,
                    exclusive=exclusive, gpus=gpus)
