"""The slurm collector against a real single-host Slurm 22.05 (munge, MariaDB, slurmdbd, slurmctld, slurmd).

Jobs that succeed, fail, run out of memory, time out, get cancelled and lose their node; jobs held
pending for Resources, Priority, Dependency and JobHeldUser; an exporter restart mid-run; slurmctld
and slurmdbd outages. Counters must equal what each job did, by outcome and cause, exactly.
"""

from __future__ import annotations

import collections
import time

import helpers
import pytest
from hpcwatch.exporters.slurm.collector import SlurmCollector

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

MEM = ("--mem=100M", "--cpus-per-task=1")


@pytest.fixture(scope="module")
def cluster(slurm_factory):
    return slurm_factory(cluster_name="schedx")


def make(cluster, state_file: str) -> SlurmCollector:
    ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, conf=cluster.env["SLURM_CONF"],
                               **{"state-file": state_file, "refresh-interval": 3600.0, "timeout": 30.0})
    c = SlurmCollector(ctx)
    assert c.available() is None
    return c


def finished(c: SlurmCollector) -> collections.Counter:
    out = collections.Counter()
    text = helpers.render(c)
    for lab in helpers.series_labels(text, "hpc_scheduler_jobs_finished_total"):
        out[(lab["outcome"], lab["cause"])] += int(helpers.values(text, "hpc_scheduler_jobs_finished_total",
                                                                  **lab)[0])
    return out


def refresh_until(c: SlurmCollector, check, what: str, timeout: float = 90.0):
    """Refresh until check() holds (the scheduler and accounting are asynchronous); the last value of check."""
    deadline = time.monotonic() + timeout
    while True:
        c.source.refresh_now()
        got = check()
        if got or time.monotonic() > deadline:
            assert got, f"gave up waiting for {what}; last refresh error: {c.source.last_error}"
            return got
        time.sleep(1.0)


def resume(cluster) -> None:
    """Bring the node back; slurmctld refuses RESUME while the killed job is still completing."""
    deadline = time.monotonic() + 60
    while True:
        r = cluster.run(["scontrol", "update", f"nodename={cluster.node_name}", "state=resume"], check=False)
        idle = cluster.run(["sinfo", "-h", "-N", "-o", "%T"], check=False).stdout.split()[0].rstrip("*")
        if idle in ("idle", "mixed", "allocated"):
            return
        assert time.monotonic() < deadline, f"node did not resume: {r.stderr.strip()} (state {idle})"
        time.sleep(1.0)


def sacct_runs(cluster, jobids) -> list[list[str]]:
    out = cluster.run(["sacct", "-n", "-P", "-X", "--duplicates", "-j", ",".join(map(str, jobids)),
                       "-o", "JobIDRaw,State,ExitCode,Start"]).stdout
    return [line.split("|") for line in out.splitlines() if line]


