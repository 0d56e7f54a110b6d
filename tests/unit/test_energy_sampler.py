"""Per-job energy counters from successive node samples: deltas, resets, new and ended jobs, meters."""

from __future__ import annotations

import pytest
from hpcwatch.exporters.energy.attribution import COMPONENTS
from hpcwatch.exporters.energy.sampler import EnergyTotals, GpuReading, MigReading, NodeSample
from hypothesis import given
from hypothesis import strategies as st


def test_first_sample_is_the_baseline_then_intervals_add_up():
    t = EnergyTotals()
    assert t.feed(NodeSample(0, cpu_j_total=1e6, busy_s_total=100, ncpus=4, jobs_cpu_s_total={"7": 50},
                             jobs_cpus={"7": 2})) is None
    assert t.node["cpu"] == 0
    t.feed(NodeSample(10, cpu_j_total=1e6 + 1000, busy_s_total=120, ncpus=4, jobs_cpu_s_total={"7": 60, "8": 5},
                      jobs_cpus={"7": 2, "8": 1}))
    # Job 7 used 10 of the 20 busy CPU seconds; job 8 started in the interval and used 5.
    assert t.jobs["7"]["cpu"] == pytest.approx(500) and t.jobs["8"]["cpu"] == pytest.approx(250)
    assert t.unattributed["cpu"] == pytest.approx(250) and t.node["cpu"] == pytest.approx(1000)
    t.feed(NodeSample(20, cpu_j_total=1e6 + 1500, busy_s_total=130, ncpus=4, jobs_cpu_s_total={"8": 15},
                      jobs_cpus={"8": 1}))
    assert "7" not in t.jobs                       # ended: its counters go
    assert t.jobs["8"]["cpu"] == pytest.approx(250 + 500)
    assert t.has == {"cpu"}


def test_meter_power_is_integrated_and_the_rest_is_other():
    t = EnergyTotals()
    t.feed(NodeSample(0, cpu_j_total=0, meter_w=300, busy_s_total=0, jobs_cpu_s_total={"1": 0}))
    t.feed(NodeSample(10, cpu_j_total=1000, meter_w=500, busy_s_total=10, jobs_cpu_s_total={"1": 10}))
    assert t.node["other"] == pytest.approx(4000 - 1000)      # (300 + 500) / 2 W x 10 s, less RAPL
    assert t.jobs["1"]["other"] == pytest.approx(3000) and t.has == {"cpu", "other"}


def test_gpu_counters_reset_and_mig_instances():
    t = EnergyTotals()
    mig = (MigReading("MIG-a", 42, ("5",)), MigReading("MIG-b", 28, ()))
    t.feed(NodeSample(0, gpus=[GpuReading("GPU-0", 5000.0, 132, ("4",)), GpuReading("GPU-1", 100.0, 98, (), mig)]))
    t.feed(NodeSample(1, jobs_cpu_s_total={"4": 0, "5": 0},
                      gpus=[GpuReading("GPU-0", 10.0, 132, ("4",)), GpuReading("GPU-1", 198.0, 98, (), mig)]))
    assert t.jobs["4"]["gpu"] == 10.0                            # driver reload: counts from 0
    assert t.jobs["5"]["gpu"] == pytest.approx(98 * 42 / 98)
    assert t.unattributed["gpu"] == pytest.approx(98 * 56 / 98)


@st.composite
def samples(draw):
    out, at, cpu, busy, gpu = [], 0.0, 0.0, 0.0, 0.0
    jobs: dict[str, float] = {}
    for _ in range(draw(st.integers(2, 8))):
        at += draw(st.floats(0.1, 60))
        cpu += draw(st.floats(0, 5e3))
        busy += draw(st.floats(0, 200))
        gpu = draw(st.floats(0, 1e4)) if draw(st.booleans()) else gpu + draw(st.floats(0, 3e3))
        for j in draw(st.lists(st.sampled_from("abcd"), max_size=4)):
            jobs[j] = jobs.get(j, 0.0) + draw(st.floats(0, 100))
        alive = {j: v for j, v in jobs.items() if draw(st.booleans())}
        out.append(NodeSample(at, cpu_j_total=cpu, meter_w=draw(st.one_of(st.none(), st.floats(0, 2000))),
                              busy_s_total=busy, ncpus=8, jobs_cpu_s_total=alive,
                              jobs_cpus=dict.fromkeys(alive, 8 // max(1, len(alive))),
                              gpus=[GpuReading("g", gpu, 132, tuple(sorted(alive))[:1])]))
    return out


@given(samples())
def test_every_interval_conserves_energy(seq):
    # Jobs that end take their counters with them, so conservation is checked interval by interval.
    t2 = EnergyTotals()
    for prev, s in zip(seq, seq[1:]):
        t2.previous, t2.jobs = prev, {}
        t2.node, t2.unattributed = dict.fromkeys(COMPONENTS, 0.0), dict.fromkeys(COMPONENTS, 0.0)
        t2.feed(s)
        for c in COMPONENTS:
            assert sum(p[c] for p in t2.jobs.values()) + t2.unattributed[c] == pytest.approx(t2.node[c], abs=1e-6)
