"""The slurm collector against a real Slurm 22.05 whose names hold every delimiter Slurm accepts.

Accounts (sacctmgr), partitions (scontrol create) and QOS holding `|`, newlines, the unit separator,
quotes, `{}`, `=`, commas, spaces, UTF-8 and 255-1000 characters; jobs with such names and comments
(up to the 1000 characters sbatch takes), finished and pending, one pending in two partitions. The
finished-job counters must equal what the jobs did (checked against `sacct --json`, which escapes
every name), the live gauges must equal `squeue --json`, nothing may count as a parse error, and the
scrape must be promtool clean. The per-job summaries the collector writes, and the batched summary read
`job report` runs live, carry sacct's own names (`sacct --json` again), and `job report` prints them
without passing a terminal control character through.
"""

from __future__ import annotations

import collections
import json
import os
import subprocess
import sys
import time

import helpers
import pytest
from hpcwatch.accounting.sacct import read_details
from hpcwatch.accounting.store import SummaryStore
from hpcwatch.accounting.summary import NAME_LIMIT
from hpcwatch.exporters.labels import value as cap_label
from hpcwatch.exporters.slurm.collector import SlurmCollector

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

ACCOUNTS = ["acc|pipe", "acc\nnl", "acc\x1fus", "acc{b}", "accé", "acc space", "a" + "l" * 254]
QOS = ["q|pipe", "q\nnl", "q{b}", "qé", "q" + "k" * 999]
PARTITIONS = ["p|pipe", "p\nnl", "p{b}=x", "pé", 'p"q', "p,c", "p'sq", "p space", "p" + "k" * 999]
NAMES = ["n|\n\"{}=,é", "x" * 1000, "名前|\x1f000000000000", "", "\x1b[31mred\x1b[0m\rok"]
MEM = ("--mem=50M", "--cpus-per-task=1")


@pytest.fixture(scope="module")
def cluster(slurm_factory):
    c = slurm_factory(cluster_name="delim")
    c.add_names(ACCOUNTS, QOS, PARTITIONS)
    return c


def metrics(c: SlurmCollector, name: str, key: str) -> collections.Counter:
    text = helpers.render(c)
    out = collections.Counter()
    for lab in helpers.series_labels(text, name):
        n = helpers.values(text, name, **lab)[0]
        if n:
            out[tuple(lab[k] for k in key.split(","))] += int(n)
    return out


