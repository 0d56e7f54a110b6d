"""The jobs collector on fixture trees: cgroup v1 (Debian 22.05 multiple-slurmd), v2, and Slurm 26.05 SLUIDs."""

from __future__ import annotations

import os
import pwd
import shutil

import helpers
import pytest
from hpcwatch.exporters.jobs.collector import JobsCollector
from hpcwatch.exporters.selfmetrics import parse_errors

FIXTURES = os.path.join(os.path.dirname(os.path.dirname(__file__)), "fixtures", "jobs")


def user(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return str(uid)


def collector(base: str, rootfs: str = "/", **options: object) -> JobsCollector:
    ctx = helpers.make_context(procfs=os.path.join(base, "proc"), sysfs=os.path.join(base, "sys"), rootfs=rootfs,
                               cls=JobsCollector, **options)
    return JobsCollector(ctx)


def scrape(base: str, success: float = 1.0, **options: object) -> str:
    text = helpers.render(collector(base, **options))
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"jobs": success}
    return text


@pytest.fixture
def tree(tmp_path):
    """A writable copy of all three fixture layouts."""
    dst = tmp_path / "jobs"
    shutil.copytree(FIXTURES, dst)
    return str(dst)


def test_cgroup_v1_layout():
    text = scrape(os.path.join(FIXTURES, "v1"))
    v = lambda name, **labels: helpers.values(text, name, **labels)
    # Account and partition from the environment of each job's batch task (step_batch/task_0/tasks).
    assert helpers.series_labels(text, "hpc_job_info") == [
        {"jobid": "5", "user": user(0), "uid": "0", "account": "root", "partition": "debug"},
        {"jobid": "7", "user": user(1000), "uid": "1000", "account": "astro", "partition": "cpu"}]
    ticks = os.sysconf("SC_CLK_TCK")
    assert v("hpc_job_cpu_seconds_total", jobid="7", mode="user") == [pytest.approx(123456 / ticks)]
    assert v("hpc_job_cpu_seconds_total", jobid="7", mode="system") == [pytest.approx(789 / ticks)]
    assert v("hpc_job_memory_limit_bytes", jobid="5") == [104857600]
    assert v("hpc_job_memory_limit_bytes", jobid="7") == []  # unlimited: no series
    assert v("hpc_job_memory_usage_bytes", jobid="5") == [1134592]
    assert v("hpc_job_memory_max_usage_bytes", jobid="7") == [600000000]
    assert v("hpc_job_memory_rss_bytes", jobid="7") == [400000000]
    assert v("hpc_job_memory_cache_bytes", jobid="7") == [24288000]
    assert v("hpc_job_memory_limit_hits_total", jobid="7") == [12]
    assert v("hpc_job_oom_kills_total", jobid="7") == [4]  # job 1 + step_0 2 + step_0/task_1 1
    assert v("hpc_job_tasks", jobid="5") == [3]  # slurmstepd + 2 processes of task_0
    assert v("hpc_job_tasks", jobid="7") == [6]  # 2 slurmstepd + 4 task processes
    assert v("hpc_job_oom_events_total") == []  # v1 has no such counter
    assert v("hpc_job_cpus", jobid="7") == [5]  # cpuset.cpus "0-3,8"
    assert v("hpc_job_cpus", jobid="5") == [1]
    assert not [s for s in helpers.series_labels(text, "hpc_job_info") if s["jobid"] == "99"]


def test_cgroup_v2_layout():
    text = scrape(os.path.join(FIXTURES, "v2"))
    v = lambda name, **labels: helpers.values(text, name, **labels)
    assert helpers.series_labels(text, "hpc_job_info") == [
        {"jobid": "77", "user": user(1000), "uid": "1000", "account": "chem", "partition": "gpu"},
        {"jobid": "78", "user": user(0), "uid": "0", "account": "phys", "partition": "batch"}]
    assert v("hpc_job_cpu_seconds_total", jobid="77", mode="user") == [4.5]
    assert v("hpc_job_cpu_seconds_total", jobid="77", mode="system") == [0.5]
    assert v("hpc_job_memory_limit_bytes", jobid="77") == [1073741824]
    assert v("hpc_job_memory_limit_bytes", jobid="78") == []  # "max"
    assert v("hpc_job_memory_max_usage_bytes", jobid="78") == []  # no memory.peak on this kernel
    assert v("hpc_job_memory_limit_hits_total", jobid="77") == [3]
    assert v("hpc_job_oom_events_total", jobid="77") == [1]
    assert v("hpc_job_oom_kills_total", jobid="77") == [1]
    assert v("hpc_job_tasks", jobid="77") == [4]
    assert v("hpc_job_memory_rss_bytes", jobid="77") == [40000000]
    assert v("hpc_job_cpus", jobid="77") == [2]  # cpuset.cpus.effective "0-1"
    assert v("hpc_job_cpus", jobid="78") == []  # no cpuset controller delegated


