"""Every pynvml function and constant the gpu collector uses exists in the installed nvidia-ml-py, and
every call the collector made during the fake-NVML scenarios binds to the real function's signature:
a typo or a wrong argument cannot hide behind the fake."""

from __future__ import annotations

import ast
import ctypes
import inspect
import os
import re
import sys

import pynvml
import pytest
from helpers import make_context, render
from hpcwatch.exporters.gpu import fields, nvml
from hpcwatch.exporters.gpu.collector import CLOCK_REASONS, GpuCollector
from hpcwatch.exporters.gpu.energy import GpuEnergyReader

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gpu")
sys.path.insert(0, FIXTURES)
import fake_pynvml as fk

GPU_PACKAGE = os.path.dirname(os.path.abspath(nvml.__file__))
_NVML_NAME = re.compile(r"^(nvml[A-Z]\w*|NVML_\w+|NVMLError\w*)$")
# Members of pynvml structures the collector reads (checked against the structures, not the module).
STRUCT_MEMBERS = {
    "c_nvmlFieldValue_t": {"fieldId", "scopeId", "nvmlReturn", "valueType", "value"},
    "c_nvmlValue_t": {"dVal", "uiVal", "ulVal", "ullVal", "sllVal", "siVal", "usVal"},
    "c_nvmlMemory_t": {"total", "used"},
    "c_nvmlMemory_v2_t": {"total", "used", "reserved"},
    "c_nvmlUtilization_t": {"gpu", "memory"},
    "nvmlPciInfo_t": {"busId"},
    "c_nvmlProcessInfo_v3_t": {"pid", "usedGpuMemory"},
    "c_nvmlEventData_t": {"device", "eventType", "eventData"},
    "c_nvmlGpmSupport_t": {"isSupportedDevice"},
    "c_nvmlGpmMetricsGet_t": {"version", "numMetrics", "sample1", "sample2", "metrics"},
    "c_nvmlGpmMetric_t": {"metricId", "nvmlReturn", "value"},
}


def names_used_by_the_collector() -> set[str]:
    """pynvml names in exporters/gpu/*.py: attributes (lib.nvmlX, lib.NVML_X) and string literals
    naming a function or constant (calls through _call("nvmlX", ...), getattr, field tables)."""
    found: set[str] = set()
    for name in sorted(os.listdir(GPU_PACKAGE)):
        if not name.endswith(".py"):
            continue
        with open(os.path.join(GPU_PACKAGE, name)) as fh:
            tree = ast.parse(fh.read())
        for node in ast.walk(tree):
            if isinstance(node, ast.Attribute) and _NVML_NAME.match(node.attr):
                found.add(node.attr)
            elif (
                isinstance(node, ast.Constant)
                and isinstance(node.value, str)
                and _NVML_NAME.match(node.value)
            ):
                found.add(node.value)
    return found


def test_the_scan_finds_what_the_collector_uses():
    used = names_used_by_the_collector()
    # A guard on the guard: if the scan finds nothing, the next test proves nothing.
    assert {
        "nvmlDeviceGetFieldValues",
        "nvmlEventSetWait_v2",
        "nvmlDeviceRegisterEvents",
        "nvmlEventTypeXidCriticalError",
        "NVML_ERROR_GPU_IS_LOST",
        "nvmlDeviceGetComputeRunningProcesses",
        "NVML_FI_DEV_NVLINK_THROUGHPUT_DATA_TX",
        "nvmlClocksEventReasonHwThermalSlowdown",
    } <= used
    assert len(used) > 60


def test_every_name_exists_in_the_installed_pynvml():
    members = {m for ms in STRUCT_MEMBERS.values() for m in ms}
    missing = sorted(n for n in names_used_by_the_collector() - members if not hasattr(pynvml, n))
    assert missing == []


def test_structure_members_read_by_the_collector_exist():
    for struct, members in STRUCT_MEMBERS.items():
        have = {f[0] for f in getattr(pynvml, struct)._fields_}
        assert members <= have, (struct, members - have)


def test_field_ids_match_pynvml_constants():
    for name, fid in (*fields.DEVICE_FIELDS.items(), fields.NVLINK_LINK_COUNT, *fields.LINK_FIELDS.items()):
        assert getattr(pynvml, name) == fid, name
    for _, const in CLOCK_REASONS:
        assert isinstance(getattr(pynvml, const), int)


def test_the_fake_only_implements_real_pynvml_functions_with_the_same_parameters():
    for name, member in inspect.getmembers(fk.FakeNvml, inspect.isfunction):
        if not name.startswith("nvml"):
            continue
        real = inspect.signature(getattr(pynvml, name))
        fake = inspect.signature(member)
        fake_params = [p for p in fake.parameters if p != "self"]
        assert fake_params == list(real.parameters), name


def scenario_calls():
    """Run every fake scenario through a scrape and return all calls the collector made."""
    calls = []
    node = fk.h100_node({0: [(1001, 1 << 30)]})
    node.gpus[3].lost_after = 2
    for fake in (node, fk.a100_mig(), fk.consumer(), fk.h100_mig()):
        previous = nvml.use(fake)
        try:
            c = GpuCollector(make_context(procfs=os.path.join(FIXTURES, "proc"), cls=GpuCollector,
                                          **{"gpm-interval": 0.0}))
            assert c.available() is None
            if c.watcher is not None and c.watcher.alive:
                fake.push_xid(0, 79)
                assert fake.wait_drained()
            render(c)
            render(c)  # GPM metrics need a second sample
            c.close()
            energy = GpuEnergyReader(os.path.join(FIXTURES, "proc"), os.path.join(FIXTURES, "gpu-jobs"))
            energy.start()
            energy.read()   # the energy collector's GPU reader goes through the same boundary
            energy.close()
        finally:
            nvml.use(previous)
        calls.extend(fake.calls)
    return calls


