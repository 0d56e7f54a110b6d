"""The gpu collector against a fake pynvml at the NVML boundary: an 8-GPU H100 node, a MIG A100,
a consumer card where most fields are not supported, a GPU lost mid-scrape, and XID event streams."""

from __future__ import annotations

import logging
import os
import sys

import pynvml
import pytest
from helpers import assert_promtool_clean, collector_success, make_context, render, series_labels, values
from hpcwatch.exporters.gpu import nvml
from hpcwatch.exporters.gpu.collector import GpuCollector
from hpcwatch.exporters.selfmetrics import parse_errors

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gpu")
sys.path.insert(0, FIXTURES)
import fake_pynvml as fk

PROC = os.path.join(FIXTURES, "proc")
JOBMAP = os.path.join(FIXTURES, "gpu-jobs")


@pytest.fixture
def start():
    """start(fake, **options) -> a started collector reading through the fake; closed afterwards."""
    started = []

    def _start(fake, **options):
        previous = nvml.use(fake)
        opts = {"job-map-dir": JOBMAP}
        opts.update(options)
        c = GpuCollector(make_context(procfs=PROC, cls=GpuCollector, **opts))
        started.append((c, previous))
        assert c.available() is None
        return c

    yield _start
    for c, previous in started:
        c.close()
        nvml.use(previous)


def uuid(i: int) -> str:
    return f"GPU-{i:08x}-1d2c-4f5e-8a9b-0c1d2e3f4a5b"


# --- 8 x H100 --------------------------------------------------------------------------------------
def test_h100_node_exports_every_family_with_units_converted(start):
    fake = fk.h100_node({0: [(1001, 30 << 30), (1004, 1 << 30)], 1: [(1002, 5 << 30), (1003, 6 << 30)]})
    c = start(fake)
    text = render(c)
    assert_promtool_clean(text)
    assert collector_success(text) == {"gpu": 1}
    assert len(values(text, "hpc_gpu_up")) == 8 and set(values(text, "hpc_gpu_up")) == {1}
    g0 = {"gpu": "0", "uuid": uuid(0)}
    info = [labels for labels in series_labels(text, "hpc_gpu_info") if labels["gpu"] == "0"]
    assert info == [
        {
            **g0,
            "name": "NVIDIA H100 80GB HBM3",
            "driver_version": "570.124.06",
            "cuda_version": "12.8",
            "pci_bus_id": "00000000:18:00.0",
            "mig_mode": "disabled",
        }
    ]
    assert values(text, "hpc_gpu_utilization_ratio", **g0) == [0.87]
    assert values(text, "hpc_gpu_memory_utilization_ratio", **g0) == [0.41]
    assert values(text, "hpc_gpu_memory_total_bytes", **g0) == [85520809984]
    assert values(text, "hpc_gpu_memory_used_bytes", **g0) == [40 << 30]
    assert values(text, "hpc_gpu_memory_reserved_bytes", **g0) == [565182464]
    assert values(text, "hpc_gpu_power_watts", **g0) == [431.0]  # field in mW
    assert values(text, "hpc_gpu_energy_joules_total", **g0) == [pytest.approx(987654.321)]  # field in mJ
    assert values(text, "hpc_gpu_temperature_celsius", **g0) == [52]
    assert values(text, "hpc_gpu_memory_temperature_celsius", **g0) == [61]
    assert values(text, "hpc_gpu_sm_clock_hertz", **g0) == [1980e6]
    assert values(text, "hpc_gpu_memory_clock_hertz", **g0) == [2619e6]
    assert values(text, "hpc_gpu_clock_event_reason_active", reason="sw_power_cap", **g0) == [1]
    assert values(text, "hpc_gpu_clock_event_reason_active", reason="hw_thermal_slowdown", **g0) == [0]
    assert len(values(text, "hpc_gpu_clock_event_reason_active", **g0)) == 9
    assert values(text, "hpc_gpu_pcie_replays_total", **g0) == [2]
    assert values(text, "hpc_gpu_pcie_transmit_bytes_total", **g0) == [7e9]
    assert values(text, "hpc_gpu_pcie_receive_bytes_total", **g0) == [9e9]
    assert values(text, "hpc_gpu_ecc_enabled", **g0) == [1]
    assert values(text, "hpc_gpu_ecc_errors_total", type="corrected", counter="volatile", **g0) == [3]
    assert values(text, "hpc_gpu_ecc_errors_total", type="uncorrected", counter="aggregate", **g0) == [1]
    assert values(text, "hpc_gpu_remapped_rows", state="corrected", **g0) == [1]
    assert values(text, "hpc_gpu_remapped_rows", state="failure", **g0) == [0]
    # 18 NVLinks per GPU, per-link scoped field values; throughput fields count KiB.
    assert len(values(text, "hpc_gpu_nvlink_up", **g0)) == 18
    assert values(text, "hpc_gpu_nvlink_transmit_bytes_total", link="17", **g0) == [18000 * 1024]
    assert values(text, "hpc_gpu_nvlink_receive_bytes_total", link="0", **g0) == [2000 * 1024]
    assert values(text, "hpc_gpu_nvlink_errors_total", link="1", type="crc", **g0) == [1]
    assert values(text, "hpc_gpu_xid_watch_up", **g0) == [1]
    # H100 node has no retired-page fields in the fake (Hopper uses row remapping): left out, not zero.
    assert values(text, "hpc_gpu_retired_pages") == []


