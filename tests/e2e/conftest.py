"""Session fixture of the end-to-end tests: start the stack, run the alert-path scenario once
(alertpath.Scenario), tear everything down, hand the record to the tests."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from alertpath import CATALOGUE, CLUSTER, QUEUE, WINDOWS, AlertRun, Scenario, require_e2e, value

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
        demo.seed_scheduler_state(state, [QUEUE])
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
        scenario.healthy()
        scenario.user_failures_alone()
        scenario.system_failures()
        scenario.recovery()
        run = scenario.run
        run.diagnostics["node agent up"] = value(prom, 'up{job="hpcwatch-node"}')
        run.diagnostics["cluster agent up"] = value(prom, 'up{job="hpcwatch-cluster"}')
        t = time.monotonic()
    timings.update(run.timings)
    timings["teardown"] = round(time.monotonic() - t, 1)
    timings["total"] = round(time.monotonic() - t0, 1)
    run.timings = timings
    reporter = request.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line("")
        reporter.write_line("e2e alert path timings (s): " + ", ".join(f"{k} {v}" for k, v in timings.items()))
        for engine in ("prom", "vm"):
            p, r = run.page.get(engine), run.resolved.get(engine)
            reporter.write_line(f"  {engine}: page {p.after if p else 'none'}s after the burn, resolved "
                                f"{r.after if r else 'not seen'}s after recovery")
    return run
