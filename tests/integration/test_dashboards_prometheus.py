"""Every dashboard query against a real Prometheus scraping every collector, with the generated rules loaded.

What Prometheus scrapes (every second), one in-process exporter per example so no family is duplicated:
- every collector's docs example (hpcwatch/docexamples.py: the fixture trees and stand-in commands docs/metrics.md is
  rendered from: fake 8x H100 NVML, InfiniBand/RoCE/saturated sysfs, ibdiags replay, Lustre client and
  server, GPFS, NFS, BeeGFS, Flux, node, cgroup v1 and v2 jobs) — except slurm's, which is replaced by
- the slurm collector against the real Slurm of the harness (`slurm` fixture), where the test submits
  jobs that succeed, one that fails, one held pending and one that keeps running.
During the wait the test also drives the fake GPUs the way a bad day would: two XID 79 events, new
ECC errors and a process of a Slurm job on a GPU, so the panels that only show trouble have some.
Rules loaded: everything under deploy/prometheus/rules/ (infrastructure alerts, the catalogue's SLO
rules) plus the SLO rules of tests/fixtures/dashboards/slo-catalogue.yaml for the harness cluster,
whose detail dashboards are the ones checked for data.

(a) every panel and variable query of every dashboard (deploy/'s and the test catalogue's) is valid
    PromQL: Prometheus answers `success`;
(b) every panel target and variable returns data, except the few in ALLOWED_EMPTY, each with the
    reason; an allow-listed target that returns data, or one naming no panel, fails the test too.
"""

from __future__ import annotations

import fnmatch
import glob
import json
import math
import os
import re
import time

import helpers
import pytest
import yaml
from hpcwatch.dashboards import render_all, slo_refs
from hpcwatch.dashboards.helpers import iter_panels

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "dashboards")
# Grafana expands these before the query reaches Prometheus; All of a variable is `.*`. $__range is the
# dashboard's time range (6h by default; 10m here covers the whole test).
VARIABLES = {"$__rate_interval": "15s", "$__range": "10m", "$__interval": "5s", "$cluster": ".*",
             "$instance": ".*", "$jobid": ".*", "$queue": ".*", "$service": ".*"}
MEM = ("--mem=100M", "--cpus-per-task=1")

# Targets that may return nothing here, with the reason: fnmatch patterns of "dashboard uid / panel title"
# (every target of the panel) or "... #refId" (one target). Keep it short: each pattern must still match a
# target, and a matched target that returns data fails the test (remove its entry then).
SLO_ALERTS = ("needs an SLO burn-rate alert (ALERTS{sloth_id=...}): the budget burning above the page or "
              "ticket factor (14.4, 6, 3, 1) over 1 h to 3 d windows with at least 10 jobs in the long window, "
              "held for the alert's `for:`; the test's one failure is user-caused and it runs for a minute")
ALLOWED_EMPTY = {
    "hpcwatch-slo-overview / SLO alerts firing": SLO_ALERTS,
    "hpcwatch-slo-hpc-* / Alerts": SLO_ALERTS,  # each SLO detail dashboard's table of its alerts
}


def _expand(expr: str) -> str:
    for var in sorted(VARIABLES, key=len, reverse=True):
        expr = expr.replace(var, VARIABLES[var])
    return expr


def _targets(dashboards: dict[str, str]) -> list[tuple[str, str, str, str, bool]]:
    """(dashboard uid, panel title, refId (or the label a variable lists), expr, instant) with Grafana
    variables expanded; a time series panel's target is a range query, as Grafana runs it."""
    out = []
    for text in dashboards.values():
        d = json.loads(text)
        for p in iter_panels(d):
            for t in p.get("targets", []):
                out.append((d["uid"], p["title"], t["refId"], _expand(t["expr"]), t["instant"]))
        for v in d["templating"]["list"]:
            m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"]) if v["type"] == "query" else None
            if m:
                out.append((d["uid"], f"variable {v['name']}", m.group(2), _expand(m.group(1)), True))
    return out