def test_one_batched_field_call_per_gpu_and_per_scrape_call_budget(start):
    fake = fk.h100_node()
    c = start(fake)
    render(c)  # warm: nothing lazily discovered is left for the measured scrape
    before = len(fake.calls)
    render(c)
    calls = [name for name, _, _ in fake.calls[before:] if name != "nvmlEventSetWait_v2"]
    assert calls.count("nvmlDeviceGetFieldValues") == 8
    field_call = next(args for name, args, _ in fake.calls[before:] if name == "nvmlDeviceGetFieldValues")
    assert len(field_call[1]) == 18 + 18 * 6  # device fields + 6 per NVLink, one call
    assert (
        len(calls) <= 8 * 9
    )  # fields, utilisation, memory, temperature, 2 clocks, reasons, processes, MIG mode


def test_processes_are_tied_to_slurm_jobs_through_cgroups_v1_and_v2(start):
    fake = fk.h100_node(
        {
            0: [(1001, 30 << 30), (1004, 1 << 30)],
            1: [(1002, 5 << 30), (1003, 6 << 30), (9999, 1 << 20), (1003, 1 << 30)],
        }
    )
    text = render(start(fake))
    g0, g1 = {"gpu": "0", "uuid": uuid(0)}, {"gpu": "1", "uuid": uuid(1)}
    assert values(text, "hpc_gpu_processes", **g0) == [2]
    assert values(text, "hpc_gpu_processes", **g1) == [4]
    assert values(text, "hpc_gpu_job_info", jobid="4242001", **g0) == [1]  # v1 /slurm/uid_/job_
    assert values(text, "hpc_gpu_job_info", jobid="4242002", **g1) == [1]  # v1 /slurm_<node>/...
    assert values(text, "hpc_gpu_job_info", jobid="4242003", **g1) == [1]  # v2 slurmstepd.scope
    assert values(text, "hpc_gpu_job_memory_used_bytes", jobid="4242001", **g0) == [30 << 30]
    # Two processes of one job on one GPU add up; PID 1004 (no job) and 9999 (gone) are in no job.
    assert values(text, "hpc_gpu_job_memory_used_bytes", jobid="4242003", **g1) == [7 << 30]
    assert {labels["jobid"] for labels in series_labels(text, "hpc_gpu_job_memory_used_bytes")} == {
        "4242001",
        "4242002",
        "4242003",
    }
    assert series_labels(text, "hpc_gpu_process_memory_used_bytes") == []  # opt-in


def test_per_process_memory_is_opt_in(start):
    fake = fk.h100_node({0: [(1001, 30 << 30), (1004, 1 << 30)]})
    text = render(start(fake, **{"per-process": True}))
    assert_promtool_clean(text)
    assert values(text, "hpc_gpu_process_memory_used_bytes", pid="1001", jobid="4242001") == [30 << 30]
    assert values(text, "hpc_gpu_process_memory_used_bytes", pid="1004", jobid="") == [1 << 30]


def test_mapping_directory_ties_jobs_by_uuid_and_by_index(start):
    text = render(start(fk.h100_node()))
    assert values(text, "hpc_gpu_job_info", gpu="5", uuid=uuid(5), jobid="4242005") == [1]  # by UUID
    assert values(text, "hpc_gpu_job_info", gpu="6", jobid="4242006") == [1]  # by index
    assert values(text, "hpc_gpu_job_info", gpu="7", jobid="4242006") == [1]
    # The prolog's temp file (.4242009.tmp) is not a job.
    assert {labels["jobid"] for labels in series_labels(text, "hpc_gpu_job_info")} == {"4242005", "4242006"}


