"""The jobs collector against real Slurm job cgroups: jobs submitted to the harness cluster show up
with the limits Slurm was asked for and the account and partition the shipped prolog recorded (and,
without the prolog's files, the same from the jobs' task environments), and their series go away when
the jobs end."""

from __future__ import annotations

import os

import helpers
import pytest
from hpcwatch.exporters import labels
from hpcwatch.exporters.jobs.collector import JobsCollector

from hpcwatch.harness.slurm import cgroup_v1_memory
from hpcwatch.harness.util import wait_until

pytestmark = pytest.mark.daemons

MiB = 1 << 20


def jobs_scrape(slurm, **options: object) -> str:
    # Only this cluster's slurmd: other clusters on the same host have their own slurm_<node> roots, and
    # their prologs their own info directories (the harness points the shipped prolog at job_info_dir).
    c = JobsCollector(helpers.make_context(cls=JobsCollector, nodes=slurm.node_name,
                                           **{"info-dir": slurm.job_info_dir, **options}))
    assert c.available() is None
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"jobs": 1.0}
    return text


def requested_mem_bytes(slurm, jobid: int) -> int:
    """MinMemoryNode from `scontrol show job` (e.g. 64M) in bytes."""
    fields = dict(f.split("=", 1) for f in slurm.run(["scontrol", "-o", "show", "job", str(jobid)]).stdout.split()
                  if "=" in f)
    value = fields["MinMemoryNode"]
    return int(value[:-1]) * {"K": 1 << 10, "M": MiB, "G": 1 << 30}[value[-1]]


def allocated_cpus(slurm, jobid: int) -> int:
    """NumCPUs Slurm allocated to the job (one node here), from `scontrol show job`."""
    out = slurm.run(["scontrol", "-o", "show", "job", str(jobid)]).stdout
    return int(dict(f.split("=", 1) for f in out.split() if "=" in f)["NumCPUs"])


@pytest.fixture
def cgroup_slurm(slurm):
    if not cgroup_v1_memory():
        pytest.skip("cgroup v1 memory controller not mounted: the harness runs Slurm without job cgroups")
    return slurm


def squeue_ids(slurm) -> set[str]:
    return set(slurm.run(["squeue", "-h", "-w", slurm.node_name, "-o", "%A"]).stdout.split())


def test_running_jobs_match_slurm(cgroup_slurm):
    slurm = cgroup_slurm
    # Allocates 48 MiB and holds it, within its 100 MiB limit. (The harness node has as many CPUs as
    # the host, 2 here, and each job takes one: two jobs at once.)
    hog = slurm.sbatch(None, "--mem=100M", wrap="python3 -c \"b = bytearray(48 << 20); b[::4096] = b'x' * "
                       "len(b[::4096]); import time; time.sleep(300)\"")
    # A child exceeds the 40 MiB limit and is OOM-killed; the job itself goes on, burns some CPU, sleeps.
    oom = slurm.sbatch(None, "--mem=40M", wrap="python3 -c \"b = bytearray(200 << 20); b[::4096] = b'x' * "
                       "len(b[::4096])\"; python3 -c 'sum(range(20_000_000))'; sleep 300")
    jobs = [hog, oom]
    try:
        for j in jobs:
            slurm.wait_job(j, states=["RUNNING"])
        text = ""

        def ready() -> bool:
            nonlocal text
            text = jobs_scrape(slurm)
            return (all(helpers.values(text, "hpc_job_info", jobid=str(j)) for j in jobs)
                    and helpers.values(text, "hpc_job_memory_rss_bytes", jobid=str(hog))[0] >= 48 * MiB
                    and helpers.values(text, "hpc_job_oom_kills_total", jobid=str(oom))[0] >= 1
                    and helpers.values(text, "hpc_job_cpu_seconds_total", jobid=str(oom), mode="user")[0] > 0.1)

        before = squeue_ids(slurm)
        wait_until(ready, 60, "jobs, their memory, OOM kill and CPU time visible in cgroups", interval=0.5)
        info = helpers.series_labels(text, "hpc_job_info")
        # Every job the collector reports is one Slurm has on this node (other tests' jobs included).
        assert {str(j) for j in jobs} <= {i["jobid"] for i in info} <= before | squeue_ids(slurm)
        for i in info:
            assert (i["uid"], i["user"]) == ("0", "root")
            # No --account: the user's default account; no --partition: the default one (debug).
            if i["jobid"] in {str(j) for j in jobs}:
                assert (i["account"], i["partition"]) == ("root", "debug")
        for j in jobs:
            assert helpers.values(text, "hpc_job_memory_limit_bytes", jobid=str(j)) == [requested_mem_bytes(slurm, j)]
            assert helpers.values(text, "hpc_job_tasks", jobid=str(j))[0] >= 2  # slurmstepd + the batch shell
            assert len(helpers.values(text, "hpc_job_cpu_seconds_total", jobid=str(j))) == 2
            assert helpers.values(text, "hpc_job_cpus", jobid=str(j)) == [allocated_cpus(slurm, j)]
        hog_usage = helpers.values(text, "hpc_job_memory_usage_bytes", jobid=str(hog))[0]
        assert 48 * MiB <= hog_usage <= 100 * MiB
        assert helpers.values(text, "hpc_job_memory_max_usage_bytes", jobid=str(hog))[0] >= hog_usage
        assert helpers.values(text, "hpc_job_memory_limit_hits_total", jobid=str(oom))[0] >= 1
        assert helpers.values(text, "hpc_job_oom_kills_total", jobid=str(hog)) == [0]
    finally:
        slurm.run(["scancel", *map(str, jobs)], check=False)
    for j in jobs:
        assert slurm.wait_job(j) == "CANCELLED"

    def gone() -> bool:
        return not any(("jobid", str(j)) in labels for j in jobs
                       for (_n, labels) in helpers.samples(jobs_scrape(slurm)))

    wait_until(gone, 60, "series of ended jobs gone", interval=0.5)