def _slo_catalogue(tmp, cluster: str) -> list:
    """The test catalogue's SLO models, for the harness cluster."""
    from hpcwatch.slo import load_specs

    doc = yaml.safe_load(open(os.path.join(FIX, "slo-catalogue.yaml")))
    doc["spec"]["clusters"] = [cluster]
    path = tmp / "slo-catalogue.yaml"
    path.write_text(yaml.safe_dump(doc))
    return list(load_specs([str(path)]))


def _examples() -> list[tuple[str, object]]:
    """(collector name, instance) for every collector's documentation examples, slurm's left out."""
    from hpcwatch.exporters.registry import load_all

    from hpcwatch.docexamples import examples

    out = []
    for name in load_all():
        if name != "slurm":
            out += [(name, c) for c in examples(name, ROOT)]
    return out


def _wait(prom, exprs: list[str], timeout: float) -> list[str]:
    """Poll until every expr returns data or the timeout passes; the exprs still empty."""
    deadline = time.monotonic() + timeout
    while True:
        left = [e for e in exprs if not prom.query(e)]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.5)


def _gpu_trouble(fake) -> None:
    """Errors and a job process on the fake GPUs, after Prometheus has seen their healthy values."""
    import pynvml

    gpu0 = fake.gpus[0]
    gpu0.fields[(pynvml.NVML_FI_DEV_ECC_SBE_VOL_TOTAL, 0)] += 5
    gpu0.fields[(pynvml.NVML_FI_DEV_ECC_SBE_AGG_TOTAL, 0)] += 5
    gpu0.processes = [(4242, 12 << 30)]  # tests/fixtures/gpu/proc/4242 is a task of Slurm job 4242001
    fake.push_xid(0, 79)