def test_mapping_directory_under_rootfs_and_bad_entries_counted(start, tmp_path):
    root = tmp_path / "host"
    (root / "run/hpcwatch/gpu-jobs").mkdir(parents=True)
    (root / "run/hpcwatch/gpu-jobs/99").write_text("3 ../../etc/passwd\n")
    before = parse_errors("gpu_job_map")
    fake = fk.h100_node()
    previous = nvml.use(fake)
    try:
        c = GpuCollector(make_context(procfs=PROC, rootfs=str(root), cls=GpuCollector))
        assert c.available() is None
        text = render(c)
        c.close()
    finally:
        nvml.use(previous)
    assert values(text, "hpc_gpu_job_info", gpu="3", jobid="99") == [1]
    assert parse_errors("gpu_job_map") == before + 1


# --- MIG ------------------------------------------------------------------------------------------
def test_mig_devices_are_devices_of_their_own(start):
    fake = fk.a100_mig()
    text = render(start(fake))
    assert_promtool_clean(text)
    assert collector_success(text) == {"gpu": 1}
    parent = {"gpu": "0", "uuid": "GPU-a100a100-0000-4000-8000-000000000000"}
    mig1 = {"gpu": "0/1/0", "uuid": "MIG-11111111-2222-4333-8444-555555555555"}
    mig5 = {"gpu": "0/5/0", "uuid": "MIG-66666666-7777-4888-8999-aaaaaaaaaaaa"}
    assert values(text, "hpc_gpu_info", mig_mode="enabled", **parent) == [1]
    mig1_info = [labels for labels in series_labels(text, "hpc_gpu_info") if labels["gpu"] == "0/1/0"]
    assert [(i["uuid"], i["name"], i["mig_mode"]) for i in mig1_info] == [
        (mig1["uuid"], "NVIDIA A100-SXM4-40GB MIG 3g.20gb", "instance")
    ]
    assert values(
        text,
        "hpc_gpu_mig_info",
        parent_gpu="0",
        parent_uuid=parent["uuid"],
        gpu_instance_id="1",
        compute_instance_id="0",
        **mig1,
    ) == [1]
    assert values(text, "hpc_gpu_up", **mig1) == [1] and values(text, "hpc_gpu_up", **mig5) == [1]
    assert values(text, "hpc_gpu_memory_total_bytes", **mig1) == [20 << 30]
    assert values(text, "hpc_gpu_memory_used_bytes", **mig5) == [0]
    assert values(text, "hpc_gpu_job_info", jobid="777", **mig1) == [1]  # process cgroup
    assert values(text, "hpc_gpu_job_memory_used_bytes", jobid="777", **mig1) == [11 << 30]
    assert values(text, "hpc_gpu_job_info", jobid="4242010", **mig5) == [1]  # mapping dir by MIG UUID
    # Utilisation is not supported on a GPU in MIG mode: left out, the rest of the GPU still reported.
    assert values(text, "hpc_gpu_utilization_ratio", **parent) == []
    assert values(text, "hpc_gpu_temperature_celsius", **parent) == [52]
    assert len(values(text, "hpc_gpu_nvlink_up", **parent)) == 12
    # Processes are read per MIG device, not on the parent (which would count them twice).
    assert values(text, "hpc_gpu_processes", **parent) == []
    assert values(text, "hpc_gpu_processes", **mig1) == [1]


