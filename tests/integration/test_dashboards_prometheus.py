"""Every dashboard panel on a real Prometheus running the shipped config, each query run as Grafana runs it.

What runs (hpcwatch.harness.shipped): Prometheus on deploy/prometheus/prometheus.yml and
deploy/prometheus/rules/*.yml byte for byte (scrapes and rule evaluations every 30 s, as shipped),
plus the SLO rules `hpcwatch slo generate` writes for tests/fixtures/dashboards/slo-catalogue.yaml
in its rules/ folder, as an operator adds their own. The only files the test writes are the file_sd
target lists, every target group labelled `cluster` with the harness Slurm's ClusterName:
- jobs hpcwatch-node and hpcwatch-cluster: in-process exporters serving every collector's
  documentation examples (hpcwatch/docexamples.py: the fixture trees docs/metrics.md is rendered
  from: fake 8x H100 NVML, InfiniBand/RoCE/saturated sysfs, ibdiags replay, Lustre client and
  server, GPFS, NFS, BeeGFS, Flux, node, energy, cgroup v1 and v2 jobs), one exporter per example,
  except a compute node agent that serves the first node, textfile, GPU, fabric and energy examples
  with a jobs tree whose jobs are the ones its GPUs, the Lustre servers and the energy example name
  (as on a real node, where they are the same jobs; the energy example samples every 2 s, as the
  collector does on its interval); and the slurm collector against the harness's real
  Slurm, where the test submits jobs that succeed, one that fails, one held and one that keeps
  running;
- job node: the Debian node_exporter, as at a site that keeps it for node metrics.
The test also drives the fake GPUs the way a bad day would (two XID 79, new ECC errors, a process of
a Slurm job on a GPU), so the panels that only show trouble have some.

Dashboards: deploy/grafana/dashboards/*.json as `hpcwatch generate` wrote them, and the SLO detail
dashboards `hpcwatch dashboards write --slo-specs` writes for the test catalogue. Each target runs as
Grafana would (tests/grafana_sim.py): for every combination of the values each variable's own query
returns here (each value alone, and all of a multi-value variable's values at once), with
$__interval, $__rate_interval (from the provisioned data source's scrape interval) and $__range of
the dashboard's default range; a time series as a range query over that range stepping by
$__interval (ending now rather than at the last whole step: the stack is minutes old), anything else
as an instant query. A target counts only when it returns a series with a number.

(a) every panel and variable query of every dashboard is valid PromQL;
(b) every variable lists values and every panel target returns data for some selection, except the
    few in ALLOWED_EMPTY, each with its reason; an allow-listed target that returns data, or a
    pattern that names no target, fails the test too.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import os
import threading
import time

import grafana_sim
import helpers
import pytest
import yaml

from hpcwatch import metric_names as n

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
FIX = os.path.join(ROOT, "tests", "fixtures", "dashboards")
MEM = ("--mem=100M", "--cpus-per-task=1")
WAIT = 240.0  # deadline for every target to show data (30 s scrapes and evaluations, as shipped)

# Targets that may return nothing here, with the reason: fnmatch patterns of "dashboard uid / panel title"
# (every target of the panel) or "... #refId" (one target). Keep it short: each pattern must still match a
# target, and a matched target that returns data fails the test (remove its entry then).
SLO_ALERTS = ("needs an SLO burn-rate alert (ALERTS{sloth_id=...}): the budget burning above the page or "
              "ticket factor (14.4, 6, 3, 1) over 1 h to 3 d windows with at least 10 jobs in the long window, "
              "held for the alert's `for:`; the test's one failure is user-caused and it runs for minutes")
ALLOWED_EMPTY = {
    "hpcwatch-slo-overview / SLO alerts firing": SLO_ALERTS,
    "hpcwatch-slo-hpc-* / Alerts": SLO_ALERTS,  # each SLO detail dashboard's table of its alerts
}


def _dashboards(paths: list[str]) -> dict[str, dict]:
    out = {}
    for path in sorted(paths):
        with open(path, encoding="utf-8") as fh:
            d = json.load(fh)
        out[d["uid"]] = d
    return out


def _scrape_interval() -> str:
    """The provisioned data source's scrape interval, which Grafana derives $__rate_interval from."""
    with open(os.path.join(DEPLOY, "grafana", "provisioning", "datasources", "hpcwatch.yml")) as fh:
        return yaml.safe_load(fh)["datasources"][0]["jsonData"]["timeInterval"]