@pytest.fixture(scope="module")
def stack(tmp_path_factory, slurm):
    helpers.require_binary("prometheus")
    from hpcwatch.exporters.gpu import nvml
    from hpcwatch.exporters.serve import Exporter
    from hpcwatch.exporters.slurm.collector import SlurmCollector
    from hpcwatch.slo import generate_rules, writer

    from hpcwatch.harness.prometheus import Prometheus

    tmp = tmp_path_factory.mktemp("dash")
    cluster = slurm.cluster_name
    slos = _slo_catalogue(tmp, cluster)
    slo_rules = tmp / "test-slo.rules.yml"
    slo_rules.write_text(writer.prometheus_text(generate_rules(slos)))
    rules = sorted(glob.glob(os.path.join(ROOT, "deploy", "prometheus", "rules", "*.yml"))) + [str(slo_rules)]

    examples = _examples()
    fake_nvml = nvml.lib  # the gpu example installed its fake 8x H100 NVML (restored on close)
    assert hasattr(fake_nvml, "push_xid"), "the gpu example runs on tests/fixtures/gpu/fake_pynvml.py"
    slurm_ctx = helpers.make_context(agent="cluster", cls=SlurmCollector, conf=slurm.env["SLURM_CONF"],
                                     **{"state-file": str(tmp / "slurm-state.json"), "refresh-interval": 1.0})
    examples.append(("slurm", SlurmCollector(slurm_ctx)))
    exporters: list[tuple[str, str, Exporter]] = []
    jobids: list[int] = []
    prom = None
    try:
        for name, collector in examples:
            agent = "node" if "node" in type(collector).default_agents else "cluster"
            exporter = Exporter([collector], ("127.0.0.1", 0), agent=agent)
            exporter.start()
            exporters.append((name, f"hpcwatch-{agent}", exporter))
        config = {"global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                  "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [
                      f"127.0.0.1:{e.port}" for _, j, e in exporters if j == job]}]}
                      for job in ("hpcwatch-node", "hpcwatch-cluster")]}
        prom = Prometheus(str(tmp), config, rules).start()

        # One finished job and one XID first, so their counters exist in Prometheus before they grow.
        c = f'cluster="{cluster}"'
        jobids.append(slurm.sbatch(None, *MEM, wrap="true"))
        fake_nvml.push_xid(0, 79)
        left = _wait(prom, [f'hpc_scheduler_jobs_finished_total{{{c},outcome="success"}}',
                            "hpc_gpu_xid_errors_total", 'up{job="hpcwatch-cluster"}'], 60)
        assert not left, f"never scraped: {left}"
        # Two more successes, a failure, a held job, one that keeps running and, behind it, one pending
        # for Resources (a backfill cycle, which sdiag reports a mean of only once one ran, needs it).
        jobids += [slurm.sbatch(None, *MEM, wrap="true"), slurm.sbatch(None, *MEM, wrap="true"),
                   slurm.sbatch(None, *MEM, wrap="false"), slurm.sbatch(None, *MEM, "--hold", wrap="true"),
                   slurm.sbatch(None, *MEM, wrap="sleep 600"),
                   slurm.sbatch(None, "--mem=100M", f"--cpus-per-task={slurm.cpus}", wrap="true")]
        _gpu_trouble(fake_nvml)
        # Enough history for rate() over 15s windows, the jobs counted, and the SLO rules evaluated on them.
        # (Not asserted here: a target still empty then is what the data test reports.)
        _wait(prom, ['count_over_time(up{job="hpcwatch-node"}[1m]) >= 15',
                     f'sum(hpc_scheduler_jobs_finished_total{{{c},outcome="success"}}) >= 3',
                     f'hpc_scheduler_jobs_finished_total{{{c},outcome!="success"}}',
                     f'hpc_scheduler_jobs{{{c},state="pending"}} > 0',
                     f'hpc_scheduler_jobs{{{c},state="running"}} > 0',
                     'increase(hpc_gpu_xid_errors_total[10m]) > 0',
                     f'hpc_slurm_pending_jobs{{{c},reason="Resources"}}',
                     f'hpc_slurm_backfill_cycle_mean_seconds{{{c}}}',  # bf_interval: 30 s by default
                     'slo:period_error_budget_remaining:ratio{sloth_id=~".*-job-success-.*"}'], 75)
        time.sleep(3)  # a few more evaluations of the rules over the latest samples
        dashboards = render_all(slo_refs(slos))
        yield prom, exporters, dashboards
    finally:
        if jobids:
            slurm.run(["scancel", *map(str, jobids)], check=False)
        if prom is not None:
            prom.stop()
        for _, _, exporter in exporters:
            exporter.stop()


def _valid(prom, expr: str) -> bool:
    from hpcwatch.harness.util import DaemonError
    try:
        prom.query(expr)
        return True
    except DaemonError:
        return False


def test_every_query_is_valid_promql(stack):
    prom, _, dashboards = stack
    from hpcwatch.generate import default_slos

    shipped = render_all(slo_refs(default_slos()))  # what deploy/grafana/dashboards holds
    errors = [f"{uid} / {title} #{ref}: {expr}" for uid, title, ref, expr, _ in _targets({**shipped, **dashboards})
              if not _valid(prom, expr)]
    assert not errors, "\n".join(errors)


def test_every_collector_is_scraped(stack):
    """Each example is a healthy target and its collector reports success."""
    prom, exporters, _ = stack
    from hpcwatch.exporters.registry import load_all

    assert {name for name, _, _ in exporters} == set(load_all()), "every registered collector is served"
    down = [r["metric"]["instance"] for r in prom.query('up{job=~"hpcwatch.*"} == 0')]
    failing = [r["metric"] for r in prom.query("hpcwatch_collector_success == 0")]
    assert not down and not failing, f"targets down: {down}; collectors failing: {failing}"


