"""The energy collector on node trees written in the kernel's formats (tests/fixtures/energy/make_tree.py)
and the fake NVML: known deltas, RAPL wrap-around, a power meter, GPUs and MIG, IPMI; conservation and
exclusive jobs as properties over generated trees."""

from __future__ import annotations

import os
import shutil
import stat
import sys

import helpers
import pynvml
import pytest
from hpcwatch.exporters.energy.collector import EnergyCollector
from hpcwatch.exporters.energy.ipmi import IpmiParseError, parse_dcmi_power
from hpcwatch.exporters.gpu import nvml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures")
sys.path.insert(0, os.path.join(FIX, "energy"))
sys.path.insert(0, os.path.join(FIX, "gpu"))
import fake_pynvml as fk
import make_tree as mt


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def start(root: str, **opts) -> EnergyCollector:
    options = {"gpu": False, "power-meter": "auto", "job-map-dir": "", "interval": 3600.0, **opts}
    c = EnergyCollector(helpers.make_context(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"),
                                             rootfs=root, cls=EnergyCollector, **options))
    c.clock = Clock()
    assert c.available() is None
    return c


def step(c: EnergyCollector, seconds: float = 10.0) -> str:
    c.clock.t += seconds
    assert c.source.refresh_now(), c.source.last_error
    return helpers.render(c)


def v(text: str, name: str, **labels) -> float:
    got = helpers.values(text, name, **labels)
    assert len(got) == 1, (name, labels, got)
    return got[0]


def test_known_deltas_with_a_wrap_and_a_meter(tmp_path):
    s = mt.NodeState(packages_uj=[mt.MAX_UJ - 100_000_000, 5_000_000], meter_uw=500_000_000,
                     jobs={"11": mt.Job(100, 0, "0-1"), "12": mt.Job(50, 0, "2")})
    root = mt.write(str(tmp_path), s)
    c = start(root)
    step(c)                                          # the baseline
    s.packages_uj = [s.packages_uj[0] + 300_000_000, s.packages_uj[1] + 100_000_000]   # socket 0 wraps
    s.dram_uj = [d + 10_000_000 for d in s.dram_uj]
    s.core_uj = [x + 999_000_000 for x in s.core_uj]                                     # a subzone: not added
    s.busy_s += 20
    s.jobs["11"].user_s += 12
    s.jobs["12"].user_s += 4
    mt.write(root, s)
    text = step(c, 10)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"energy": 1}
    assert v(text, "hpc_energy_node_joules_total", component="cpu") == pytest.approx(400)   # 300 J across a wrap
    assert v(text, "hpc_energy_node_joules_total", component="dram") == pytest.approx(20)
    assert v(text, "hpc_energy_node_joules_total", component="other") == pytest.approx(5000 - 420)
    assert v(text, "hpc_job_energy_joules_total", jobid="11", component="cpu") == pytest.approx(400 * 12 / 20)
    assert v(text, "hpc_job_energy_joules_total", jobid="12", component="cpu") == pytest.approx(400 * 4 / 20)
    assert v(text, "hpc_job_energy_joules_total", jobid="11", component="other") == pytest.approx(4580 * 0.6)
    assert v(text, "hpc_energy_unattributed_joules_total", component="cpu") == pytest.approx(400 * 4 / 20)
    assert v(text, "hpc_energy_node_power_watts", source="hwmon") == 500
    c.close()


def test_an_exclusive_job_gets_the_node(tmp_path):
    s = mt.NodeState(jobs={"20": mt.Job(0, 0, "0-3")})
    root = mt.write(str(tmp_path), s)
    c = start(root)
    step(c)
    s.packages_uj = [p + 50_000_000 for p in s.packages_uj]
    s.busy_s += 30                                   # daemons' CPU time too: the job holds every CPU
    s.jobs["20"].user_s += 10
    mt.write(root, s)
    text = step(c)
    assert v(text, "hpc_job_energy_joules_total", jobid="20", component="cpu") == pytest.approx(100)
    assert v(text, "hpc_energy_unattributed_joules_total", component="cpu") == 0
    c.close()


@pytest.fixture
def fake_gpus():
    previous = []

    def install(fake):
        previous.append(nvml.use(fake))
        return fake

    yield install
    for p in previous:
        nvml.use(p)


