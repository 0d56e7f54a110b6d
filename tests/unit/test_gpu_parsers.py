"""Pure parsers of the gpu collector: field-value decoding, /proc/<pid>/cgroup, the job map; fuzzed."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pynvml
from hpcwatch.exporters.gpu import fields
from hpcwatch.exporters.gpu.jobs import parse_cgroup_jobid, parse_job_map, read_job_map, read_pid_jobid
from hypothesis import given
from hypothesis import strategies as st

FIXTURES = os.path.join(os.path.dirname(__file__), "..", "fixtures", "gpu")


def record(fid, vtype, member, raw, status=pynvml.NVML_SUCCESS, scope=0):
    v = pynvml.c_nvmlFieldValue_t()
    v.fieldId, v.scopeId, v.valueType, v.nvmlReturn = fid, scope, vtype, status
    setattr(v.value, member, raw)
    return v


def test_decode_reads_each_value_type_and_keeps_the_scope():
    recs = [
        record(82, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 61),
        record(83, pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, "ullVal", 2**40),
        record(165, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 1, scope=17),
        record(186, pynvml.NVML_VALUE_TYPE_DOUBLE, "dVal", 12.5),
        record(190, pynvml.NVML_VALUE_TYPE_SIGNED_LONG_LONG, "sllVal", -5),
        record(191, pynvml.NVML_VALUE_TYPE_UNSIGNED_SHORT, "usVal", 7),
    ]
    assert fields.by_key(fields.decode(recs)) == {
        (82, 0): 61,
        (83, 0): 2**40,
        (165, 17): 1,
        (186, 0): 12.5,
        (190, 0): -5,
        (191, 0): 7,
    }


def test_decode_drops_failed_fields_sentinels_and_unknown_types():
    recs = [
        record(1, 1, "uiVal", 1, status=pynvml.NVML_ERROR_NOT_SUPPORTED),
        record(83, 3, "ullVal", 0xFFFFFFFFFFFFFFFF),
        record(82, 1, "uiVal", 0xFFFFFFFF),
        record(186, 0, "dVal", float("nan")),
        record(94, 42, "uiVal", 3),
    ]
    out = fields.decode(recs)
    assert fields.by_key(out) == {}
    assert out[0].status == pynvml.NVML_ERROR_NOT_SUPPORTED and not out[0].sentinel
    assert out[1].sentinel and out[2].sentinel and out[3].sentinel
    assert out[4].value is None and out[4].status != pynvml.NVML_SUCCESS


def test_request_asks_device_fields_once_and_link_fields_per_link():
    req = fields.request(18)
    assert req[: len(fields.DEVICE_FIELDS)] == [(f, 0) for f in fields.DEVICE_FIELDS.values()]
    assert len(req) == len(fields.DEVICE_FIELDS) + 18 * len(fields.LINK_FIELDS)
    assert (fields.LINK_FIELDS["NVML_FI_DEV_NVLINK_GET_STATE"], 17) in req
    assert fields.request(0) == fields.request(-3)


@given(
    st.lists(
        st.fixed_dictionaries(
            {
                "fieldId": st.integers(-5, 2**33),
                "scopeId": st.integers(-5, 2**33),
                "nvmlReturn": st.one_of(st.integers(-3, 1000), st.none(), st.text(max_size=3)),
                "valueType": st.one_of(st.integers(-3, 12), st.none()),
                "value": st.builds(
                    SimpleNamespace,
                    dVal=st.floats(allow_nan=True),
                    uiVal=st.integers(-1, 2**64),
                    ulVal=st.integers(-1, 2**64),
                    ullVal=st.integers(-1, 2**65),
                    sllVal=st.integers(-(2**63), 2**63),
                    siVal=st.integers(-(2**31), 2**31),
                    usVal=st.one_of(st.integers(0, 2**16), st.text(max_size=2)),
                ),
            }
        ),
        max_size=20,
    )
)
def test_decode_never_raises(records):
    out = fields.decode([SimpleNamespace(**r) for r in records])
    for reading in out:
        assert reading.value is None or isinstance(reading.value, float)


_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal", 6: "usVal"}
_RANGES = {
    "uiVal": (0, 2**32 - 1),
    "ulVal": (0, 2**64 - 1),
    "ullVal": (0, 2**64 - 1),
    "sllVal": (-(2**63), 2**63 - 1),
    "siVal": (-(2**31), 2**31 - 1),
    "usVal": (0, 2**16 - 1),
}


@st.composite
def field_record(draw):
    vtype = draw(st.integers(0, 8))
    member = _MEMBERS.get(vtype, "ullVal")
    if member == "dVal":
        raw = draw(st.floats(allow_nan=True, allow_infinity=True))
    else:
        lo, hi = _RANGES[member]
        raw = draw(st.one_of(st.sampled_from([lo, hi, 0, 0xFFFFFFFF % (hi + 1), -1 if lo < 0 else hi]),
                             st.integers(lo, hi)))
    status = draw(st.sampled_from([pynvml.NVML_SUCCESS, pynvml.NVML_SUCCESS, pynvml.NVML_ERROR_NOT_SUPPORTED,
                                   pynvml.NVML_ERROR_GPU_IS_LOST, 2**32 - 1]))
    return (draw(st.integers(0, 2**32 - 1)), draw(st.integers(0, 2**32 - 1)), vtype, member, raw, status)


@given(st.lists(field_record(), max_size=40))
def test_decode_values_of_a_ctypes_array_matches_attribute_decoding(specs):
    """The struct fast path reads pynvml's record array exactly as ctypes attribute access does."""
    arr = (pynvml.c_nvmlFieldValue_t * len(specs))()
    for rec, (fid, scope, vtype, member, raw, status) in zip(arr, specs):
        rec.fieldId, rec.scopeId, rec.valueType, rec.nvmlReturn = fid, scope, vtype, status
        setattr(rec.value, member, raw)
    assert fields._layout_for(arr) is not None  # the fast path is taken, not the fallback
    readings = fields.decode(list(arr))  # a list, so decode reads each record through ctypes
    expected_values = fields.by_key(readings)
    expected_missing = [r for r in readings if r.value is None]
    got_values, got_missing = fields.decode_values(arr)
    assert got_values == expected_values
    assert list(got_values) == list(expected_values)  # same order too (last of a duplicate key wins)
    assert got_missing == expected_missing