def test_outcomes_pending_reasons_and_restart_match_sacct(cluster, tmp_path):
    state = str(tmp_path / "slurm-state.json")
    c = make(cluster, state)
    assert c.source.refresh_now(), c.source.last_error
    expected: dict[int, tuple[str, str]] = {}
    ok = cluster.sbatch(None, *MEM, wrap="true")
    bad = cluster.sbatch(None, *MEM, wrap="exit 3")
    expected.update({ok: ("success", "none"), bad: ("failed", "user")})
    if cluster.cgroups:
        oom = cluster.sbatch(None, "--mem=40M", "--cpus-per-task=1",
                             wrap="python3 -c 'b = bytearray(300 << 20); import time; time.sleep(5)'")
        expected[oom] = ("oom", "user")
    for j in list(expected):
        cluster.wait_job(j, timeout=90)
    # One CPU runs into its 1-minute limit while the other is kept busy to hold the rest pending.
    slow = cluster.sbatch(None, *MEM, "--time=1", wrap="sleep 300")
    expected[slow] = ("timeout", "user")
    cluster.wait_job(slow, states=("RUNNING",), timeout=60)
    blocker = cluster.sbatch(None, *MEM, f"--cpus-per-task={max(1, cluster.cpus - 1)}", "--no-requeue",
                             wrap="sleep 600")
    cluster.wait_job(blocker, states=("RUNNING",), timeout=60)
    first = cluster.sbatch(None, *MEM, wrap="true")
    second = cluster.sbatch(None, *MEM, wrap="true")
    dep = cluster.sbatch(None, *MEM, f"--dependency=afterok:{blocker}", wrap="true")
    held = cluster.sbatch(None, *MEM, "--hold", wrap="true")
    cluster.run(["scontrol", "update", f"jobid={second}", "nice=1000"])

    def reasons():
        text = helpers.render(c)
        got = {lab["reason"] for lab in helpers.series_labels(text, "hpc_slurm_pending_jobs")}
        return {"Resources", "Priority", "Dependency", "JobHeldUser"} <= got and text

    text = refresh_until(c, reasons, "pending reasons Resources, Priority, Dependency, JobHeldUser")
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_scheduler_jobs", queue="debug", state="pending") == [4]
    assert helpers.values(text, "hpc_scheduler_jobs", queue="debug", state="running") == [2]
    assert helpers.values(text, "hpc_scheduler_up", cluster="schedx") == [1]
    # The exporter restarts in the middle of the run: a new process on the same state file.
    c.close()
    c = make(cluster, state)
    cancelled = [first, second, dep, held]
    cluster.run(["scancel", *map(str, cancelled)])
    expected.update({j: ("cancelled", "none") for j in cancelled})
    cluster.wait_job(slow, timeout=150)
    # The node fails under the blocker (it was submitted --no-requeue, so the run ends NODE_FAIL).
    cluster.run(["scontrol", "update", f"nodename={cluster.node_name}", "state=down", "reason=hpcwatch-test"])
    expected[blocker] = ("node_fail", "system")
    try:
        cluster.wait_job(blocker, timeout=60)
    finally:
        resume(cluster)
    truth = collections.Counter(expected.values())
    got = refresh_until(c, lambda: finished(c) == truth and finished(c), f"counters == {dict(truth)}")
    assert got == truth
    runs = sacct_runs(cluster, expected)
    states = {int(r[0]): r[1].split()[0] for r in runs}
    assert states[slow] == "TIMEOUT" and states[blocker] == "NODE_FAIL" and states[bad] == "FAILED"
    if cluster.cgroups:
        assert states[oom] == "OUT_OF_MEMORY"
    started = sum(1 for r in runs if r[3] not in ("None", "Unknown"))
    text = helpers.render(c)
    assert sum(helpers.values(text, "hpc_scheduler_queue_wait_seconds_count")) == started
    # Turnaround: the one success (`ok`) observed once, in the first bucket that holds its end - submit.
    turn = {float(lab["le"]): v for lab, v in ((dict(k[1]), v) for k, v in helpers.samples(text).items()
                                               if k[0] == "hpc_scheduler_turnaround_seconds_bucket")}
    assert helpers.values(text, "hpc_scheduler_turnaround_seconds_count", queue="debug") == [1]
    assert turn[600.0] == 1     # it ran `true` within seconds of its submission
    # Another refresh and another restart add nothing.
    c.close()
    c = make(cluster, state)
    c.source.refresh_now()
    assert finished(c) == truth
    c.close()


def test_slurmctld_outage_keeps_last_snapshot_and_recovers(cluster, tmp_path):
    c = make(cluster, str(tmp_path / "state.json"))
    assert c.source.refresh_now()
    before = helpers.render(c)
    cluster.stop_ctld()
    try:
        assert not c.source.refresh_now()
        text = helpers.render(c)
        assert helpers.collector_success(text) == {"slurm": 1}
        assert helpers.values(text, "hpc_scheduler_up") == [0]
        assert helpers.values(text, "hpcwatch_source_last_success_timestamp_seconds", source="slurm") == \
            helpers.values(before, "hpcwatch_source_last_success_timestamp_seconds", source="slurm")
        assert helpers.values(text, "hpc_scheduler_cpus", queue="debug", state="idle") == \
            helpers.values(before, "hpc_scheduler_cpus", queue="debug", state="idle")
    finally:
        cluster.start_ctld()
    refresh_until(c, lambda: helpers.values(helpers.render(c), "hpc_scheduler_up") == [1], "recovery")
    c.close()


def test_slurmdbd_outage_catches_up_finished_jobs(cluster, tmp_path):
    c = make(cluster, str(tmp_path / "state.json"))
    assert c.source.refresh_now()
    base = finished(c)
    cluster.stop_dbd()
    try:
        jobs = [cluster.sbatch(None, *MEM, wrap="true"), cluster.sbatch(None, *MEM, wrap="exit 1")]
        # Without slurmdbd, wait_job cannot ask accounting: wait until squeue no longer has them active.
        deadline = time.monotonic() + 60
        while cluster.run(["squeue", "-h", "-t", "PD,R,CG", "-j", ",".join(map(str, jobs)), "-o", "%A"],
                          check=False).stdout.strip():
            assert time.monotonic() < deadline, "jobs did not finish while slurmdbd was down"
            time.sleep(0.5)
        assert c.source.refresh_now()
        text = helpers.render(c)
        assert helpers.values(text, "hpc_slurm_accounting_up") == [0]
        assert finished(c) == base
    finally:
        cluster.start_dbd()
    want = base + collections.Counter({("success", "none"): 1, ("failed", "user"): 1})
    refresh_until(c, lambda: finished(c) == want, f"caught up to {dict(want)}", timeout=120)
    c.source.refresh_now()
    assert finished(c) == want
    c.close()