def test_sluid_layout_resolves_numeric_jobid_from_a_task():
    text = scrape(os.path.join(FIXTURES, "sluid"))
    info = helpers.series_labels(text, "hpc_job_info")
    # This task's environment names no account or partition (a job step outside sbatch): they stay empty.
    assert {"jobid": "123456", "user": user(1000), "uid": "1000", "account": "", "partition": ""} in info
    # No task process yet: the SLUID is the label until a task shows up.
    assert {"jobid": "s5K1KKYB0000ZZ", "user": "", "uid": "", "account": "", "partition": ""} in info
    assert helpers.values(text, "hpc_job_memory_limit_bytes", jobid="123456") == [2147483648]


def test_node_option_filters_roots():
    assert "hpc_job_info{" in scrape(os.path.join(FIXTURES, "sluid"), nodes="node07")
    c = collector(os.path.join(FIXTURES, "sluid"), rootfs=os.path.join(FIXTURES, "sluid"), nodes="other")
    assert "no Slurm job cgroup hierarchy" in c.available()


def test_unavailable_without_slurm_hierarchy(tmp_path):
    helpers.write_tree(str(tmp_path), {"sys/fs/cgroup/memory/memory.limit_in_bytes": "1\n"})
    assert "no Slurm job cgroup hierarchy" in collector(str(tmp_path), rootfs=str(tmp_path)).available()
    assert "not found" in collector(str(tmp_path / "nothing")).available()
    # A compute node whose slurmd has not run a job yet (no cgroup root): on, reporting no jobs.
    helpers.write_tree(str(tmp_path), {"usr/sbin/slurmd": "#!/bin/sh\n"})
    idle = collector(str(tmp_path), rootfs=str(tmp_path))
    assert idle.available() is None
    text = helpers.render(idle)
    assert helpers.collector_success(text) == {"jobs": 1.0}
    assert helpers.values(text, "hpc_job_info") == []
    for layout in ("v1", "v2", "sluid"):
        assert collector(os.path.join(FIXTURES, layout)).available() is None


def test_ended_job_disappears_on_next_scrape(tree):
    c = collector(os.path.join(tree, "v1"))
    assert helpers.values(helpers.render(c), "hpc_job_info", jobid="5") == [1]
    for ctl in ("memory", "cpuacct"):
        shutil.rmtree(os.path.join(tree, "v1/sys/fs/cgroup", ctl, "slurm_node01/uid_0/job_5"))
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert [s for s in helpers.samples(text) if ("jobid", "5") in s[1]] == []
    assert helpers.values(text, "hpc_job_info", jobid="7") == [1]


def test_job_vanishing_between_listing_and_reading(tree):
    """A job directory listed but empty by the time it is read (files gone) is dropped, not an error."""
    base = os.path.join(tree, "v2/sys/fs/cgroup/system.slice/slurmstepd.scope/job_78")
    shutil.rmtree(base)
    os.makedirs(base)  # the kernel removes files before the directory
    text = scrape(os.path.join(tree, "v2"))
    assert helpers.values(text, "hpc_job_info", jobid="78") == []
    assert helpers.values(text, "hpc_job_info", jobid="77") == [1]


@pytest.mark.parametrize("content", ["", "12", "user\nsystem\n", "user x\nsystem 3\n", "\0\0\0", "user 1\n"])
def test_bad_cpuacct_stat_drops_only_cpu(tree, content):
    helpers.write_tree(tree, {"v1/sys/fs/cgroup/cpuacct/slurm_node01/uid_0/job_5/cpuacct.stat": content})
    text = scrape(os.path.join(tree, "v1"))
    assert helpers.values(text, "hpc_job_cpu_seconds_total", jobid="5") == []
    assert helpers.values(text, "hpc_job_memory_limit_bytes", jobid="5") == [104857600]
    assert len(helpers.values(text, "hpc_job_cpu_seconds_total", jobid="7")) == 2


@pytest.mark.parametrize("content", ["", "abc\n", "-5\n", "1.5e9\n", "99999999999999999999999\n", "١٢\n"])
def test_bad_single_value_files(tree, content):
    job = "v2/sys/fs/cgroup/system.slice/slurmstepd.scope/job_77"
    helpers.write_tree(tree, {f"{job}/memory.current": content, f"{job}/memory.max": content,
                              f"{job}/pids.current": content})
    text = scrape(os.path.join(tree, "v2"))
    for name in ("hpc_job_memory_usage_bytes", "hpc_job_memory_limit_bytes", "hpc_job_tasks"):
        assert helpers.values(text, name, jobid="77") == []
    assert helpers.values(text, "hpc_job_cpu_seconds_total", jobid="77", mode="user") == [4.5]