# --- consumer GPU: mostly not supported -----------------------------------------------------------------
def test_consumer_gpu_unsupported_fields_left_out_and_logged_once_at_debug(start, caplog):
    caplog.set_level(logging.DEBUG, logger="hpcwatch.collector.gpu")
    fake = fk.consumer()
    fake.gpus[0].uuid = "GPU-c0ffee00-0000-4000-8000-" + os.urandom(6).hex()  # fresh log-once keys
    c = start(fake)
    text = render(c)
    render(c)
    assert_promtool_clean(text)
    assert collector_success(text) == {"gpu": 1}
    g0 = {"gpu": "0", "uuid": fake.gpus[0].uuid}
    assert values(text, "hpc_gpu_up", **g0) == [1]
    assert values(
        text, "hpc_gpu_info", mig_mode="unsupported", driver_version="470.256.02", cuda_version="11.4", **g0
    ) == [1]
    for absent in (
        "hpc_gpu_ecc_enabled",
        "hpc_gpu_ecc_errors_total",
        "hpc_gpu_remapped_rows",
        "hpc_gpu_nvlink_up",
        "hpc_gpu_pcie_transmit_bytes_total",
        "hpc_gpu_mig_info",
        "hpc_gpu_memory_reserved_bytes",
    ):
        assert values(text, absent) == [], absent
    # Sentinels (all bits set) are dropped, not exported as 1.8e19 J or 4294967295 °C.
    assert values(text, "hpc_gpu_energy_joules_total") == []
    assert values(text, "hpc_gpu_memory_temperature_celsius") == []
    # Fallbacks: power from nvmlDeviceGetPowerUsage, v1 memory info, the pre-R535 clock-reasons call.
    assert values(text, "hpc_gpu_power_watts", **g0) == [35.0]
    assert values(text, "hpc_gpu_memory_total_bytes", **g0) == [25757220864]
    assert values(text, "hpc_gpu_clock_event_reason_active", reason="gpu_idle", **g0) == [1]
    assert values(text, "hpc_gpu_xid_watch_up", **g0) == [0]  # XID events not supported on this card
    records = [r for r in caplog.records if r.name == "hpcwatch.collector.gpu"]
    assert [r for r in records if r.levelno >= logging.WARNING] == []
    ecc = [r for r in records if "NVML_FI_DEV_ECC_CURRENT" in r.getMessage()]
    assert len(ecc) == 1 and ecc[0].levelno == logging.DEBUG  # once over two scrapes
    assert any("sentinel" in r.getMessage() and "TOTAL_ENERGY" in r.getMessage() for r in records)


def test_other_nvml_errors_skip_the_reading_with_one_warning(start, caplog):
    fake = fk.h100_node()
    fake.gpus[4].uuid = "GPU-deadbeef-0000-4000-8000-" + os.urandom(6).hex()
    fake.gpus[4].errors["nvmlDeviceGetTemperature"] = pynvml.NVML_ERROR_NO_PERMISSION
    c = start(fake)
    with caplog.at_level(logging.WARNING, logger="hpcwatch.collector.gpu"):
        render(c)
        text = render(c)
    assert values(text, "hpc_gpu_temperature_celsius", gpu="4") == []
    assert values(text, "hpc_gpu_temperature_celsius", gpu="3") == [52]
    assert values(text, "hpc_gpu_up", gpu="4") == [1]
    warnings = [r for r in caplog.records if "nvmlDeviceGetTemperature" in r.getMessage()]
    assert len(warnings) == 1 and warnings[0].levelno == logging.WARNING


# --- GPU lost -------------------------------------------------------------------------------------------
def test_gpu_lost_mid_scrape_shows_down_and_the_rest_is_served(start):
    fake = fk.h100_node()
    c = start(fake)
    fake.gpus[2].lost_after = 3  # answers three calls of the scrape, then falls off the bus
    text = render(c)
    assert_promtool_clean(text)
    assert collector_success(text) == {"gpu": 1}
    assert values(text, "hpc_gpu_up", gpu="2", uuid=uuid(2)) == [0]
    assert values(text, "hpc_gpu_info", gpu="2", uuid=uuid(2)) == [1]
    # Its partial readings are dropped, not half a GPU's worth of series.
    for name in (
        "hpc_gpu_power_watts",
        "hpc_gpu_utilization_ratio",
        "hpc_gpu_memory_used_bytes",
        "hpc_gpu_nvlink_up",
        "hpc_gpu_temperature_celsius",
    ):
        assert values(text, name, gpu="2") == [], name
    assert sorted(values(text, "hpc_gpu_up")) == [0] + [1] * 7
    assert len(values(text, "hpc_gpu_utilization_ratio")) == 7
    again = render(c)
    assert values(again, "hpc_gpu_up", gpu="2") == [0] and collector_success(again) == {"gpu": 1}


def test_gpu_lost_at_start_is_down_then_picked_up_when_it_answers(start):
    fake = fk.h100_node()
    fake.gpus[7].lost = True
    c = start(fake)
    text = render(c)
    assert values(text, "hpc_gpu_up", gpu="7", uuid="") == [0]
    assert values(text, "hpc_gpu_xid_watch_up", gpu="7", uuid="") == [0]
    fake.gpus[7].lost = False
    text = render(c)
    assert values(text, "hpc_gpu_up", gpu="7", uuid=uuid(7)) == [1]
    assert len(values(text, "hpc_gpu_nvlink_up", gpu="7")) == 18