def _targets(d: dict) -> list[tuple[str, str, str, bool]]:
    """(panel title, refId, expr, instant) of every panel target; a time series panel runs ranges."""
    from hpcwatch.dashboards.helpers import iter_panels

    return [(p["title"], t["refId"], t["expr"], t["instant"]) for p in iter_panels(d) for t in p.get("targets", [])]


# The compute node agent: these collectors' first examples, served with COMPUTE_JOBS, on one target.
COMPUTE_NODE = ("node", "textfile", "gpu", "fabric", "energy")
# Its jobs: the v2 cgroup fixture with its two jobs renamed to the job whose process runs on the fake
# GPU 0 (tests/fixtures/gpu/proc/4242) and a job the Lustre job_stats fixtures account I/O to, plus a
# copy of the first as the job the energy example attributes energy to.
COMPUTE_JOBS = {"77": "777", "78": "4243"}
COMPUTE_JOB_COPIES = {"777": "4242001"}


def _examples() -> list[tuple[str, object]]:
    """(collector name, instance) for every collector's documentation examples, slurm's left out."""
    from hpcwatch.exporters.registry import load_all

    from hpcwatch.docexamples import examples

    out = []
    for name in load_all():
        if name != "slurm":
            out += [(name, c) for c in examples(name, ROOT)]
    return out


def _compute_jobs(dest: str):
    """A jobs collector on a copy of tests/fixtures/jobs/v2 whose jobs are renamed per COMPUTE_JOBS."""
    import shutil

    from hpcwatch.exporters.registry import load_all

    jobs = load_all()["jobs"]

    shutil.copytree(os.path.join(ROOT, "tests", "fixtures", "jobs", "v2"), dest, symlinks=True)
    scope = os.path.join(dest, "sys", "fs", "cgroup", "system.slice", "slurmstepd.scope")
    for old, new in COMPUTE_JOBS.items():
        os.rename(os.path.join(scope, f"job_{old}"), os.path.join(scope, f"job_{new}"))
    for src, copy in COMPUTE_JOB_COPIES.items():
        shutil.copytree(os.path.join(scope, f"job_{src}"), os.path.join(scope, f"job_{copy}"), symlinks=True)
    for path in glob.glob(os.path.join(dest, "proc", "*", "environ")):
        with open(path, "rb") as fh:
            env = fh.read().split(b"\0")
        for i, entry in enumerate(env):
            name, _, value = entry.partition(b"=")
            if name in (b"SLURM_JOB_ID", b"SLURM_JOBID") and value.decode() in COMPUTE_JOBS:
                env[i] = name + b"=" + COMPUTE_JOBS[value.decode()].encode()
        with open(path, "wb") as fh:
            fh.write(b"\0".join(env))
    return jobs(helpers.make_context(procfs=os.path.join(dest, "proc"), sysfs=os.path.join(dest, "sys"), cls=jobs))