def test_gpu_energy_follows_the_gpu_job_map_and_mig_sm_shares(tmp_path, fake_gpus):
    root = mt.write(str(tmp_path), mt.NodeState(jobs={"4242001": mt.Job(1, 0, "0")}))
    os.makedirs(os.path.join(root, "map"))
    with open(os.path.join(root, "map", "4242010"), "w") as fh:
        fh.write("MIG-66666666-7777-4888-8999-aaaaaaaaaaaa\n")    # the 2g.10gb instance (28 of 108 SMs)
    node = fk.h100_node({0: [(1001, 1 << 30)]})                    # pid 1001 is in job 4242001
    mig = fk.a100_mig()                                            # its 3g.20gb instance runs pid 4242 (job 777)
    fake = fake_gpus(fk.FakeNvml([node.gpus[0], node.gpus[1], mig.gpus[0]]))
    for pid in ("1001", "4242"):   # the GPU processes, with the cgroups of their jobs
        shutil.copytree(os.path.join(FIX, "gpu", "proc", pid), os.path.join(root, "proc", pid))
    c = start(root, gpu=True, **{"job-map-dir": "/map"})
    step(c)
    energy = pynvml.NVML_FI_DEV_TOTAL_ENERGY_CONSUMPTION
    for gpu, mj in zip(fake.gpus, (600_000, 250_000, 1_080_000)):
        gpu.fields[(energy, 0)] += mj
    text = step(c)
    assert v(text, "hpc_job_energy_joules_total", jobid="4242001", component="gpu") == pytest.approx(600)
    assert v(text, "hpc_job_energy_joules_total", jobid="777", component="gpu") == pytest.approx(1080 * 42 / 108)
    assert v(text, "hpc_job_energy_joules_total", jobid="4242010", component="gpu") == pytest.approx(1080 * 28 / 108)
    assert v(text, "hpc_energy_unattributed_joules_total", component="gpu") == pytest.approx(250 + 1080 * 38 / 108)
    assert v(text, "hpc_energy_node_joules_total", component="gpu") == pytest.approx(1930)
    c.close()


@st.composite
def histories(draw):
    jobs = draw(st.dictionaries(st.sampled_from(["1", "2", "3"]), st.sampled_from(["0", "1", "2-3", "0-3"]),
                                max_size=3))
    steps = draw(st.lists(st.tuples(
        st.lists(st.integers(0, 200_000_000_000), min_size=2, max_size=2),     # package µJ increments (wraps)
        st.lists(st.integers(0, 20_000_000_000), min_size=2, max_size=2),
        st.dictionaries(st.sampled_from(sorted(jobs) or ["1"]), st.floats(0, 40), max_size=3),
        st.floats(0, 40), st.one_of(st.none(), st.integers(0, 2_000_000_000))), min_size=1, max_size=4))
    return jobs, steps


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(histories())
def test_property_jobs_plus_unattributed_equal_the_node(tmp_path_factory, history):
    jobs, steps = history
    s = mt.NodeState(packages_uj=[mt.MAX_UJ - 1_000_000, 7], meter_uw=0,
                     jobs={j: mt.Job(1, 0, cpus) for j, cpus in jobs.items()})
    root = mt.write(str(tmp_path_factory.mktemp("node")), s)
    c = start(root)
    step(c)
    expected_cpu = 0.0
    for pkg, dram, job_cpu, other_busy, meter in steps:
        s.packages_uj = [a + b for a, b in zip(s.packages_uj, pkg)]
        s.dram_uj = [a + b for a, b in zip(s.dram_uj, dram)]
        expected_cpu += sum(pkg) / 1e6
        for j, sec in job_cpu.items():
            if j in s.jobs:
                s.jobs[j].user_s += sec
        s.busy_s += other_busy + sum(sec for j, sec in job_cpu.items() if j in s.jobs)
        s.meter_uw = meter
        mt.write(root, s)
        text = step(c)
        for comp in ("cpu", "dram", "other"):
            node = v(text, "hpc_energy_node_joules_total", component=comp)
            parts = sum(helpers.values(text, "hpc_job_energy_joules_total", component=comp))
            rest = v(text, "hpc_energy_unattributed_joules_total", component=comp)
            assert parts + rest == pytest.approx(node, rel=0.02, abs=1e-6)
        # The node's package energy is what the counters really moved, wraps included.
        cpu = v(text, "hpc_energy_node_joules_total", component="cpu")
        assert cpu == pytest.approx(expected_cpu, rel=1e-9, abs=1e-3)
        exclusive = [j for j, cpus in jobs.items() if cpus == "0-3"]
        if len(jobs) == 1 and exclusive:
            mine = sum(helpers.values(text, "hpc_job_energy_joules_total", jobid=exclusive[0]))
            total = sum(helpers.values(text, "hpc_energy_node_joules_total"))
            assert mine == pytest.approx(total, rel=0.03, abs=1e-6)
    c.close()


