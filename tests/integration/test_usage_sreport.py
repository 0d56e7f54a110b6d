"""`hpcwatch usage report` against Slurm's own books, on the harness's real Slurm.

Jobs of two accounts and two users (root, and `nobody` through `sbatch --uid`) run with different CPU
counts; the cluster agent (the installed `hpcwatch serve`) writes their summaries; then
- core-hours per account and user equal sacct's AllocCPUS x ElapsedRaw summed over the same jobs, exactly;
- and agree with `sreport cluster AccountUtilizationByUser` within 0.5%.

sreport reads slurmdbd's hourly rollup tables, and slurmdbd rolls up only hours that have closed (at its
start-up and at each hour's turn: as_mysql_roll_usage truncates its end to the hour). A test cannot wait
for the hour, so slurmdbd is restarted with its clock two hours ahead (libfaketime, Debian package
`faketime`): its start-up rollup then covers the hour the jobs ran in, with the real job records the real
slurmctld sent. sreport runs with the same clock (its `end` is clamped to its own now). slurmdbd is
restarted with the true clock afterwards, so the session's other tests see the cluster as it was.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from helpers import IN_CI

from hpcwatch.harness.util import Process, free_port, http_get, wait_until

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")
FAKETIME = "/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1"
ACCOUNTS = ("ua_chem", "ua_phys")
# (account, extra sbatch arguments, CPUs, seconds)
JOBS = (("ua_chem", (), 1, 7), ("ua_chem", (), 2, 5), ("ua_phys", (), 2, 6),
        ("ua_phys", ("--uid=nobody", "--chdir=/tmp", "--output=/dev/null"), 1, 8))


def _let_others_in(path: str) -> list[tuple[str, int]]:
    """Let other users traverse the folders above `path` (pytest makes its temporary root 0700); returns
    (folder, mode) to restore."""
    changed = []
    p = os.path.abspath(path)
    while p not in ("/", "/tmp"):
        mode = os.stat(p).st_mode & 0o7777
        if mode & 0o011 != 0o011:
            changed.append((p, mode))
            os.chmod(p, mode | 0o055)   # group too: slurmstepd may still hold group root when it execs the job
        p = os.path.dirname(p)
    return changed


def _hour(t: float) -> float:
    return t - t % 3600


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))


@pytest.fixture(scope="module")
def books(slurm, tmp_path_factory):
    if not os.path.exists(FAKETIME):
        msg = f"{FAKETIME} not found: install the Debian package faketime (`make deps`)"
        pytest.fail(msg) if IN_CI else pytest.skip(msg)
    work = str(tmp_path_factory.mktemp("usage-sreport"))
    dataset = os.path.join(work, "jobs")
    c = slurm.cluster_name
    for a in ACCOUNTS:
        slurm.run(["sacctmgr", "-i", "add", "account", a, f"cluster={c}"], check=False)
    slurm.run(["sacctmgr", "-i", "add", "user", "root", f"account={','.join(ACCOUNTS)}", f"cluster={c}"], check=False)
    slurm.run(["sacctmgr", "-i", "add", "user", "nobody", f"account={ACCOUNTS[1]}", f"cluster={c}"], check=False)
    opened = _let_others_in(slurm.workdir)   # nobody's job reads its script from the slurmd spool there
    port = free_port()
    agent = Process("cluster-agent", [
        HPCWATCH, "serve", "--agent", "cluster", "--collector.disable-defaults", "--collector.slurm",
        f"--web.listen-address=127.0.0.1:{port}", f"--collector.slurm.conf={slurm.conf_path}",
        "--collector.slurm.refresh-interval=2", f"--collector.slurm.state-file={work}/state.json",
        f"--collector.slurm.summary-dataset={dataset}", "--collector.slurm.summary-delay=0"],
        os.path.join(work, "agent.log"), env=dict(os.environ, SLURM_CONF=slurm.conf_path)).start()
    ids: list[int] = []
    try:
        # Counting starts at the agent's first refresh: wait for it before submitting.
        up = re.compile(rb"^hpc_scheduler_up\{[^}]*\} 1(\.0)?$", re.M)
        wait_until(lambda: up.search(http_get(f"http://127.0.0.1:{port}/metrics")[1]), 120, "cluster agent up",
                   alive=agent.dead)
        for account, extra, cpus, seconds in JOBS:
            ids.append(slurm.sbatch(None, f"--account={account}", f"--cpus-per-task={cpus}", "--mem=50M", *extra,
                                    wrap=f"sleep {seconds}"))
        for j in ids:
            state = slurm.wait_job(j, timeout=600)
            assert state == "COMPLETED", slurm.run(["sacct", "-X", "-P", "-j", str(j), "-o",
                                                    "JobID,User,Account,State,ExitCode,Reason"]).stdout
        sacct = slurm.run(["sacct", "-X", "-P", "-n", "-a", "-j", ",".join(map(str, ids)), "-o",
                           "JobID,Account,User,AllocCPUS,ElapsedRaw,Start,End"]).stdout

        def summarised() -> bool:
            from hpcwatch.accounting.store import SummaryStore
            return os.path.isdir(dataset) and SummaryStore(dataset).sql(
                "SELECT count(*) FROM summaries WHERE jobid IN (" + ",".join(f"'{j}'" for j in ids) + ")"
            )[0][0] == len(ids)

        wait_until(summarised, 240, "every job summarised", interval=1, alive=agent.dead)
        yield {"slurm": slurm, "dataset": dataset, "ids": ids, "sacct": sacct}
    finally:
        agent.stop()
        for path, mode in opened:
            os.chmod(path, mode)


def _sacct_seconds(text: str) -> tuple[dict[tuple[str, str], int], float, float]:
    """{(account, user): CPU-seconds} from sacct, and the first start and last end."""
    from hpcwatch.exporters.slurm.parse import parse_time

    out: dict[tuple[str, str], int] = {}
    starts, ends = [], []
    for line in text.splitlines():
        _, account, user, cpus, elapsed, start, end = line.split("|")
        out[(account, user)] = out.get((account, user), 0) + int(cpus) * int(elapsed)
        starts.append(parse_time(start))
        ends.append(parse_time(end))
    return out, min(starts), max(ends)


def _report(dataset: str, start: float, end: float, cluster: str) -> dict[tuple[str, str], float]:
    got = subprocess.run([HPCWATCH, "usage", "report", "--dataset", dataset, "--from", _iso(start), "--to",
                          _iso(end), "--by", "account,user", "--cluster", cluster, "--format", "json"],
                         capture_output=True, text=True, timeout=120)
    assert got.returncode == 0, got.stderr
    return {(r["key"]["account"], r["key"]["user"]): r["core_hours"] for r in json.loads(got.stdout)["rows"]
            if r["key"]["account"] in ACCOUNTS}


def test_core_hours_equal_sacct_elapsed_times_cpus(books):
    want, first, last = _sacct_seconds(books["sacct"])
    got = _report(books["dataset"], _hour(first), _hour(last) + 3600, books["slurm"].cluster_name)
    assert set(got) == set(want) == {("ua_chem", "root"), ("ua_phys", "root"), ("ua_phys", "nobody")}
    assert {k: round(v * 3600, 6) for k, v in got.items()} == {k: float(v) for k, v in want.items()}


def _sreport(slurm, start: float, end: float) -> dict[tuple[str, str], int]:
    out = slurm.run(["sreport", "-P", "-n", "-t", "Seconds", "cluster", "AccountUtilizationByUser",
                     f"cluster={slurm.cluster_name}", f"start={_iso(start)}", f"end={_iso(end)}"], check=False)
    assert out.returncode == 0, out.stderr
    rows = {}
    for line in out.stdout.splitlines():   # cluster|account|login|proper name|used|energy
        parts = line.split("|")
        if len(parts) >= 5 and parts[1] in ACCOUNTS and parts[2]:
            rows[(parts[1], parts[2])] = int(parts[4])
    return rows


def test_core_hours_agree_with_sreport_within_half_a_percent(books):
    slurm = books["slurm"]
    want_sacct, first, last = _sacct_seconds(books["sacct"])
    start, end = _hour(first), _hour(last) + 3600
    got = _report(books["dataset"], start, end, slurm.cluster_name)
    true_env = slurm.env
    ahead = dict(true_env, LD_PRELOAD=FAKETIME, FAKETIME="+2h", FAKETIME_DONT_RESET="1")
    try:
        slurm.stop_dbd()
        slurm.env = ahead
        slurm.start_dbd()        # its start-up rollup closes the hours up to two hours from now
        rows: dict = {}

        def rolled_up() -> bool:
            rows.update(_sreport(slurm, start, end))
            return set(rows) >= set(want_sacct)

        wait_until(rolled_up, 120, "slurmdbd's rollup of the jobs' hour", interval=1)
    finally:
        slurm.stop_dbd()
        slurm.env = true_env
        slurm.start_dbd()
    print(f"\nsreport CPU-seconds {rows}; usage report {({k: round(v * 3600, 3) for k, v in got.items()})}")
    for key, seconds in rows.items():
        if key in want_sacct:
            assert abs(got[key] * 3600 - seconds) <= 0.005 * seconds, (key, got[key] * 3600, seconds)