def test_decode_values_falls_back_for_records_that_are_not_a_ctypes_array():
    recs = [
        record(82, pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, "uiVal", 61),
        record(1, 1, "uiVal", 1, status=pynvml.NVML_ERROR_NOT_SUPPORTED),
    ]
    values, missing = fields.decode_values(recs)
    assert values == {(82, 0): 61.0}
    assert [(r.field_id, r.status) for r in missing] == [(1, pynvml.NVML_ERROR_NOT_SUPPORTED)]
    assert fields.decode_values(()) == ({}, [])


# --- cgroups --------------------------------------------------------------------------------------------
def test_cgroup_v1_v2_and_node_suffixed_paths():
    assert parse_cgroup_jobid("4:memory:/slurm/uid_1000/job_17/step_0/task_0\n") == "17"
    assert parse_cgroup_jobid("4:cpuset:/slurm_gpu-node07/uid_0/job_18/step_batch\n") == "18"
    assert parse_cgroup_jobid("0::/system.slice/slurmstepd.scope/job_19/step_0/user/task_0\n") == "19"
    assert parse_cgroup_jobid("0::/system.slice/node2_slurmstepd.scope/job_20/step_extern\n") == "20"
    assert parse_cgroup_jobid("0::/system.slice/slurmstepd.scope/job_21\n") == "21"


def test_cgroups_that_are_not_a_slurm_job():
    assert parse_cgroup_jobid("0::/user.slice/user-1000.slice/session-3.scope\n") is None
    assert parse_cgroup_jobid("0::/system.slice/slurmstepd.scope/system\n") is None  # stepd itself
    assert parse_cgroup_jobid("1:name=systemd:/system.slice/slurmd.service\n") is None
    assert parse_cgroup_jobid("0::/home/job_12/slurm\n") is None
    assert parse_cgroup_jobid("0::/slurm/uid_1000/job_12x/step_0\n") is None
    assert parse_cgroup_jobid("") is None


def test_read_pid_jobid_from_fixture_procfs():
    proc = os.path.join(FIXTURES, "proc")
    assert read_pid_jobid(proc, 1001) == "4242001"
    assert read_pid_jobid(proc, 1002) == "4242002"
    assert read_pid_jobid(proc, 1003) == "4242003"
    assert read_pid_jobid(proc, 1004) is None
    assert read_pid_jobid(proc, 9999) is None  # process gone


@given(st.text(max_size=400))
def test_cgroup_parser_never_raises(text):
    jobid = parse_cgroup_jobid(text)
    assert jobid is None or jobid.isdigit()


# --- mapping directory --------------------------------------------------------------------------------------
def test_job_map_keys_by_index_and_uuid_and_ignores_non_job_files():
    mapping, bad = parse_job_map(
        {
            "101": "0,1\n",
            "102": "GPU-5c8e2a3f-1111-2222-3333-444455556666 MIG-aaaa-bbbb\n",
            "103": "1",
            ".104.tmp": "7",
            "README": "3",
            "105": "not-a-gpu ; rm -rf /",
        }
    )
    assert mapping == {
        "0": {"101"},
        "1": {"101", "103"},
        "GPU-5c8e2a3f-1111-2222-3333-444455556666": {"102"},
        "MIG-aaaa-bbbb": {"102"},
    }
    assert bad == 5  # "not-a-gpu", ";", "rm", "-rf", "/"
    assert "7" not in mapping and "3" not in mapping


def test_read_job_map_fixture_directory():
    mapping = read_job_map(os.path.join(FIXTURES, "gpu-jobs"))
    assert mapping["6"] == {"4242006"} and mapping["7"] == {"4242006"}
    assert mapping["GPU-00000005-1d2c-4f5e-8a9b-0c1d2e3f4a5b"] == {"4242005"}
    assert "0" not in mapping  # .4242009.tmp is a prolog's unfinished write
    assert read_job_map(os.path.join(FIXTURES, "no-such-dir")) == {}


@given(st.dictionaries(st.text(max_size=12), st.text(max_size=200), max_size=8))
def test_job_map_parser_never_raises(files):
    mapping, bad = parse_job_map(files)
    assert bad >= 0
    for key, jobs in mapping.items():
        assert key and all(j.isdigit() for j in jobs)
