"""The summary writer inside the slurm collector, through stand-in Slurm commands that print what real
Slurm 22.05 printed: one summary per finished job, the outbox saved with the counts, and each job in
the dataset exactly once across a failed append, a crash before the ack, and restarts."""

from __future__ import annotations

import json
import os
import shlex
import shutil
import stat

import helpers
import pytest
from hpcwatch.accounting.store import SummaryStore
from hpcwatch.exporters.slurm.collector import SlurmCollector
from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR

from hpcwatch.docexamples import print_fixture_sh

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
SLURM = os.path.join(ROOT, "tests", "fixtures", "slurm")
ACCT = os.path.join(ROOT, "tests", "fixtures", "accounting")
PRICES = os.path.join(ROOT, "examples", "accounting", "prices.yaml")


@pytest.fixture
def bindir(tmp_path):
    """squeue/sinfo/sdiag/scontrol print the slurm fixtures; sacct answers the counter's window and the
    summary writer's `--jobs` call each with what real sacct printed for them, and logs its calls."""
    d = tmp_path / "bin"
    d.mkdir()
    outputs = {"squeue": f"{SLURM}/squeue-22.05.txt", "sinfo": f"{SLURM}/sinfo-22.05.txt",
               "sdiag": f"{SLURM}/sdiag-22.05.txt", "scontrol": f"{SLURM}/scontrol-show-config-22.05.txt"}
    for cmd, path in outputs.items():   # the slurm fixtures carry FIXTURE_SEPARATOR: swap in the call's own
        (d / cmd).write_text("#!/bin/sh\n" + print_fixture_sh(f"'{path}'", FIXTURE_SEPARATOR))
    # Both sacct reads ask for their own separator (--delimiter): the counter window's `|` and the summary
    # capture's FIXTURE_SEPARATOR become it.
    (d / "sacct").write_text(
        "#!/bin/sh\necho \"$@\" >> \"$0.calls\"\ncase \" $* \" in\n"
        f"  *' --jobs '*) {print_fixture_sh(shlex.quote(ACCT + '/sacct-summary-22.05.txt'), FIXTURE_SEPARATOR)} ;;\n"
        f"  *) {print_fixture_sh(shlex.quote(ACCT + '/sacct-counter-22.05.txt'), '|')} ;;\nesac\n")
    for f in d.iterdir():
        f.chmod(f.stat().st_mode | stat.S_IEXEC)
    return d


def agent(bindir, tmp_path, dataset, **opts) -> SlurmCollector:
    state = str(tmp_path / "state.json")
    if not os.path.exists(state):
        helpers.counting_since(state)  # an agent that was counting when the fixture's jobs ended
    options = {"bin-dir": str(bindir), "state-file": state,
               "conf": str(tmp_path / "absent.conf"), "summary-dataset": str(dataset), "summary-delay": 0.0,
               "summary-prices": PRICES, **opts}
    c = SlurmCollector(helpers.make_context(agent="cluster", cls=SlurmCollector, **options))
    assert c.available() is None
    return c


def summary_calls(bindir) -> list[str]:
    path = bindir / "sacct.calls"
    return [c for c in path.read_text().splitlines() if "--jobs" in c] if path.exists() else []


def outbox(tmp_path) -> list[str]:
    return [j["jobid"] for j in json.loads((tmp_path / "state.json").read_text()).get("outbox", [])]


def test_each_finished_job_is_summarised_once(bindir, tmp_path):
    ds = tmp_path / "jobs"
    c = agent(bindir, tmp_path, ds)
    assert c.source.refresh_now(), c.source.last_error
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpcwatch_job_records_written_total", collector="slurm") == [8]
    assert helpers.values(text, "hpcwatch_job_records_pending", collector="slurm") == [0]
    assert len(summary_calls(bindir)) == 1                      # one batched sacct call for the refresh
    store = SummaryStore(str(ds))
    assert sorted(r[0] for r in store.sql("SELECT jobid FROM summaries")) == \
        sorted(["1", "2", "3", "4", "5_1", "5_2", "6", "8_[1-3]"])
    burn = store.find("1")
    assert (burn.cluster, burn.name, burn.cpus_alloc, burn.currency) == ("capt", "burn.sh", 2, "EUR")
    assert outbox(tmp_path) == []
    assert c.source.refresh_now()                                # the next window repeats the jobs: not counted
    assert len(summary_calls(bindir)) == 1 and store.sql("SELECT count(*) FROM summaries")[0][0] == 8
    c.close()


def test_a_failed_append_keeps_the_jobs_in_the_saved_outbox_until_it_works(bindir, tmp_path):
    ds = tmp_path / "jobs"
    ds.write_text("not a directory")                             # the dataset cannot be written
    c = agent(bindir, tmp_path, ds)
    assert c.source.refresh_now()
    text = helpers.render(c)
    assert helpers.values(text, "hpcwatch_job_record_write_failures_total") == [1]
    assert helpers.values(text, "hpcwatch_job_records_pending") == [8]
    assert len(outbox(tmp_path)) == 8                            # saved with the counts
    c.close()
    ds.unlink()
    restarted = agent(bindir, tmp_path, ds)                      # a restart: the counts are not repeated ...
    assert restarted.source.refresh_now()
    text = helpers.render(restarted)
    # 8 runs, counted once: the never-started array record 8_[1-3] stands for its 3 tasks.
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 10
    assert helpers.values(text, "hpcwatch_job_records_written_total") == [8]      # ... and the outbox is written
    assert outbox(tmp_path) == []
    restarted.close()


def test_a_crash_after_the_append_but_before_the_ack_writes_nothing_twice(bindir, tmp_path):
    ds = tmp_path / "jobs"
    c = agent(bindir, tmp_path, ds)
    assert c.source.refresh_now()
    c.close()
    # The state as it was just before the ack: every job still in the outbox (taken from a run whose
    # append failed), while the dataset already holds them.
    blocked = tmp_path / "blocked"
    blocked.write_text("x")
    state2 = tmp_path / "crash"
    state2.mkdir()
    shutil.copytree(bindir, state2 / "bin")
    c2 = agent(state2 / "bin", state2, blocked)
    assert c2.source.refresh_now()
    c2.close()
    assert len(outbox(state2)) == 8
    restarted = agent(state2 / "bin", state2, ds)
    assert restarted.source.refresh_now()
    text = helpers.render(restarted)
    assert helpers.values(text, "hpcwatch_job_records_written_total") == [0]
    assert helpers.values(text, "hpcwatch_job_records_duplicate_total") == [8]
    assert SummaryStore(str(ds)).sql("SELECT count(*) FROM summaries")[0][0] == 8
    assert outbox(state2) == []
    restarted.close()


def test_jobs_wait_for_the_delay(bindir, tmp_path):
    c = agent(bindir, tmp_path, tmp_path / "jobs", **{"summary-delay": 1e9})
    assert c.source.refresh_now()
    assert helpers.values(helpers.render(c), "hpcwatch_job_records_pending") == [8]
    assert summary_calls(bindir) == [] and len(outbox(tmp_path)) == 8
    c.close()


def test_a_bad_price_table_stops_start_up(bindir, tmp_path):
    bad = tmp_path / "prices.yaml"
    bad.write_text("currency: EUR\ndefault:\n  cpu_hour: lots\n")
    with pytest.raises(ValueError, match=r"summary-prices: .*prices.yaml:3: default.cpu_hour"):
        agent(bindir, tmp_path, tmp_path / "jobs", **{"summary-prices": str(bad)})
