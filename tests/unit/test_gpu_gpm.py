"""NVML GPM (SM active, SM occupancy, tensor active, DRAM bandwidth) through the fake NVML: on Hopper GPUs
and their MIG instances, off on Ampere and on drivers without GPM, rate-limited across scrapes."""

from __future__ import annotations

import os
import sys

import pynvml
import pytest
from helpers import assert_promtool_clean, collector_success, make_context, render, values
from hpcwatch.exporters.gpu import nvml
from hpcwatch.exporters.gpu.collector import GpuCollector
from hpcwatch.exporters.gpu.gpm import GPM_METRICS

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gpu")
sys.path.insert(0, FIXTURES)
import fake_pynvml as fk

GPM_FAMILIES = [f for f, _ in GPM_METRICS]


@pytest.fixture
def start():
    started = []

    def _start(fake, **options):
        previous = nvml.use(fake)
        opts = {"job-map-dir": os.path.join(FIXTURES, "gpu-jobs"), "xid-events": False, "gpm-interval": 0.0}
        opts.update(options)
        c = GpuCollector(make_context(procfs=os.path.join(FIXTURES, "proc"), cls=GpuCollector, **opts))
        started.append((c, previous, fake))
        assert c.available() is None
        return c

    yield _start
    for c, previous, _fake in started:
        c.close()
        nvml.use(previous)


def test_the_metric_names_are_pynvml_constants():
    for _, const in GPM_METRICS:
        assert isinstance(getattr(pynvml, const), int), const


def test_hopper_gpus_report_gpm_from_the_second_scrape(start):
    fake = fk.h100_node()
    c = start(fake)
    first = render(c)
    assert not any(values(first, f) for f in GPM_FAMILIES)   # one sample: no interval yet
    text = render(c)
    assert_promtool_clean(text)
    assert collector_success(text) == {"gpu": 1}
    for i in range(8):
        dev = {"gpu": str(i), "uuid": fake.gpus[i].uuid}
        assert values(text, "hpc_gpu_sm_active_ratio", **dev) == [pytest.approx((71.5 - i) / 100)]
        assert values(text, "hpc_gpu_sm_occupancy_ratio", **dev) == [pytest.approx(0.3825)]
        assert values(text, "hpc_gpu_tensor_active_ratio", **dev) == [pytest.approx(0.44)]
        assert values(text, "hpc_gpu_dram_bandwidth_utilization_ratio", **dev) == [pytest.approx(0.235)]
    # New readings show at the next scrape; a metric NVML does not report is left out.
    fake.gpus[0].gpm = {pynvml.NVML_GPM_METRIC_SM_UTIL: 12.0}
    text = render(c)
    assert values(text, "hpc_gpu_sm_active_ratio", gpu="0") == [0.12]
    assert values(text, "hpc_gpu_tensor_active_ratio", gpu="0") == []
    assert fake.count("nvmlGpmSampleAlloc") == 16            # two buffers per GPU, allocated once
    c.close()
    assert fake.gpm_freed == 16


def test_scrapes_sooner_than_the_interval_reuse_the_last_values(start):
    fake = fk.h100_node()
    c = start(fake, **{"gpm-interval": 3600.0})
    render(c)
    taken = fake.count("nvmlGpmSampleGet")
    text = render(c)
    assert fake.count("nvmlGpmSampleGet") == taken            # no new sample inside the interval
    assert values(text, "hpc_gpu_sm_active_ratio") == []      # and no interval to report yet


def test_mig_instances_on_hopper_report_gpm_per_gpu_instance(start):
    fake = fk.h100_mig()
    c = start(fake)
    render(c)
    text = render(c)
    assert values(text, "hpc_gpu_sm_active_ratio", gpu="0/2/0") == [0.9]
    assert values(text, "hpc_gpu_tensor_active_ratio", gpu="0/2/0") == [0.6]
    assert values(text, "hpc_gpu_sm_active_ratio", gpu="0/3/0") == [0.0]
    assert values(text, "hpc_gpu_sm_active_ratio", gpu="0") == []   # the parent: its instances have it
    assert {a[1] for n, a, _ in fake.calls if n == "nvmlGpmMigSampleGet"} == {2, 3}


@pytest.mark.parametrize("fake", [fk.a100_mig, fk.consumer], ids=["ampere-mig", "old-driver"])
def test_gpus_without_gpm_leave_it_out_quietly(start, fake, caplog):
    f = fake()
    c = start(f)
    render(c)
    text = render(c)
    assert collector_success(text) == {"gpu": 1}
    assert not any(values(text, fam) for fam in GPM_FAMILIES)
    assert f.count("nvmlGpmSampleAlloc") == 0 and f.count("nvmlGpmQueryDeviceSupport") == 1
    assert not [r for r in caplog.records if r.levelname in ("WARNING", "ERROR")]


def test_off_by_option(start):
    fake = fk.h100_node()
    c = start(fake, gpm=False)
    render(c)
    render(c)
    assert fake.count("nvmlGpmQueryDeviceSupport") == 0 and fake.count("nvmlGpmSampleGet") == 0


def test_a_gpu_lost_while_sampling_is_reported_down(start):
    fake = fk.h100_node()
    c = start(fake)
    render(c)
    fake.gpus[2].lost = True
    text = render(c)
    assert values(text, "hpc_gpu_up", gpu="2") == [0]
    assert values(text, "hpc_gpu_sm_active_ratio", gpu="2") == []
    assert len(values(text, "hpc_gpu_sm_active_ratio")) == 7
