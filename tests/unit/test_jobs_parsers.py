"""Parsers of the jobs collector: exact values on real formats, and fuzzing (parsers never raise)."""

from __future__ import annotations

import pytest
from hpcwatch.exporters.jobs import cgroupfs as cg
from hypothesis import given, settings
from hypothesis import strategies as st


def test_keyed_values():
    kv = cg.parse_keyed("user 10\nsystem 5\n\nbroken\nneg -1\nx 1 2\n")
    assert kv.values == {"user": 10, "system": 5}
    assert kv.bad_lines == 3


def test_cpu_parsers():
    assert cg.parse_cpuacct_stat("user 250\nsystem 50\n", 100) == cg.CpuTimes(2.5, 0.5)
    assert cg.parse_cpuacct_stat("user 250\n", 100) is None
    assert cg.parse_cpuacct_stat("user 1\nsystem 1\n", 0) is None
    assert cg.parse_cpu_stat("usage_usec 3000000\nuser_usec 2000000\nsystem_usec 1000000\n") == cg.CpuTimes(2, 1)
    assert cg.parse_cpu_stat("usage_usec 3\n") is None


def test_limits_and_ints():
    assert cg.parse_limit("104857600\n") == 104857600
    assert cg.parse_limit("max\n") is None
    assert cg.parse_limit("9223372036854771712\n") is None
    assert cg.parse_limit(None) is None
    assert cg.parse_int(" 42 \n") == 42
    assert cg.parse_int("4 2") is None
    assert cg.parse_int("") is None


def test_memory_events_and_oom_control():
    ev = cg.parse_memory_events("low 0\nhigh 0\nmax 7\noom 2\noom_kill 1\noom_group_kill 0\n")
    assert ev == cg.MemoryEvents(max=7, oom=2, oom_kill=1)
    assert cg.parse_memory_events("low 0\n") == cg.MemoryEvents(None, None, None)
    assert cg.parse_oom_control("oom_kill_disable 0\nunder_oom 0\noom_kill 4\n") == 4
    assert cg.parse_oom_control("oom_kill_disable 0\nunder_oom 0\n") is None  # kernels < 4.13


def test_directory_names():
    assert cg.parse_job_dir("job_5") == cg.JobDir("5", None)
    assert cg.parse_job_dir("job_007") == cg.JobDir("7", None)
    assert cg.parse_job_dir("s5K1KKYAYG5D00") == cg.JobDir(None, "s5K1KKYAYG5D00")
    for name in ("step_batch", "system", "job_", "job_5x", "slurm", "sIL0000000000", "s123"):
        assert cg.parse_job_dir(name) is None, name
    assert cg.parse_uid_dir("uid_1000") == 1000
    assert cg.parse_uid_dir("uid_x") is None


def test_status():
    assert cg.parse_status_uid("Name:\tx\nUid:\t1000\t1000\t1000\t1000\n") == 1000
    assert cg.parse_status_uid("Name:\tx\n") is None
    assert cg.parse_status_uid("Uid:\n") is None
    assert cg.count_lines("1\n2\n\n3") == 3
    assert cg.count_lines(None) is None


text = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=400)
keyed = st.lists(st.tuples(st.sampled_from(["user", "system", "user_usec", "system_usec", "max", "oom",
                                            "oom_kill", "anon", "file", "total_rss", "x"]),
                           st.one_of(st.integers(-5, 2**70).map(str), text)), max_size=12).map(
    lambda pairs: "\n".join(f"{k} {v}" for k, v in pairs))


@settings(max_examples=300, deadline=None)
@given(st.one_of(text, keyed), st.integers(-1, 1000))
def test_parsers_never_raise(data, ticks):
    kv = cg.parse_keyed(data)
    assert all(isinstance(v, int) and v >= 0 for v in kv.values.values())
    cpu = cg.parse_cpuacct_stat(data, ticks)
    assert cpu is None or (cpu.user >= 0 and cpu.system >= 0)
    cpu = cg.parse_cpu_stat(data)
    assert cpu is None or (cpu.user >= 0 and cpu.system >= 0)
    cg.parse_memory_events(data)
    cg.parse_oom_control(data)
    limit = cg.parse_limit(data)
    assert limit is None or 0 <= limit < cg.UNLIMITED_V1
    cg.parse_int(data)
    cg.parse_job_dir(data)
    cg.parse_uid_dir(data)
    cg.parse_status_uid(data)
    cg.count_lines(data)


@pytest.mark.parametrize(("text", "want"), [("0-3,8\n", 5), ("7", 1), ("0-63", 64), ("", None), (None, None),
                                            ("3-1", None), ("a-b", None), ("1,,2", None)])
def test_parse_cpu_list(text, want):
    from hpcwatch.exporters.jobs.cgroupfs import parse_cpu_list

    assert parse_cpu_list(text) == want