def test_field_level_gpu_lost_return_code_marks_the_gpu_down(start):
    fake = fk.h100_node()
    c = start(fake)
    fake.gpus[1].fields[(pynvml.NVML_FI_DEV_ECC_CURRENT, 0)] = None  # make the fake answer NOT_SUPPORTED...
    original = fake.nvmlDeviceGetFieldValues

    def lost_field(handle, fieldIds):
        values_ = original(handle, fieldIds)
        if handle.gpu is fake.gpus[1]:
            values_[0].nvmlReturn = pynvml.NVML_ERROR_GPU_IS_LOST  # ...then the field itself says lost
        return values_

    fake.nvmlDeviceGetFieldValues = lost_field
    text = render(c)
    assert values(text, "hpc_gpu_up", gpu="1") == [0]
    assert values(text, "hpc_gpu_up", gpu="0") == [1]


# --- XID events -----------------------------------------------------------------------------------------
def test_xid_events_are_counted_per_gpu_and_xid(start):
    fake = fk.h100_node()
    c = start(fake)
    assert len(fake.registered) == 8
    for gpu, xid in ((3, 79), (3, 79), (0, 48), (3, 13)):
        fake.push_xid(gpu, xid)
    assert fake.wait_drained()
    text = render(c)
    assert_promtool_clean(text)
    assert values(text, "hpc_gpu_xid_errors_total", gpu="3", uuid=uuid(3), xid="79") == [2]
    assert values(text, "hpc_gpu_xid_errors_total", gpu="3", xid="13") == [1]
    assert values(text, "hpc_gpu_xid_errors_total", gpu="0", xid="48") == [1]
    assert len(values(text, "hpc_gpu_xid_errors_total")) == 3
    # A counter: later events add to it, nothing resets between scrapes.
    fake.push_xid(3, 79)
    assert fake.wait_drained()
    assert values(render(c), "hpc_gpu_xid_errors_total", gpu="3", xid="79") == [3]


def test_xid_thread_survives_a_failing_wait_and_ignores_other_event_types(start):
    fake = fk.h100_node()
    c = start(fake)
    fake.push_error(pynvml.NVML_ERROR_GPU_IS_LOST)
    fake.push_xid(1, 31, event_type=pynvml.nvmlEventTypePState)
    fake.push_xid(1, 94)
    assert fake.wait_drained()
    text = render(c)
    assert values(text, "hpc_gpu_xid_errors_total", gpu="1", xid="94") == [1]
    assert values(text, "hpc_gpu_xid_errors_total", xid="31") == []
    assert set(values(text, "hpc_gpu_xid_watch_up")) == {1}


def test_close_stops_the_event_thread_frees_the_set_and_shuts_nvml_down(start):
    fake = fk.h100_node()
    c = start(fake)
    thread = c.watcher._thread
    assert thread.is_alive()
    c.close()
    assert not thread.is_alive()
    assert fake.event_sets_freed == 1
    assert fake.initialised == 0


def test_xid_events_can_be_switched_off(start):
    fake = fk.h100_node()
    c = start(fake, **{"xid-events": False})
    text = render(c)
    assert fake.count("nvmlEventSetCreate") == 0
    assert values(text, "hpc_gpu_xid_watch_up") == []


# --- availability -----------------------------------------------------------------------------------------
def test_no_driver_means_skipped_with_the_reason():
    previous = nvml.use(fk.FakeNvml([], init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND))
    try:
        c = GpuCollector(make_context(cls=GpuCollector))
        reason = c.available()
        c.close()
    finally:
        nvml.use(previous)
    assert reason is not None and "NVML Shared Library Not Found" in reason


def test_driver_without_gpus_is_skipped_and_nvml_released():
    fake = fk.FakeNvml([])
    previous = nvml.use(fake)
    try:
        c = GpuCollector(make_context(cls=GpuCollector))
        reason = c.available()
    finally:
        nvml.use(previous)
    assert reason == "NVML reports no GPUs"
    assert fake.initialised == 0


def test_real_pynvml_on_this_host_is_skipped_or_works():
    """Without a GPU the real binding must say why it skips; with one, the scrape must be clean."""
    c = GpuCollector(make_context(cls=GpuCollector, **{"xid-events": False}))
    reason = c.available()
    try:
        if reason is None:
            text = render(c)
            assert_promtool_clean(text)
            assert collector_success(text) == {"gpu": 1}
        else:
            assert reason.startswith("NVML not usable") or reason == "NVML reports no GPUs"
    finally:
        c.close()


def test_the_collector_is_registered_on_by_default_in_the_node_agent():
    from hpcwatch.exporters.registry import load_all

    cls = load_all()["gpu"]
    assert cls is GpuCollector and cls.default_agents == frozenset({"node"})