def test_skipped_without_jobs_or_without_sources(tmp_path):
    bare = tmp_path / "bare"
    (bare / "sys" / "fs" / "cgroup").mkdir(parents=True)
    c = EnergyCollector(helpers.make_context(procfs=str(bare / "proc"), sysfs=str(bare / "sys"), rootfs=str(bare),
                                             cls=EnergyCollector, gpu=False))
    assert c.available().startswith("no jobs to attribute energy to")
    root = mt.write(str(tmp_path / "n"), mt.NodeState(jobs={"1": mt.Job(1)}))
    for name in os.listdir(os.path.join(root, "sys", "class", "powercap")):
        for f in ("energy_uj",):
            p = os.path.join(root, "sys", "class", "powercap", name, f)
            if os.path.exists(p):
                os.unlink(p)
    c = EnergyCollector(helpers.make_context(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"),
                                             rootfs=root, cls=EnergyCollector, gpu=False))
    assert c.available().startswith("no energy source")


# --- IPMI -----------------------------------------------------------------------------------------------
def ipmi_fixture(name: str) -> str:
    with open(os.path.join(FIX, "energy", "ipmi", name)) as fh:
        return fh.read()


@pytest.mark.parametrize(("name", "watts", "avg"), [("dcmi-power-1.8.18.txt", 220, 213),
                                                    ("dcmi-power-1.8.19.txt", 214, 184)])
def test_ipmitool_layouts(name, watts, avg):
    r = parse_dcmi_power(ipmi_fixture(name))
    assert (r.watts, r.average_watts, r.active) == (watts, avg, True)


def test_a_deactivated_reading_is_no_meter_and_other_text_is_an_error():
    assert parse_dcmi_power(ipmi_fixture("dcmi-power-deactivated.txt")) is None
    with pytest.raises(IpmiParseError, match="Instantaneous power reading"):
        parse_dcmi_power("Error: Unable to establish IPMI v2 / RMCP+ session\n")
    with pytest.raises(IpmiParseError, match="expected '<number> Watts'"):
        parse_dcmi_power("Instantaneous power reading: lots\n")


@given(st.text(max_size=300))
def test_fuzz_ipmi(text):
    try:
        parse_dcmi_power(text)
    except IpmiParseError:
        pass


def test_ipmi_meter_through_ipmitool(tmp_path):
    s = mt.NodeState(jobs={"5": mt.Job(1, 0, "0")})
    root = mt.write(str(tmp_path / "n"), s)
    tool = tmp_path / "ipmitool"
    tool.write_text("#!/bin/sh\n[ \"$*\" = 'dcmi power reading' ] || exit 1\n"
                    f"cat '{FIX}/energy/ipmi/dcmi-power-1.8.19.txt'\n")
    tool.chmod(tool.stat().st_mode | stat.S_IEXEC)
    c = start(root, **{"power-meter": "ipmi", "ipmitool": str(tool)})
    assert c.ipmi.refresh_now()
    step(c)
    s.busy_s += 10
    s.jobs["5"].user_s += 10
    mt.write(root, s)
    text = step(c, 10)
    assert v(text, "hpc_energy_node_power_watts", source="ipmi") == 214
    assert v(text, "hpc_energy_node_joules_total", component="other") == pytest.approx(2140)
    assert v(text, "hpc_job_energy_joules_total", jobid="5", component="other") == pytest.approx(2140)
    c.close()
