"""Session fixture of the end-to-end tests: start the stack, run the alert-path scenario once
(alertpath.Scenario), tear everything down, hand the record to the tests."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from alertpath import CATALOGUE, CLUSTER, WINDOWS, AlertRun, Scenario, require_e2e

from hpcwatch import demo


@pytest.fixture(scope="session")
def alert_run(tmp_path_factory, request) -> AlertRun:
    """Start the stack, drive the scenario once, tear everything down; the record of what happened."""
    require_e2e()
    from hpcwatch.harness.prometheus import Alertmanager, Prometheus, VictoriaMetrics, VMAlert
    from hpcwatch.harness.slurm import SlurmCluster

    work = str(tmp_path_factory.mktemp("e2e"))
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(demo.WebhookReceiver())
        slurm = stack.enter_context(SlurmCluster(os.path.join(work, "slurm"), cluster_name=CLUSTER, nodes=4))
        state = os.path.join(work, "slurm-state.json")
        cluster = stack.enter_context(demo.Agent(work, "cluster", [
            f"--collector.slurm.conf={slurm.conf_path}", "--collector.slurm.refresh-interval=2",
            f"--collector.slurm.state-file={state}"]))
        node = stack.enter_context(demo.Agent(work, "node"))
        rules = [demo.slo_rules(work, CATALOGUE, WINDOWS, "e2e-slo"), os.path.join(work, "infra.rules.yml")]
        demo.cli("alerts", "rules", "-o", rules[1])
        am = {e: stack.enter_context(Alertmanager(work, demo.alertmanager_config(
            work, f"{hook.url}/{e}/oncall", f"{hook.url}/{e}/ticket"))) for e in ("prom", "vm")}
        vm = stack.enter_context(VictoriaMetrics(work))
        prom = stack.enter_context(Prometheus(work, demo.prometheus_config(
            {"hpcwatch-cluster": cluster.url, "hpcwatch-node": node.url}, am["prom"].url, interval="1s",
            remote_write=vm.url + "/api/v1/write"), rules))
        vmalert = stack.enter_context(VMAlert(work, rules, vm.url, am["vm"].url, evaluation_interval="1s",
                                              extra_args=[f"-remoteWrite.url={vm.url}",
                                                          "-remoteWrite.flushInterval=500ms",
                                                          "-datasource.queryStep=5s"]))
        timings["stack up"] = round(time.monotonic() - t0, 1)
        scenario = Scenario(slurm, prom, vm, vmalert, hook)
        scenario.scraping()
        scenario.healthy()
        scenario.user_failures_alone()
        scenario.system_failures()
        scenario.recovery()
        run = scenario.run
        for what, expr in (("up", 'min by (job) (up{job=~"hpcwatch-.*"})'),
                           ("collector_success", "min by (job) (min_over_time(hpcwatch_collector_success[5m]))")):
            for r in prom.query(expr):
                run.agents.setdefault(r["metric"]["job"], {})[what] = float(r["value"][1])
        t = time.monotonic()
    timings.update(run.timings)
    timings["teardown"] = round(time.monotonic() - t, 1)
    timings["total"] = round(time.monotonic() - t0, 1)
    run.timings = timings
    report_timings(request.config, run)
    return run


def report_timings(config, run: AlertRun) -> None:
    """Timings on the terminal (outside output capture), so every run shows them."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")
    if reporter is None:
        return
    lines = ["", "e2e alert path timings (s): " + ", ".join(f"{k} {v}" for k, v in run.timings.items())]
    for engine, name in (("prom", "Prometheus"), ("vm", "vmalert")):
        p, r = run.page.get(engine), run.resolved.get(engine)
        lines.append(f"  {name}: page on-call {p.after if p else 'NOT SEEN'}s after the nodes went down, "
                     f"resolved {r.after if r else 'NOT SEEN'}s after they resumed")
    paths: dict[str, int] = {}
    for _at, path, doc in run.notifications:
        key = f"{path} {doc.get('status')}"
        paths[key] = paths.get(key, 0) + 1
    lines.append("  notifications: " + ", ".join(f"{k} x{n}" for k, n in sorted(paths.items())))
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for line in lines:
            reporter.write_line(line)