def _wait(prom, exprs: list[str], timeout: float) -> list[str]:
    """Poll until every expr returns data or the timeout passes; the exprs still empty."""
    deadline = time.monotonic() + timeout
    while True:
        left = [e for e in exprs if not prom.query(e)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(1)


def _energy_sampling(collector, stop: threading.Event) -> threading.Thread:
    """The energy example samples its node every 2 s, as a node agent's energy collector does on its own
    interval: the power meter's watts accrue as node energy, so rates and range increases have data."""
    def loop() -> None:
        while not stop.wait(2.0):
            collector.source.refresh_now()

    thread = threading.Thread(target=loop, name="energy-sampling", daemon=True)
    thread.start()
    return thread


def _gpu_trouble(fake) -> None:
    """Errors and a job process on the fake GPUs, after Prometheus has seen their healthy values."""
    import pynvml

    gpu0 = fake.gpus[0]
    gpu0.fields[(pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, 0)] += 5
    gpu0.fields[(pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, 0)] += 5
    gpu0.processes = [(4242, 12 << 30)]  # tests/fixtures/gpu/proc/4242 is a task of Slurm job 4242001
    fake.push_xid(0, 79)


class Stack:
    """What the tests share: Prometheus, the exporters, the dashboards, when it all began."""

    def __init__(self, prom, exporters, shipped, slo_details, began) -> None:
        self.prom, self.exporters, self.began = prom, exporters, began
        self.shipped, self.slo_details = shipped, slo_details
        self.scrape_interval = _scrape_interval()

    def label_values(self, selector: str, label: str, range_s: int) -> list[str]:
        now = time.time()
        doc = self.prom.get_json(f"/api/v1/label/{label}/values", {
            "match[]": selector, "start": f"{now - range_s:.3f}", "end": f"{now:.3f}"})
        assert doc["status"] == "success", doc
        return doc["data"]

    def selections(self, d: dict, empty: list[str]) -> list[grafana_sim.Selection]:
        range_s = grafana_sim.seconds(d["time"]["from"])
        return list(grafana_sim.selections(d, lambda sel, label: self.label_values(sel, label, range_s), empty))

    def has_data(self, d: dict, expr: str, instant: bool) -> bool:
        """At least one number (not NaN: histogram_quantile over no observations answers NaN)."""
        macros = grafana_sim.TimeMacros.for_range(d["time"]["from"], self.scrape_interval)
        expr = macros.expand(expr)
        if instant:
            values = [r["value"][1] for r in self.prom.query(expr)]
        else:
            now = time.time()
            doc = self.prom.get_json("/api/v1/query_range", {
                "query": expr, "start": f"{now - macros.range_s:.3f}", "end": f"{now:.3f}",
                "step": f"{macros.interval_s}"})
            assert doc["status"] == "success", doc
            values = [v for r in doc["data"]["result"] for _, v in r["values"]]
        return any(not math.isnan(float(v)) for v in values)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, slurm, node_exporter):
    helpers.require_binary("prometheus")
    from hpcwatch.exporters.gpu import nvml
    from hpcwatch.exporters.serve import Exporter
    from hpcwatch.exporters.slurm.collector import SlurmCollector

    from hpcwatch import demo
    from hpcwatch.harness.shipped import ShippedPrometheus, Target

    tmp = tmp_path_factory.mktemp("dash")
    began = time.time()
    cluster = slurm.cluster_name
    doc = yaml.safe_load(open(os.path.join(FIX, "slo-catalogue.yaml")))
    doc["spec"]["clusters"] = [cluster]
    (tmp / "slo-catalogue.yaml").write_text(yaml.safe_dump(doc))
    # As an operator would: their SLO spec through the CLI, rules and detail dashboards.
    slo_rules = str(tmp / "test-slo.rules.yml")
    demo.cli("slo", "generate", "-i", str(tmp / "slo-catalogue.yaml"), "-o", slo_rules)
    demo.cli("dashboards", "write", "-o", str(tmp / "slo-dashboards"), "--slo-specs", str(tmp / "slo-catalogue.yaml"))
    slo_details = {uid: d for uid, d in _dashboards(glob.glob(str(tmp / "slo-dashboards" / "*.json"))).items()
                   if uid.startswith("hpcwatch-slo-hpc-")}
    shipped = _dashboards(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json")))

    examples = _examples()
    fake_nvml = nvml.lib  # the gpu example installed its fake 8x H100 NVML (restored on close)
    assert hasattr(fake_nvml, "push_xid"), "the gpu example runs on tests/fixtures/gpu/fake_pynvml.py"
    slurm_ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, conf=slurm.env["SLURM_CONF"],
                                     **{"state-file": str(tmp / "slurm-state.json"), "refresh-interval": 1.0})
    examples.append(("slurm", SlurmCollector(slurm_ctx)))
    exporters: list[tuple[str, str, object]] = []
    jobids: list[int] = []
    prom = None
    stop_sampling = threading.Event()
    try:
        _energy_sampling(next(c for n_, c in examples if n_ == "energy"), stop_sampling)
        compute = [c for name in COMPUTE_NODE for c in [next(c for n_, c in examples if n_ == name)]]
        exporter = Exporter([*compute, _compute_jobs(str(tmp / "compute-jobs"))], ("127.0.0.1", 0), agent="node")
        exporter.start()
        exporters.append(("compute node: " + ", ".join((*COMPUTE_NODE, "jobs")), n.NODE_AGENT_JOB, exporter))
        for name, collector in examples:
            if any(collector is c for c in compute):
                continue
            agent = "node" if "node" in type(collector).default_agents else "cluster"
            exporter = Exporter([collector], ("127.0.0.1", 0), agent=agent)
            exporter.start()
            exporters.append((name, f"hpcwatch-{agent}", exporter))
        # GPFS runs in both agents; in the cluster agent's job (honor_labels) a family label named
        # `cluster` would replace the target's: serve its example there too.
        from hpcwatch.docexamples import examples as doc_examples
        exporter = Exporter(doc_examples("gpfs", ROOT), ("127.0.0.1", 0), agent="cluster")
        exporter.start()
        exporters.append(("gpfs", n.CLUSTER_AGENT_JOB, exporter))
        labels = {"cluster": cluster}
        targets = {job: [Target(f"127.0.0.1:{e.port}", labels) for _, j, e in exporters if j == job]
                   for job in (n.NODE_AGENT_JOB, n.CLUSTER_AGENT_JOB)}
        targets[n.NODE_EXPORTER_JOB] = [Target(node_exporter.url.split("//")[1], labels)]
        prom = ShippedPrometheus(str(tmp), DEPLOY, targets, [slo_rules]).start()

        # One finished job and one XID first, so their counters exist in Prometheus before they grow.
        c = f'cluster="{cluster}"'
        jobids.append(slurm.sbatch(None, *MEM, wrap="true"))
        fake_nvml.push_xid(0, 79)
        left = _wait(prom, [f'hpc_scheduler_jobs_finished_total{{{c},outcome="success"}}',
                            f'hpc_gpu_xid_errors_total{{{c}}}', f'up{{job="hpcwatch-cluster",{c}}}',
                            f'up{{job="node",{c}}}'], 120)
        assert not left, f"never scraped: {left}"
        # Two more successes, a failure, a held job, one that keeps running and, behind it, one pending
        # for Resources (a backfill cycle, which sdiag reports a mean of only once one ran, needs it).
        jobids += [slurm.sbatch(None, *MEM, wrap="true"), slurm.sbatch(None, *MEM, wrap="true"),
                   slurm.sbatch(None, *MEM, wrap="false"), slurm.sbatch(None, *MEM, "--hold", wrap="true"),
                   slurm.sbatch(None, *MEM, wrap="sleep 900"),
                   slurm.sbatch(None, "--mem=100M", f"--cpus-per-task={slurm.cpus}", wrap="true")]
        _gpu_trouble(fake_nvml)
        yield Stack(prom, exporters, shipped, slo_details, began)
    finally:
        stop_sampling.set()
        if jobids:
            slurm.run(["scancel", *map(str, jobids)], check=False)
        if prom is not None:
            prom.stop()
        for _, _, exporter in exporters:
            exporter.stop()


