"""Energy attribution, pure: conservation for any interval, exclusive jobs, CPU-time shares, GPUs and MIG."""

from __future__ import annotations

import pytest
from hpcwatch.exporters.energy.attribution import COMPONENTS, GpuDelta, Interval, MigShare, attribute
from hypothesis import given
from hypothesis import strategies as st

JOBS = st.sampled_from(["101", "102", "103", "104"])
joules = st.floats(min_value=0, max_value=1e6, allow_nan=False)


@st.composite
def intervals(draw) -> Interval:
    jobs_cpu = draw(st.dictionaries(JOBS, st.floats(min_value=0, max_value=640, allow_nan=False), max_size=4))
    gpus = []
    for i in range(draw(st.integers(0, 4))):
        if draw(st.booleans()):
            insts = tuple(MigShare(draw(st.integers(1, 60)), tuple(draw(st.lists(JOBS, max_size=2))))
                          for _ in range(draw(st.integers(0, 4))))
            gpus.append(GpuDelta(f"g{i}", draw(joules), sms=draw(st.integers(0, 132)), instances=insts))
        else:
            gpus.append(GpuDelta(f"g{i}", draw(joules), tuple(draw(st.lists(JOBS, max_size=3)))))
    return Interval(cpu_j=draw(joules), dram_j=draw(joules), meter_j=draw(st.one_of(st.none(), joules)),
                    node_busy_s=draw(st.floats(min_value=0, max_value=640, allow_nan=False)), jobs_cpu_s=jobs_cpu,
                    exclusive=draw(st.one_of(st.none(), JOBS)), gpus=gpus)


@given(intervals())
def test_jobs_plus_unattributed_equal_the_node(iv):
    a = attribute(iv)
    for c in COMPONENTS:
        jobs = sum(parts[c] for parts in a.jobs.values())
        assert jobs + a.unattributed[c] == pytest.approx(a.node[c], rel=1e-9, abs=1e-6)
        assert a.unattributed[c] >= -1e-6 and all(parts[c] >= 0 for parts in a.jobs.values())
    measured = iv.cpu_j + iv.dram_j + sum(g.joules for g in iv.gpus)
    total = measured if iv.meter_j is None else max(measured, iv.meter_j)
    assert sum(a.node.values()) == pytest.approx(total, rel=1e-9, abs=1e-6)


@given(intervals())
def test_an_exclusive_job_with_every_gpu_gets_the_whole_node(iv):
    job = "101"
    gpus = [GpuDelta(g.key, g.joules, (job,)) if g.instances is None else
            GpuDelta(g.key, g.joules, sms=sum(i.sms for i in g.instances),
                     instances=tuple(MigShare(i.sms, (job,)) for i in g.instances)) for g in iv.gpus]
    a = attribute(Interval(iv.cpu_j, iv.dram_j, iv.meter_j, iv.node_busy_s, {job: 1.0}, job, gpus))
    got = sum(a.jobs.get(job, {}).values())
    assert got == pytest.approx(sum(a.node.values()), rel=0.03, abs=1e-6)


def test_cpu_energy_by_share_of_busy_cpu_time():
    a = attribute(Interval(cpu_j=1000, dram_j=100, node_busy_s=10, jobs_cpu_s={"1": 6, "2": 2}))
    assert a.jobs["1"]["cpu"] == pytest.approx(600) and a.jobs["2"]["cpu"] == pytest.approx(200)
    assert a.unattributed["cpu"] == pytest.approx(200) and a.jobs["1"]["dram"] == pytest.approx(60)
    # A meter's reading beyond RAPL and the GPUs is "other", shared the same way.
    a = attribute(Interval(cpu_j=1000, meter_j=1500, node_busy_s=10, jobs_cpu_s={"1": 10},
                           gpus=[GpuDelta("0", 300, ("1",))]))
    assert a.node == {"cpu": 1000, "dram": 0, "gpu": 300, "other": 200}
    assert a.jobs["1"] == {"cpu": 1000, "dram": 0, "gpu": 300, "other": 200}


def test_job_cpu_time_beyond_what_proc_stat_saw_never_gives_more_than_the_node():
    a = attribute(Interval(cpu_j=100, node_busy_s=1, jobs_cpu_s={"1": 3, "2": 1}))
    assert a.jobs["1"]["cpu"] == pytest.approx(75) and a.unattributed["cpu"] == pytest.approx(0)


def test_gpus_shared_evenly_and_mig_by_sm_share():
    a = attribute(Interval(gpus=[GpuDelta("0", 400, ("1", "2")), GpuDelta("1", 100),
                                 GpuDelta("2", 1320, sms=132, instances=(MigShare(66, ("3",)), MigShare(33, ())))]))
    assert a.jobs["1"]["gpu"] == 200 and a.jobs["2"]["gpu"] == 200
    assert a.jobs["3"]["gpu"] == pytest.approx(660)
    assert a.unattributed["gpu"] == pytest.approx(100 + 330 + 330)   # idle GPU, empty instance, unused SMs


def test_the_exclusive_job_takes_unmapped_gpus_only_when_no_other_job_has_one():
    iv = Interval(cpu_j=10, node_busy_s=1, jobs_cpu_s={"1": 1}, exclusive="1", gpus=[GpuDelta("0", 50)])
    assert attribute(iv).jobs["1"]["gpu"] == 50
    iv = Interval(exclusive="1", gpus=[GpuDelta("0", 50), GpuDelta("1", 70, ("2",))])
    a = attribute(iv)
    assert a.unattributed["gpu"] == 50 and a.jobs["2"]["gpu"] == 70
