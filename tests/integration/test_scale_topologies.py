"""The deploy/scale topologies, two shards each, on a simulated fleet: every series arrives once, and the
shipped rules on vmalert over VictoriaMetrics agree with one Prometheus running the shipped config.

The reference is deploy/prometheus/prometheus.yml with deploy/prometheus/rules; the topologies are
deploy/scale/prometheus-sharded/shard-*-of-2.yml and deploy/scale/vmagent/scrape.yml as generated.
The only edits: scrape and evaluation intervals of 2 s (not 30 s, so a test sees rates within a
minute), file_sd paths pointing at the simulator's target files, and remote_write at the test's
VictoriaMetrics. The simulator's counters grow linearly and its gauges hold still, so every rule's
value is the same whichever scraper took the samples when the engines agree (docs/scaling.md).
"""

from __future__ import annotations

import glob
import math
import os

import pytest
import yaml
from conftest import start, unavailable

from hpcwatch.harness.fleet import Fleet
from hpcwatch.harness.prometheus import Prometheus, VictoriaMetrics, VMAgent, VMAlert
from hpcwatch.harness.util import DaemonError, wait_until

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")
RULES = sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "rules", "*.yml")))
NODES = 24
INTERVAL = "2s"


def _config(path: str, targets_dir: str, vm_url: str | None = None) -> dict:
    """A shipped config with test intervals, the fleet's target files, and the test's VictoriaMetrics."""
    with open(os.path.join(DEPLOY, path)) as fh:
        cfg = yaml.safe_load(fh)
    cfg["global"]["scrape_interval"] = INTERVAL
    cfg["global"]["scrape_timeout"] = INTERVAL
    if "evaluation_interval" in cfg["global"]:
        cfg["global"]["evaluation_interval"] = INTERVAL
    for job in cfg["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [os.path.join(targets_dir, os.path.basename(f)) for f in sd["files"]]
    for rw in cfg.get("remote_write", []):
        rw["url"] = f"{vm_url}/api/v1/write"
    cfg.pop("rule_files", None)  # the harness adds the shipped rule files by absolute path
    return cfg


class Stack:
    """Daemons started for one module, stopped in reverse order."""

    def __init__(self) -> None:
        self.daemons: list = []

    def add(self, daemon):
        self.daemons.append(daemon)
        start(daemon)
        return daemon

    def stop(self) -> None:
        for d in reversed(self.daemons):
            d.stop()


@pytest.fixture(scope="module")
def fleet_and_reference(tmp_path_factory, alertmanager):
    """The simulated fleet (NODES node agents, one cluster agent) and one Prometheus on the shipped config."""
    work = str(tmp_path_factory.mktemp("scale"))
    stack = Stack()
    try:
        targets = os.path.join(work, "targets")
        fleet = Fleet(work, NODES, targets, job_seconds=3600.0)
        try:
            stack.add(fleet)
        except DaemonError as exc:
            unavailable(f"the fleet simulator did not start (127.10.0.0/16 loopback addresses needed): {exc}")
        ref = stack.add(Prometheus(work, _config("prometheus/prometheus.yml", targets), RULES))
        yield work, fleet, ref
    finally:
        stack.stop()


TOPOLOGIES = ["prometheus-hashmod", "vmagent-cluster"]


def _start_topology(stack: Stack, name: str, work: str, targets: str, notifier: str) -> tuple:
    """(scrapers, VictoriaMetrics, vmalert) of one topology with two shards."""
    # Not the harness's 0 s: a scrape's samples may reach VictoriaMetrics in several remote-write
    # requests, and a rule evaluated between them would read half a scrape (the default is 30 s).
    vm = stack.add(VictoriaMetrics(work, latency_offset="10s"))
    if name == "prometheus-hashmod":
        scrapers = [stack.add(Prometheus(work, _config(f"scale/prometheus-sharded/shard-{i}-of-2.yml", targets,
                                                       vm.url)))
                    for i in range(2)]
    else:
        scrapers = [stack.add(VMAgent(work, _config("scale/vmagent/scrape.yml", targets), f"{vm.url}/api/v1/write",
                                      ["-promscrape.cluster.membersCount=2", f"-promscrape.cluster.memberNum={i}",
                                       "-promscrape.fileSDCheckInterval=1s"]))
                    for i in range(2)]
    vmalert = stack.add(VMAlert(work, RULES, vm.url, notifier, evaluation_interval=INTERVAL,
                                extra_args=[f"-remoteWrite.url={vm.url}", f"-remoteRead.url={vm.url}",
                                            "-remoteWrite.flushInterval=1s"]))
    return scrapers, vm, vmalert


@pytest.fixture(scope="module")
def topologies(fleet_and_reference, alertmanager):
    """Both topologies at once (their warm-up overlaps): {name: (scrapers, VictoriaMetrics, vmalert)}."""
    work, _, _ = fleet_and_reference
    stack = Stack()
    try:
        yield {name: _start_topology(stack, name, work, os.path.join(work, "targets"), alertmanager.url)
               for name in TOPOLOGIES}
    finally:
        stack.stop()


@pytest.fixture(params=TOPOLOGIES)
def topology(request, topologies):
    return (request.param, *topologies[request.param])


def _scraped(scraper) -> set[str]:
    return {t["labels"]["node"] for t in scraper.targets() if t.get("health") == "up"}


def test_every_target_scraped_by_exactly_one_shard(topology, fleet_and_reference):
    _, fleet, _ = fleet_and_reference
    name, scrapers, _, _ = topology
    every = {a.rsplit(":", 1)[0] for a in fleet.targets()} | {"127.11.0.1"}  # + the cluster agent
    wait_until(lambda: set().union(*(_scraped(s) for s in scrapers)) == every, 120, f"{name}: all targets up")
    shares = [_scraped(s) for s in scrapers]
    assert not shares[0] & shares[1], f"{name}: scraped by both shards: {sorted(shares[0] & shares[1])}"
    assert all(shares), f"{name}: a shard scrapes nothing: {[len(s) for s in shares]}"


def test_every_series_arrives_exactly_once(topology, fleet_and_reference):
    """Per node, VictoriaMetrics holds the node agent's series set once: the template's node series, one `up`."""
    _, fleet, _ = fleet_and_reference
    name, _, vm, _ = topology
    per_node = fleet.stats()["node_series"]
    query = 'count by (node) ({job="hpcwatch-node", __name__!~"hpc_job_.*|up|scrape_.*"})'

    def complete() -> bool:
        return len(vm.query(query)) == NODES and all(int(r["value"][1]) == per_node for r in vm.query(query))

    wait_until(complete, 120, f"{name}: {per_node} series for each of {NODES} nodes in VictoriaMetrics")
    ups = vm.query('count by (node) (up{job="hpcwatch-node"})')
    assert sorted(int(r["value"][1]) for r in ups) == [1] * NODES
    jobs = vm.query('count by (node) (hpc_job_info{job="hpcwatch-node"})')
    assert len(jobs) == NODES and all(int(r["value"][1]) >= 4 for r in jobs), jobs


# Recorded series whose value depends on the engine, compared for presence only. PromQL's increase()
# extrapolates to the window's edges; MetricsQL's counts from the last sample before the window and
# never extrapolates. A ratio of increases of one target's counters is the same on both; these are not.
ENGINE_DEPENDENT = {
    "slo:sli_events:count": "absolute numbers of events: increase() itself",
    "hpc-queue-wait-": "adds a gauge (jobs pending now) to increase()s, so the ratio keeps the engines' difference",
}


def _compared(key: frozenset) -> bool:
    labels = dict(key)
    return not any(labels["__name__"].startswith(p) or labels.get("sloth_id", "").startswith(p)
                   for p in ENGINE_DEPENDENT)


def _recorded(daemon) -> dict[frozenset, float]:
    return {frozenset((k, v) for k, v in r["metric"].items()): float(r["value"][1])
            for r in daemon.query('{__name__=~"slo:.+"}')}


def _active(alerts: list[dict]) -> set[frozenset]:
    return {frozenset((k, v) for k, v in a["labels"].items() if k != "alertgroup") for a in alerts}


def _close(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def test_rules_agree_with_one_prometheus(topology, fleet_and_reference):
    """Every SLO recording rule has the same series, and the same values bar ENGINE_DEPENDENT, and the same
    alerts are active (pending or firing: the evaluators start at different moments) on vmalert as on the
    reference Prometheus."""
    _, _, ref = fleet_and_reference
    name, _, vm, vmalert = topology
    state: dict[str, object] = {}

    def agree() -> bool:
        want, got = _recorded(ref), _recorded(vm)
        state.update(want=want, got=got)
        if not want or set(want) != set(got) or not all(_close(want[k], got[k]) for k in want if _compared(k)):
            return False
        ref_alerts = _active(ref.get_json("/api/v1/alerts")["data"]["alerts"])
        vm_alerts = _active(vmalert.alerts())
        state.update(ref_alerts=ref_alerts, vm_alerts=vm_alerts)
        return ref_alerts == vm_alerts

    try:
        wait_until(agree, 150, f"{name}: rules on vmalert agree with the reference Prometheus", interval=1.0)
    except DaemonError:
        want, got = state.get("want", {}), state.get("got", {})
        diff = {tuple(sorted(k)): (want.get(k), got.get(k)) for k in set(want) | set(got)  # type: ignore[arg-type]
                if k not in want or k not in got or (_compared(k) and not _close(want[k], got[k]))}
        pytest.fail(f"{name}: {len(diff)} recorded series differ (reference, {name}): "
                    f"{list(diff.items())[:8]}\nalerts only on the reference: "
                    f"{state.get('ref_alerts', set()) - state.get('vm_alerts', set())}\n"  # type: ignore[operator]
                    f"alerts only on vmalert: "
                    f"{state.get('vm_alerts', set()) - state.get('ref_alerts', set())}")  # type: ignore[operator]
    assert state["ref_alerts"], "no alert active: the comparison would prove nothing"
    compared = [k for k in state["want"] if _compared(k)]  # type: ignore[union-attr]
    assert any(("__name__", "slo:sli_error:ratio_rate5m") in k for k in compared)
    assert any(("__name__", "slo:period_error_budget_remaining:ratio") in k for k in compared)