def test_every_collector_is_scraped_with_the_cluster_label(stack):
    """Each example is a healthy target of the shipped jobs, and every series it sends carries `cluster`."""
    from hpcwatch.exporters.registry import load_all

    served = {part for name, _, _ in stack.exporters for part in name.removeprefix("compute node: ").split(", ")}
    assert served == set(load_all()), "every registered collector is served"
    left = _wait(stack.prom, [f'count(up{{job=~"hpcwatch-.*|node"}}) >= {len(stack.exporters) + 1}'], 120)
    assert not left, stack.prom.targets()
    down = [r["metric"]["instance"] for r in stack.prom.query('up{job=~"hpcwatch.*|node"} == 0')]
    failing = [r["metric"] for r in stack.prom.query("hpcwatch_collector_success == 0")]
    unlabelled = stack.prom.query('count by (job, __name__) ({job=~"hpcwatch.*|node", cluster=""})')
    assert not down and not failing, f"targets down: {down}; collectors failing: {failing}"
    assert not unlabelled, f"series without a cluster label: {[r['metric'] for r in unlabelled]}"


def test_no_family_label_collides_with_a_target_label(stack, slurm):
    """A family label named like a target label (cluster, node, job, instance)
    comes out as exported_<label>, or, under honor_labels, replaces the target's: none does here.
    node_exporter's NUMA `node` (KNOWN_COLLISIONS in tests/unit/test_target_labels.py) is renamed
    numa_node by the shipped config. GPFS names its cluster gpfs_cluster, and its
    series keep the HPC cluster in both agents' jobs."""
    sels = {job: f'hpc_gpfs_read_bytes_total{{job="{job}",cluster="{slurm.cluster_name}"}}'
            for job in (n.NODE_AGENT_JOB, n.CLUSTER_AGENT_JOB)}
    left = _wait(stack.prom, [*sels.values(), 'up{job="node"} == 1'], 120)
    assert not left, f"no data for {left}; GPFS series: {[r['metric'] for r in stack.prom.query('hpc_gpfs_fs_disks')]}"
    doc = stack.prom.get_json("/api/v1/labels", {"match[]": '{job=~"hpcwatch.*|node"}'})
    exported = [label for label in doc["data"] if label.startswith("exported_")]
    assert exported == [], exported
    # node_exporter's NUMA `node` is renamed numa_node by the shipped metric relabelling, on both node jobs.
    # (node_exporter's meminfo_numa collector is off by default: the peer job may have none.)
    numa = stack.prom.query('count by (job) ({__name__=~"node_memory_numa_.+", numa_node!=""})')
    assert n.NODE_AGENT_JOB in {r["metric"]["job"] for r in numa}, numa
    assert not stack.prom.query('{__name__=~"node_memory_numa_.+", numa_node=""}')
    for job, sel in sels.items():
        got = stack.prom.query(sel)
        assert sorted(r["metric"]["gpfs_cluster"] for r in got) == [
            "hpc.example.org", "hpc.example.org", "remote.example.org"], (job, got)