def test_hostile_names_never_drop_split_or_misattribute_a_job(cluster, tmp_path):
    ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, conf=cluster.env["SLURM_CONF"],
                               **{"state-file": str(tmp_path / "state.json"), "refresh-interval": 3600.0,
                                  "timeout": 60.0, "per-account": True,
                                  "summary-dataset": str(tmp_path / "jobs"), "summary-delay": 0.0})
    c = SlurmCollector(ctx)
    assert c.source.refresh_now(), c.source.last_error
    expected: dict[int, tuple[str, str, str]] = {}
    for i, part in enumerate(PARTITIONS):
        account, qos, name = ACCOUNTS[i % len(ACCOUNTS)], QOS[i % len(QOS)], NAMES[i % len(NAMES)]
        for script, outcome in (("true", ("success", "none")), ("exit 3", ("failed", "user"))):
            jobid = cluster.sbatch(None, *MEM, f"--partition={part}", f"--account={account}", f"--qos={qos}",
                                   f"--job-name={name}", f"--comment={name[:400]}|{part[:400]}", wrap=script)
            expected[jobid] = (cap_label(part), *outcome)
    pending = []
    for i, part in enumerate(PARTITIONS[:4] + ["p|pipe,debug"]):
        pending.append(cluster.sbatch(None, *MEM, "--hold", f"--partition={part}",
                                      f"--account={ACCOUNTS[i]}", f"--job-name={NAMES[i % len(NAMES)]}",
                                      wrap="true"))
    for jobid in expected:
        cluster.wait_job(jobid, timeout=120)

    truth = collections.Counter(expected.values())

    deadline = time.monotonic() + 120
    while True:
        c.source.refresh_now()
        got = metrics(c, "hpc_scheduler_jobs_finished_total", "queue,outcome,cause")
        if got == truth:
            break
        assert time.monotonic() < deadline, f"counters {dict(got)} != {dict(truth)}; {c.source.last_error}"
        time.sleep(1.0)
    # sacct's own JSON (every name escaped) says the same of every job.
    sacct = json.loads(cluster.run(["sacct", "--json", "-X", "-a", "-S", "now-1hour", "-E", "now+1hour",
                                    "-j", ",".join(map(str, expected))]).stdout)
    seen = {j["job_id"]: (cap_label(j["partition"]), j["state"]["current"]) for j in sacct["jobs"]}
    assert {jobid: (q, "COMPLETED" if o == "success" else "FAILED") for jobid, (q, o, _) in expected.items()} == seen
    check_summaries(c, cluster, sacct["jobs"], str(tmp_path / "jobs"))

    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    errors = {lab["source"]: helpers.values(text, "hpcwatch_parse_errors_total", **lab)[0]
              for lab in helpers.series_labels(text, "hpcwatch_parse_errors_total")}
    assert not any(v for s, v in errors.items() if s.startswith("slurm")), errors
    # Live gauges equal squeue's own JSON, by partition (the first one listed) and by account.
    squeue = json.loads(cluster.run(["squeue", "--json", "--all"]).stdout)["jobs"]
    live = [j for j in squeue if j["job_state"] == "PENDING"]
    assert len(live) == len(pending)
    want_q = collections.Counter((cap_label(first(j["partition"])), "pending") for j in live)
    assert metrics(c, "hpc_scheduler_jobs", "queue,state") == want_q
    want_a = collections.Counter((cap_label(j["account"]), "pending") for j in live)
    assert metrics(c, "hpc_slurm_account_jobs", "account,state") == want_a
    caps = metrics(c, "hpc_scheduler_cpus", "queue")
    assert {q for (q,) in caps} >= {cap_label(p) for p in PARTITIONS}
    assert len({q for (q,) in caps}) == len({cap_label(p) for p in PARTITIONS + ["debug", "gpu"]})
    c.close()


def first(partitions: str) -> str:
    """The partition a multi-partition job counts under ('p|pipe,debug' -> 'p|pipe'); names hold no comma here
    except 'p,c', which no pending job of this test uses together with another partition."""
    return partitions if partitions in PARTITIONS else partitions.split(",", 1)[0]


def check_summaries(c: SlurmCollector, cluster, truth: list[dict], dataset: str) -> None:
    """Summaries written by the collector, and the batched read `job report` runs live, against sacct --json."""
    store = SummaryStore(dataset)
    want = {str(j["job_id"]): j for j in truth}
    deadline = time.monotonic() + 120
    while (written := {r[0] for r in store.sql("SELECT jobid FROM summaries")}) != set(want):
        assert time.monotonic() < deadline, f"summaries of {set(want) - written} not written: {c.source.last_error}"
        c.source.refresh_now()
    rows = store.sql("SELECT jobid, name, account, qos, user, partition FROM summaries")
    # The summary keeps NAME_LIMIT characters of a name; its partition is the queue the job counted under.
    assert {r[0]: r[1:] for r in rows} == {i: (j["name"][:NAME_LIMIT], j["account"], j["qos"], j["user"],
                                               cap_label(j["partition"])) for i, j in want.items()}
    details, skipped = read_details(cluster.bin("sacct"), list(want), env=cluster.env)
    assert skipped == 0
    assert {i: (d.name, d.partition, d.qos, d.account, d.user, d.cluster, d.state, d.nodelist)
            for i, d in details.items()} == \
        {i: (j["name"], j["partition"], j["qos"], j["account"], j["user"], j["cluster"], j["state"]["current"],
             j["nodes"]) for i, j in want.items()}
    escaped = next(i for i, j in want.items() if j["name"].startswith("\x1b"))
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "hpcwatch"), "job", "report", escaped,
                          "--dataset", dataset], capture_output=True, timeout=120, check=True).stdout.decode()
    assert out.startswith(f"Job {escaped} (\\x1b[31mred\\x1b[0m\\rok) on cluster delim: ")
    assert not any(ch in out for ch in "\x1b\r\x1f")
