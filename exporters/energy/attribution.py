"""Energy attribution, pure: one sampling interval's node energy split among the jobs on the node.

Components (the `component` label):
- cpu: RAPL package zones, summed over sockets;
- dram: RAPL DRAM zones;
- gpu: NVML energy of each GPU;
- other: what a node power meter (hwmon power_meter, IPMI DCMI) measured beyond the three above
  (fans, disks, NICs, power supply losses); only where the node has a meter.

How each is split:
- cpu, dram and other go to jobs by their share of the node's busy CPU time in the interval
  (job CPU seconds / node CPU seconds not idle); CPU time of processes outside jobs (daemons, the
  kernel) keeps its share unattributed. A job that holds every CPU of the node is exclusive: the
  node is its own, so it gets all of these, and the energy of GPUs no other job is mapped to.
- gpu: each GPU's energy goes to the jobs mapped to it, split evenly when several share it; a GPU in
  MIG mode is split among its instances by their share of the GPU's SMs, each instance's part going
  to its jobs. A GPU (or instance, or SM share of no instance) without a job is unattributed.
By construction, for every component, the jobs' parts plus the unattributed part equal the node's.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence

COMPONENTS = ("cpu", "dram", "gpu", "other")


@dataclasses.dataclass(frozen=True)
class MigShare:
    """A MIG instance of a GPU: its SMs and the jobs mapped to it."""

    sms: int
    jobs: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True)
class GpuDelta:
    """One physical GPU in the interval: the energy it used, the jobs mapped to it, or its MIG instances."""

    key: str
    joules: float
    jobs: tuple[str, ...] = ()
    sms: int = 0                                  # the GPU's SMs (the denominator of MIG shares)
    instances: tuple[MigShare, ...] | None = None  # None: not in MIG mode


@dataclasses.dataclass(frozen=True)
class Interval:
    """What the node used between two samples, and who was running."""

    cpu_j: float = 0.0
    dram_j: float = 0.0
    meter_j: float | None = None                  # the node meter's energy, None without a meter
    node_busy_s: float = 0.0                      # CPU seconds the node spent not idle
    jobs_cpu_s: Mapping[str, float] = dataclasses.field(default_factory=dict)
    exclusive: str | None = None                  # the job holding every CPU, if one does
    gpus: Sequence[GpuDelta] = ()


@dataclasses.dataclass
class Attribution:
    """Joules per job and component, the unattributed rest, and the node's total per component."""

    jobs: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    unattributed: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))
    node: dict[str, float] = dataclasses.field(default_factory=lambda: dict.fromkeys(COMPONENTS, 0.0))

    def give(self, job: str, component: str, joules: float) -> None:
        parts = self.jobs.setdefault(job, dict.fromkeys(COMPONENTS, 0.0))
        parts[component] += joules


def _split(a: Attribution, component: str, joules: float, shares: Mapping[str, float]) -> None:
    """Give `joules` to jobs by `shares` (fractions summing to at most 1); the rest is unattributed."""
    a.node[component] += joules
    given = 0.0
    for job, share in sorted(shares.items()):
        if share > 0:
            part = joules * share
            a.give(job, component, part)
            given += part
    a.unattributed[component] += joules - given


def cpu_shares(iv: Interval) -> dict[str, float]:
    """Each job's fraction of the CPU-side energy."""
    if iv.exclusive is not None:
        return {iv.exclusive: 1.0}
    used = {j: max(0.0, s) for j, s in iv.jobs_cpu_s.items()}
    busy = max(iv.node_busy_s, sum(used.values()))
    if busy <= 0:
        return {}
    return {j: s / busy for j, s in used.items() if s > 0}


def _even(jobs: Sequence[str]) -> dict[str, float]:
    unique = sorted(set(jobs))
    return {j: 1.0 / len(unique) for j in unique}


def gpu_shares(g: GpuDelta, exclusive: str | None, mapped_elsewhere: bool) -> dict[str, float]:
    """Each job's fraction of one GPU's energy; what no job holds goes to the exclusive job, if any and
    no other job holds a GPU of the node."""
    heir = {exclusive: 1.0} if exclusive is not None and not mapped_elsewhere else {}
    if g.instances is None:
        return _even(g.jobs) if g.jobs else heir
    total_sms = max(g.sms, sum(i.sms for i in g.instances))
    if total_sms <= 0:
        return heir
    shares: dict[str, float] = {}
    for inst in g.instances:
        for job, frac in (_even(inst.jobs) if inst.jobs else heir).items():
            shares[job] = shares.get(job, 0.0) + frac * inst.sms / total_sms
    unused = 1.0 - sum(i.sms for i in g.instances) / total_sms
    for job, frac in heir.items():
        if unused > 0:
            shares[job] = shares.get(job, 0.0) + frac * unused
    return shares


def attribute(iv: Interval) -> Attribution:
    """Split one interval's energy; every joule lands with a job or in `unattributed`."""
    a = Attribution()
    shares = cpu_shares(iv)
    gpu_total = sum(max(0.0, g.joules) for g in iv.gpus)
    _split(a, "cpu", max(0.0, iv.cpu_j), shares)
    _split(a, "dram", max(0.0, iv.dram_j), shares)
    if iv.meter_j is not None:
        measured = max(0.0, iv.cpu_j) + max(0.0, iv.dram_j) + gpu_total
        _split(a, "other", max(0.0, iv.meter_j - measured), shares)
    mapped = {j for g in iv.gpus for j in g.jobs} | {j for g in iv.gpus for i in (g.instances or ()) for j in i.jobs}
    others_mapped = bool(mapped - {iv.exclusive})
    for g in iv.gpus:
        _split(a, "gpu", max(0.0, g.joules), gpu_shares(g, iv.exclusive, others_mapped))
    return a