def _allowed(uid: str, title: str, ref: str) -> str | None:
    for pattern, reason in ALLOWED_EMPTY.items():
        if fnmatch.fnmatchcase(f"{uid} / {title}", pattern) or fnmatch.fnmatchcase(f"{uid} / {title} #{ref}", pattern):
            return reason
    return None


def test_every_query_is_valid_promql(stack):
    from hpcwatch.harness.util import DaemonError

    errors = []
    for uid, d in {**stack.shipped, **stack.slo_details}.items():
        sel = (stack.selections(d, []) or [grafana_sim.Selection({}, "")])[0]
        for title, ref, expr, instant in _targets(d):
            try:
                stack.has_data(d, grafana_sim.interpolate(expr, sel.formatted), instant)
            except (DaemonError, AssertionError) as exc:
                errors.append(f"{uid} / {title} #{ref}: {exc}")
    assert not errors, "\n".join(errors)


def test_every_panel_returns_data(stack):
    """Fixed dashboards and the test catalogue's SLO details (the shipped SLO details are for the example
    cluster `alpha`, which nothing here runs): data for some selection of real variable values."""
    checked = {uid: d for uid, d in stack.shipped.items() if not uid.startswith("hpcwatch-slo-hpc-")}
    checked.update(stack.slo_details)
    assert stack.slo_details, "SLO detail dashboards written for the test catalogue"
    names = [f"{uid} / {t[0]}" for uid, d in checked.items() for t in _targets(d)] + \
        [f"{uid} / {t[0]} #{t[1]}" for uid, d in checked.items() for t in _targets(d)]
    stale = [p for p in ALLOWED_EMPTY if not fnmatch.filter(names, p)]
    assert not stale, f"ALLOWED_EMPTY patterns matching no panel target: {stale}"

    # Poll until every target has data for some selection (30 s scrapes and evaluations): only the
    # targets still empty are run again.
    pending = {(uid, t) for uid, d in checked.items() for t in _targets(d)}
    data: dict[tuple[str, tuple], str] = {}
    empty_vars: list[str] = []
    deadline = time.monotonic() + WAIT
    while True:
        empty_vars = []
        sels = {uid: stack.selections(d, empty_vars) for uid, d in checked.items()}
        for uid, target in sorted(pending):
            d = checked[uid]
            title, ref, expr, instant = target
            for sel in sels[uid]:
                if stack.has_data(d, grafana_sim.interpolate(expr, sel.formatted), instant):
                    data[(uid, target)] = sel.label
                    break
        pending -= set(data)
        waiting = [p for p in pending if _allowed(p[0], p[1][0], p[1][1]) is None]
        if (not waiting and not empty_vars) or time.monotonic() > deadline:
            break
        time.sleep(5)

    empty = [f"{uid} / {t[0]} #{t[1]}: {t[2]}" for uid, t in sorted(pending) if _allowed(uid, t[0], t[1]) is None]
    allowed_but_data = [f"{uid} / {t[0]} #{t[1]}" for uid, t in sorted(data) if _allowed(uid, t[0], t[1])]
    panels: dict[str, dict[str, bool]] = {}
    for uid, d in checked.items():
        for title, ref, expr, instant in _targets(d):
            ok = (uid, (title, ref, expr, instant)) in data
            panels.setdefault(uid, {})[title] = panels.get(uid, {}).get(title, True) and ok
    fixed = [uid for uid in panels if not uid.startswith("hpcwatch-slo-hpc-")]
    with_data = sum(sum(panels[u].values()) for u in fixed)
    total = sum(len(panels[u]) for u in fixed)
    print(f"\nfixed dashboards: panels with data {with_data} of {total} "
          f"(after {time.time() - stack.began:.0f}s); per dashboard: "
          + ", ".join(f"{u} {sum(panels[u].values())}/{len(panels[u])}" for u in sorted(fixed)))
    print("SLO detail dashboards: " + ", ".join(f"{u} {sum(panels[u].values())}/{len(panels[u])}"
                                                 for u in sorted(panels) if u not in fixed))
    print("no data:\n  " + "\n  ".join(empty) if empty else "no data: none outside ALLOWED_EMPTY")
    assert not empty_vars, "variables that list nothing:\n" + "\n".join(empty_vars)
    assert not empty, "panel targets that returned no data for any selection of real values:\n" + "\n".join(empty)
    assert not allowed_but_data, "allow-listed targets return data now; remove them from ALLOWED_EMPTY:\n" + \
        "\n".join(allowed_but_data)


def test_a_health_stat_shows_no_data_for_a_cluster_nothing_scrapes(stack):
    """The health stats count what is wrong among what exists: for a cluster with no series they answer
    nothing (Grafana: "No data"), never a reassuring 0."""
    d = stack.shipped["hpcwatch-cluster"]
    health = [t for t in _targets(d) if t[0] in ("Exporter targets down", "Collectors failing", "Alerts firing")]
    assert len(health) == 3
    for title, _ref, expr, _instant in health:
        real = grafana_sim.interpolate(expr, {"cluster": grafana_sim.regex_escape(stack.prom.query(
            "count by (cluster) (up)")[0]["metric"]["cluster"])})
        assert stack.prom.query(real), f"{title}: no value for the real cluster"
        ghost = grafana_sim.interpolate(expr, {"cluster": "no-such-cluster"})
        assert stack.prom.query(ghost) == [], f"{title} answers for a cluster nothing scrapes: {ghost}"
