"""The flux collector against a real Flux: a 4-broker `flux start --test-size=4` instance with queues
batch = node[0-1], debug = node[1-2] and a catch-all `all` that the operator's flux-resource.toml hides
(`hidden-queues`), and every outcome happening for real: success, failure, a SIGKILLed task (how an
OOM kill arrives), timeout, cancel, a failed dependency, non-fatal exceptions followed by a normal
exit, an unsatisfiable request, an operator's preempt exception, a held job, a drained and a draining
node, a few hundred quick jobs across an exporter restart, and a broker killed under a running job.

Flux is not packaged for Debian 12, so this is the one real-daemon test that skips even in CI when
`flux` is missing; the message says how to build it. Capacity must partition every node, core and GPU;
finished counters must equal what each job did, exactly once; queue wait must equal Flux's own
(t_run - t_sched) except the time a job was held.
"""

from __future__ import annotations

import collections
import json
import os
import signal

import helpers
import pytest
from hpcwatch.exporters.flux.collector import FluxCollector

from hpcwatch.harness.flux import FluxInstance, FluxNotInstalled, find_flux

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

CONFIG = """
[resource]
noverify = true
[[resource.config]]
hosts = "node[0-3]"
cores = "0-1"
gpus = "0"
[[resource.config]]
hosts = "node[0-1]"
properties = ["batch"]
[[resource.config]]
hosts = "node[1-2]"
properties = ["debug"]
[queues.batch]
requires = ["batch"]
[queues.debug]
requires = ["debug"]
[queues.all]
[policy.jobspec.defaults.system]
queue = "batch"
"""
HIDDEN = '[list]\nhidden-queues = ["all"]\n'
MANY = 300


@pytest.fixture(scope="module")
def flux(tmp_path_factory):
    try:
        find_flux()
    except FluxNotInstalled as exc:
        pytest.skip(str(exc))      # the documented exception: skipped even in CI
    inst = FluxInstance(str(tmp_path_factory.mktemp("flux")), CONFIG, resource_client_toml=HIDDEN)
    with inst:
        yield inst


def make(flux: FluxInstance, state_file: str) -> FluxCollector:
    ctx = helpers.make_context(agent="cluster", cls=FluxCollector, command=flux.flux, cluster="fx",
                               **{"state-file": state_file, "refresh-interval": 3600.0, "timeout": 60.0})
    # The operator's environment: FLUX_URI and the flux-resource.toml that hides queue `all`.
    c = FluxCollector(ctx, env={"FLUX_URI": flux.uri, "XDG_CONFIG_HOME": flux.xdg_dir})
    assert c.available() is None
    assert c.source.refresh_now(), c.source.last_error
    return c


def counters(text: str) -> collections.Counter:
    out = collections.Counter()
    for lab in helpers.series_labels(text, "hpc_scheduler_jobs_finished_total"):
        n = helpers.values(text, "hpc_scheduler_jobs_finished_total", **lab)[0]
        if n:
            out[(lab["queue"], lab["outcome"], lab["cause"])] += int(n)
    return out


def by_queue(text: str, name: str) -> dict[str, dict[str, float]]:
    out: dict[str, dict[str, float]] = {}
    for lab in helpers.series_labels(text, name):
        out.setdefault(lab["queue"], {})[lab["state"]] = helpers.values(text, name, **lab)[0]
    return out