def _allowed(uid: str, title: str, ref: str) -> str | None:
    for pattern, reason in ALLOWED_EMPTY.items():
        if fnmatch.fnmatchcase(f"{uid} / {title}", pattern) or fnmatch.fnmatchcase(f"{uid} / {title} #{ref}", pattern):
            return reason
    return None


# Series names in a query: our families, the SLO recording rules, Prometheus' `up` and `ALERTS` (not label
# names, which are followed by a matcher).
NAME = re.compile(r"\b((?:hpc_|hpcwatch_)[a-zA-Z0-9_]+|slo:[a-zA-Z0-9_:]+|sloth_slo_info|up|ALERTS)\b"
                  r"(?!\s*[=!]~?\s*\")")


def _missing_names(prom, expr: str, present: set[str]) -> list[str]:
    """Series names the query reads that Prometheus holds no series of (`or vector(0)` would hide them)."""
    return [name for name in sorted(set(NAME.findall(expr)) - present)
            if not prom.query(f'count({{__name__="{name}"}})')]


def _has_data(prom, expr: str, instant: bool) -> bool:
    """At least one number (not NaN: histogram_quantile over no observations answers NaN), now for an
    instant target, anywhere in the test's last two minutes (1 s steps) for a time series target."""
    if instant:
        values = [r["value"][1] for r in prom.query(expr)]
    else:
        now = time.time()
        doc = prom.get_json("/api/v1/query_range", {"query": expr, "start": f"{now - 120:.3f}",
                                                    "end": f"{now:.3f}", "step": "1"})
        assert doc["status"] == "success", doc
        values = [v for r in doc["data"]["result"] for _, v in r["values"]]
    return any(not math.isnan(float(v)) for v in values)


def test_every_panel_returns_data(stack):
    prom, exporters, dashboards = stack
    targets = _targets(dashboards)
    assert any(uid.startswith("hpcwatch-slo-hpc-") for uid, *_ in targets), "SLO detail dashboards rendered"
    names = [f"{uid} / {title}" for uid, title, *_ in targets] + \
        [f"{uid} / {title} #{ref}" for uid, title, ref, *_ in targets]
    stale = [p for p in ALLOWED_EMPTY if not fnmatch.filter(names, p)]
    assert not stale, f"ALLOWED_EMPTY patterns matching no panel target: {stale}"

    present = {r["metric"]["__name__"] for r in prom.query('{__name__=~".+"}')}
    empty, allowed_but_data, with_data = [], [], 0
    for uid, title, ref, expr, instant in targets:
        if title.startswith("variable "):
            ok = any(ref in r["metric"] for r in prom.query(expr))  # the label the variable lists
        else:
            ok = _has_data(prom, expr, instant) and not _missing_names(prom, expr, present)
        reason = _allowed(uid, title, ref)
        if reason is None and not ok:
            missing = _missing_names(prom, expr, present)
            empty.append(f"{uid} / {title} #{ref}: {expr}" + (f" (no series of {missing})" if missing else ""))
        elif reason is not None and ok:
            allowed_but_data.append(f"{uid} / {title} #{ref}")
        with_data += ok
    served = sorted({name for name, _, _ in exporters})
    families = sorted({r["metric"]["__name__"] for r in prom.query('{job=~"hpcwatch.*"}')})
    print(f"\ncollectors served: {served}; families scraped: {len(families)}; "
          f"targets with data: {with_data} of {len(targets)}")
    alerts = sorted({(r["metric"]["alertname"], r["metric"]["alertstate"]) for r in prom.query("ALERTS")})
    print(f"alerts: {alerts}")
    print("no data:\n  " + "\n  ".join(empty) if empty else "no data: none")
    assert not empty, "panel targets that returned no data:\n" + "\n".join(empty)
    assert not allowed_but_data, "allow-listed targets return data now; remove them from ALLOWED_EMPTY:\n" + \
        "\n".join(allowed_but_data)