def test_truncated_memory_stat_counts_parse_errors(tree):
    job = "v2/sys/fs/cgroup/system.slice/slurmstepd.scope/job_77"
    before = parse_errors("jobs_cgroup")
    helpers.write_tree(tree, {f"{job}/memory.stat": "anon 4096\nfile 81\nkernel_st"})
    text = scrape(os.path.join(tree, "v2"))
    assert helpers.values(text, "hpc_job_memory_rss_bytes", jobid="77") == [4096]
    assert parse_errors("jobs_cgroup") == before + 1


def test_unreadable_file_is_skipped(tree):
    """Root reads through chmod 000, so an unreadable file is emulated by a directory in its place
    (read fails with IsADirectoryError, the same path through files.read_text as EACCES): that value
    is skipped, the rest of the job is served, and the read error fails the scrape visibly."""
    job = os.path.join(tree, "v1/sys/fs/cgroup/memory/slurm_node01/uid_1000/job_7")
    os.remove(os.path.join(job, "memory.usage_in_bytes"))
    os.makedirs(os.path.join(job, "memory.usage_in_bytes"))
    os.chmod(os.path.join(job, "memory.failcnt"), 0)
    text = scrape(os.path.join(tree, "v1"), success=0.0)
    assert helpers.values(text, "hpcwatch_read_errors_total", source="jobs")
    assert helpers.values(text, "hpc_job_memory_usage_bytes", jobid="7") == []
    assert helpers.values(text, "hpc_job_memory_max_usage_bytes", jobid="7") == [600000000]
    if os.geteuid() != 0:  # only a non-root run can see EACCES on the chmod 000 file
        assert helpers.values(text, "hpc_job_memory_limit_hits_total", jobid="7") == []


def test_same_jobid_under_two_roots_is_reported_once(tree):
    v1 = os.path.join(tree, "v1/sys/fs/cgroup")
    for ctl in ("memory", "cpuacct"):
        shutil.copytree(os.path.join(v1, ctl, "slurm_node01"), os.path.join(v1, ctl, "slurm_node02"))
    text = scrape(os.path.join(tree, "v1"))
    assert helpers.values(text, "hpc_job_info", jobid="5") == [1]
    text = scrape(os.path.join(tree, "v1"), nodes="node02")
    assert helpers.values(text, "hpc_job_info", jobid="5") == [1]


def test_v1_job_directory_replaced_by_a_file(tree):
    job = os.path.join(tree, "v1/sys/fs/cgroup/memory/slurm_node01/uid_0/job_5")
    shutil.rmtree(job)
    helpers.write_tree(tree, {"v1/sys/fs/cgroup/memory/slurm_node01/uid_0/job_5": "garbage"})
    text = scrape(os.path.join(tree, "v1"))
    # cpuacct still has job 5: its CPU series survive, nothing from memory
    assert len(helpers.values(text, "hpc_job_cpu_seconds_total", jobid="5")) == 2
    assert helpers.values(text, "hpc_job_memory_usage_bytes", jobid="5") == []
    assert helpers.values(text, "hpc_job_tasks", jobid="5") == []


def test_account_and_partition_are_read_once_per_job_and_capped(tree):
    """Read from a task's environment the first time the job is seen; later scrapes keep them though the
    process has gone (and do not read /proc again); a value with control characters or past the label cap
    is capped, as every label from users is."""
    v2 = os.path.join(tree, "v2")
    env = os.path.join(v2, "proc", "3000", "environ")
    with open(env, "rb") as fh:
        data = fh.read().replace(b"SLURM_JOB_ACCOUNT=chem", b"SLURM_JOB_ACCOUNT=ch\x01em" + b"x" * 200)
    with open(env, "wb") as fh:
        fh.write(data)
    c = collector(v2)
    first = {s["jobid"]: s for s in helpers.series_labels(helpers.render(c), "hpc_job_info")}
    assert first["77"]["account"] == ("ch?em" + "x" * 200)[:128] and first["77"]["partition"] == "gpu"
    shutil.rmtree(os.path.join(v2, "proc", "3000"))
    again = {s["jobid"]: s for s in helpers.series_labels(helpers.render(c), "hpc_job_info")}
    assert again["77"] == first["77"]