@pytest.fixture(scope="module")
def calls():
    return scenario_calls()


def test_every_recorded_call_binds_to_the_real_signature(calls):
    seen = set()
    for name, args, kwargs in calls:
        real = getattr(pynvml, name)
        try:
            inspect.signature(real).bind(*args, **kwargs)
        except TypeError as exc:
            pytest.fail(
                f"{name}{args!r} {kwargs!r} does not fit pynvml.{name}{inspect.signature(real)}: {exc}"
            )
        seen.add(name)
    # Every function the collector names was exercised by some scenario (so it was bound above).
    used_functions = {
        n for n in names_used_by_the_collector() if inspect.isfunction(getattr(pynvml, n, None))
    }
    untested = used_functions - seen - {"nvmlSystemGetCudaDriverVersion"}  # fallback when _v2 is missing
    assert untested == set()


# --- the direct nvmlDeviceGetFieldValues call (nvml.field_values) ----------------------------------------
def test_pynvml_has_what_the_direct_field_values_call_relies_on():
    """nvml.field_values calls NVML's function the way pynvml's own wrapper does, through its private
    lookup and return check; if a pynvml release drops them the collector falls back to the wrapper,
    but this test says so. The record layout must be one the struct fast path can read."""
    assert callable(pynvml._nvmlGetFunctionPointer) and callable(pynvml._nvmlCheckReturn)
    wrapper = inspect.getsource(pynvml.nvmlDeviceGetFieldValues)
    assert '_nvmlGetFunctionPointer("nvmlDeviceGetFieldValues")' in wrapper
    assert "c_int32(len(fieldIds)), byref(values)" in wrapper and "_nvmlCheckReturn(ret)" in wrapper
    assert nvml._direct(pynvml) is not None
    assert fields._layout_of(pynvml.c_nvmlFieldValue_t) is not None


@pytest.fixture
def c_field_values(monkeypatch):
    """A C-ABI stand-in for libnvidia-ml's nvmlDeviceGetFieldValues in pynvml's function-pointer cache:
    it answers every requested (fieldId, scopeId) with fieldId * 1000 + scopeId, or fails with `ret`."""
    state = {"ret": pynvml.NVML_SUCCESS, "requests": []}
    # Untyped pointers, as libnvidia-ml's functions are to pynvml (it declares no argtypes).
    proto = ctypes.CFUNCTYPE(ctypes.c_int, ctypes.c_void_p, ctypes.c_int32, ctypes.c_void_p)

    def impl(handle, count, address):
        values = ctypes.cast(address, ctypes.POINTER(pynvml.c_nvmlFieldValue_t))
        asked = []
        for i in range(count):
            rec = values[i]
            asked.append((rec.fieldId, rec.scopeId))
            rec.valueType, rec.nvmlReturn = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, pynvml.NVML_SUCCESS
            rec.value.ullVal = rec.fieldId * 1000 + rec.scopeId
        state["requests"].append((handle, asked))
        return state["ret"]

    state["fn"] = proto(impl)  # keep the callback alive while pynvml holds it
    monkeypatch.setitem(pynvml._nvmlGetFunctionPointer_cache, "nvmlDeviceGetFieldValues", state["fn"])
    return state


def test_field_values_hands_nvml_a_fresh_copy_of_the_request_each_call(c_field_values):
    request = nvml.FieldRequest(fields.request(2))
    first = nvml.field_values(pynvml, ctypes.c_void_p(0x1234), request)
    second = nvml.field_values(pynvml, ctypes.c_void_p(0x1234), request)
    assert first is not second and ctypes.addressof(first) != ctypes.addressof(second)
    assert [asked for _, asked in c_field_values["requests"]] == [request.ids, request.ids]
    assert c_field_values["requests"][0][0] == 0x1234
    values, missing = fields.decode_values(second)
    assert missing == [] and values == {(f, s): float(f * 1000 + s) for f, s in request.ids}
    first[0].fieldId = 999  # what NVML or a caller writes into one copy never reaches the next call
    nvml.field_values(pynvml, ctypes.c_void_p(0x1234), request)
    assert c_field_values["requests"][-1][1] == request.ids


def test_field_values_raises_the_same_nvml_error_as_the_wrapper(c_field_values):
    c_field_values["ret"] = pynvml.NVML_ERROR_GPU_IS_LOST
    request = nvml.FieldRequest([(1, 0)])
    with pytest.raises(pynvml.NVMLError) as direct:
        nvml.field_values(pynvml, ctypes.c_void_p(1), request)
    with pytest.raises(pynvml.NVMLError) as wrapper:
        pynvml.nvmlDeviceGetFieldValues(ctypes.c_void_p(1), request.ids)
    assert type(direct.value) is type(wrapper.value)
    assert nvml.error_code(direct.value) == pynvml.NVML_ERROR_GPU_IS_LOST


def test_field_values_goes_through_any_other_binding_by_its_public_name():
    fake = fk.h100_node()
    request = nvml.FieldRequest(fields.request(1))
    records = nvml.field_values(fake, fake._handles[0], request)
    assert fake.calls == [("nvmlDeviceGetFieldValues", (fake._handles[0], request.ids), {})]
    assert len(records) == len(request.ids)