def test_completed_job_leaves_no_series(cgroup_slurm):
    slurm = cgroup_slurm
    jobid = slurm.sbatch(wrap="true")
    assert slurm.wait_job(jobid) == "COMPLETED"
    wait_until(lambda: not helpers.values(jobs_scrape(slurm), "hpc_job_info", jobid=str(jobid)), 60,
               "completed job's cgroup removed", interval=0.5)


# Account names real Slurm 22.05 stores and hands to the prolog as they are (sacctmgr turns quotes into
# backticks): UTF-8, `|`, shell text and a newline. A 2 KB name is refused by sbatch ("too long") and CJK
# by the harness database (collation error 1267), so those are tested on the shipped prolog alone in
# tests/unit/test_jobs_info.py.
ACCOUNTS = ("physics", "chémie|ünïcødé", "$(id);`x`|q", "new\nline")


def slurm_account_partition(slurm, jobid: int) -> tuple[str, str]:
    """What Slurm itself says the job's account and partition are (squeue; NUL-separated, so any name survives)."""
    out = slurm.run(["squeue", "-h", "-j", str(jobid), "-o", "%a\x1f%P"]).stdout
    account, partition = out.rstrip("\n").split("\x1f")
    return account, partition


def run_and_check_identity(slurm, jobs: dict[int, tuple[str, str]]) -> None:
    """Wait for the running jobs' hpc_job_info and hold it to {jobid: (account, partition)}; cancel them;
    wait for the shipped epilog to remove their files."""
    ids = {str(j) for j in jobs}
    try:
        for j in jobs:
            slurm.wait_job(j, states=["RUNNING"])
            assert slurm_account_partition(slurm, j) == jobs[j]  # Slurm took the name as given
        got: dict[str, dict[str, str]] = {}

        def labelled() -> bool:
            got.clear()
            got.update({i["jobid"]: i for i in helpers.series_labels(jobs_scrape(slurm), "hpc_job_info")})
            return all(got.get(j, {}).get("account") for j in ids)

        wait_until(labelled, 60, "jobs' cgroups and prolog files", interval=0.5)
        want = {str(j): {"jobid": str(j), "user": "root", "uid": "0", "account": labels.value(account),
                         "partition": partition} for j, (account, partition) in jobs.items()}
        assert {j: got[j] for j in ids} == want
        # No prolog files (info-dir ''): this root agent reads the same from each job's batch task environment.
        from_environ = {i["jobid"]: i for i in helpers.series_labels(jobs_scrape(slurm, **{"info-dir": ""}),
                                                                     "hpc_job_info")}
        assert {j: from_environ[j] for j in ids} == want
        unknown = jobs_scrape(slurm, **{"info-dir": ""}, environ=False)
        assert {i["account"] for i in helpers.series_labels(unknown, "hpc_job_info") if i["jobid"] in ids} == {""}
    finally:
        slurm.run(["scancel", *ids], check=False)
    for j in jobs:
        assert slurm.wait_job(j) == "CANCELLED"
    wait_until(lambda: not ids & set(os.listdir(slurm.job_info_dir)), 60, "epilog removed the jobs' files",
               interval=0.5)


def test_prolog_gives_jobs_their_account_and_partition(cgroup_slurm):
    slurm = cgroup_slurm
    for account in ACCOUNTS:
        slurm.run(["sacctmgr", "-i", "add", "account", account])
        slurm.run(["sacctmgr", "-i", "add", "user", "root", f"account={account}"])
    # Two at a time: the harness node has as many CPUs as the host (2 here) and each job takes one.
    for batch in (ACCOUNTS[:2], ACCOUNTS[2:]):
        run_and_check_identity(slurm, {
            slurm.sbatch(None, f"--account={a}", f"--partition={p}", "--mem=50M", wrap="sleep 300"): (a, p)
            for a, p in zip(batch, ("gpu", "debug"))})