def test_every_outcome_capacity_and_queue_wait_against_flux(flux, tmp_path):
    state = str(tmp_path / "flux-state.json")
    c = make(flux, state)
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    nodes = by_queue(text, "hpc_scheduler_nodes")
    assert set(nodes) == {"batch", "debug", "all"}, "a hidden queue must not become a phantom 'default'"
    assert {q: sum(s.values()) for q, s in nodes.items()} == {"batch": 2, "debug": 2, "all": 4}
    assert nodes["all"]["idle"] == 4

    expected: dict[str, tuple[str, str, str]] = {}

    def submit(outcome: tuple[str, str, str], *args: str) -> str:
        jobid = flux.submit(*args)
        expected[jobid] = outcome
        return jobid

    submit(("batch", "success", "none"), "-q", "batch", "true")
    submit(("batch", "failed", "user"), "-q", "batch", "sh", "-c", "exit 3")
    submit(("debug", "failed", "user"), "-q", "debug", "sh", "-c", "kill -9 $$")   # OOM kills look like this
    submit(("debug", "timeout", "user"), "-q", "debug", "-t", "2s", "sleep", "60")
    parent = submit(("batch", "failed", "user"), "-q", "batch", "sh", "-c", "sleep 2; exit 1")
    submit(("batch", "cancelled", "none"), "-q", "batch", f"--dependency=afterok:{parent}", "true")
    unsat = submit(("batch", "failed", "user"), "-q", "batch", "-N", "3", "true")
    for outcome, script in ((("batch", "success", "none"), "sleep 3"),
                            (("batch", "failed", "user"), "sleep 3; exit 2")):
        jobid = submit(outcome, "-q", "batch", "sh", "-c", script)
        flux.wait_state(jobid, ("RUN",))
        flux.run(["job", "raise", "--severity=1", "--type=test", "-m", "non-fatal", jobid])
    held = submit(("debug", "success", "none"), "-q", "debug", "--urgency=hold", "true")
    cancel = submit(("batch", "cancelled", "none"), "-q", "batch", "sleep", "600")
    flux.wait_state(cancel, ("RUN",))
    flux.run(["cancel", cancel])
    preempt = submit(("debug", "preempted", "system"), "-q", "debug", "sleep", "600")
    flux.wait_state(preempt, ("RUN",))
    flux.run(["job", "raise", "--type=preempt", "-m", "operator", preempt])
    lost = submit(("all", "node_fail", "system"), "-q", "all", "--requires=host:node3", "-N1", "-n2", "sleep", "600")
    draining = flux.submit("-q", "debug", "--requires=host:node2", "-n1", "sleep", "600")
    flux.wait_state(lost, ("RUN",))
    flux.wait_state(draining, ("RUN",))
    for jobid in expected:
        if jobid not in (held, lost):
            flux.wait_state(jobid)
    assert flux.job(unsat)["exception"]["type"] == "alloc"
    flux.run(["resource", "drain", "0", "hpcwatch test"])
    flux.run(["resource", "drain", "2", "hpcwatch test"])     # a job still runs there: draining
    c.source.refresh_now()
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert helpers.values(text, "hpc_scheduler_jobs", queue="debug", state="pending") == [1]     # held
    assert helpers.values(text, "hpc_scheduler_pending_wait_seconds_count", queue="debug") == [0]
    nodes, cpus = by_queue(text, "hpc_scheduler_nodes"), by_queue(text, "hpc_scheduler_cpus")
    assert nodes["all"]["drain"] == 2 and nodes["all"]["allocated"] == 1 and nodes["all"]["idle"] == 1
    assert cpus["debug"] == {"allocated": 1, "idle": 2, "other": 1}    # node2's free core is not usable
    for name, size in (("hpc_scheduler_nodes", 4), ("hpc_scheduler_cpus", 8), ("hpc_scheduler_gpus", 4)):
        assert sum(by_queue(text, name)["all"].values()) == size, name

    # The exporter restarts; a few hundred quick jobs run on the undrained node; the hold is released.
    c.close()
    c = make(flux, state)
    flux.run(["resource", "undrain", "0"])
    many = flux.run(["submit", f"--cc=1-{MANY}", "-q", "batch", "-n1", "true"]).stdout.split()
    flux.run(["job", "urgency", held, "default"])
    for jobid in flux.run(["job", "id", "--to=dec", *many]).stdout.split():
        expected[jobid] = ("batch", "success", "none")
    flux.wait_state(held)
    flux.wait_until(lambda: not flux.run(["jobs", "-n", "-q", "batch", "-o", "{id}"]).stdout.strip(),
                    "the quick jobs to finish", timeout=300)
    c.source.refresh_now()

    # A broker dies under a running job.
    os.kill(flux.broker_pid(3), signal.SIGKILL)
    flux.wait_state(lost, timeout=180)
    flux.wait_until(lambda: flux.rank_state(3).split(" ")[0] in ("lost", "offline"), "rank 3 lost")
    c.source.refresh_now()
    c.source.refresh_now()
    text = helpers.render(c)
    helpers.assert_promtool_clean(text)
    assert flux.job(lost)["exception"]["type"] == "exec"
    truth = collections.Counter(expected.values())
    assert counters(text) == truth
    assert helpers.values(text, "hpc_scheduler_jobs", queue="debug", state="pending") == [0]   # 0, not gone
    nodes = by_queue(text, "hpc_scheduler_nodes")
    assert nodes["all"]["down"] == 1 and nodes["all"]["drain"] == 1 and sum(nodes["all"].values()) == 4

    # Queue wait: Flux's own t_run - t_sched for every run that started, less the time `held` was held.
    jobs = json.loads(flux.run(["jobs", "-A", "-a", "--json", "--count=0"]).stdout)["jobs"]
    started = [j for j in jobs if j.get("t_run") and str(j["id"]) in expected | {draining: 1}]
    flux_sum = sum(j["t_run"] - j["t_sched"] for j in started)
    events = [json.loads(line) for line in flux.run(["job", "eventlog", "--format=json", held]).stdout.splitlines()]
    release = [e["timestamp"] for e in events if e["name"] == "urgency" and e["context"]["urgency"] > 0][-1]
    h = next(j for j in jobs if str(j["id"]) == held)
    ours = sum(helpers.values(text, "hpc_scheduler_queue_wait_seconds_sum"))
    assert sum(helpers.values(text, "hpc_scheduler_queue_wait_seconds_count")) == len(started)
    assert ours == pytest.approx(flux_sum - (release - h["t_sched"]), abs=0.01)
    print(f"\nflux: {sum(truth.values())} finished jobs counted exactly once over 2 restarts; "
          f"{len(started)} runs' queue wait {ours:.3f} s = Flux's t_run - t_sched {flux_sum:.3f} s "
          f"- {release - h['t_sched']:.3f} s held")

    # Another restart and refresh add nothing.
    c.close()
    c = make(flux, state)
    c.source.refresh_now()
    assert counters(helpers.render(c)) == truth
    c.close()
