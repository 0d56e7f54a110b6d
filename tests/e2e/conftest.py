"""Session fixture of the end-to-end tests: start the stack, run the alert-path scenario once
(alertpath.Scenario), tear everything down, hand the record to the tests."""

from __future__ import annotations

import contextlib
import os
import time

import pytest
from alertpath import CATALOGUE, CLUSTER, DEPLOY, WINDOWS, AlertRun, Scenario, require_e2e

from hpcwatch import demo


@pytest.fixture(scope="session")
def alert_run(tmp_path_factory, request) -> AlertRun:
    """Start the stack, drive the scenario once, tear everything down; the record of what happened."""
    require_e2e()
    from hpcwatch.harness.prometheus import VMAlert
    from hpcwatch.harness.shipped import (
        NotificationReceiver,
        ShippedPrometheus,
        ShippedVictoriaMetrics,
        Target,
        shipped_alertmanager,
    )
    from hpcwatch.harness.slurm import SlurmCluster

    work = str(tmp_path_factory.mktemp("e2e"))
    os.chmod(work, 0o755)
    t0 = time.monotonic()
    timings: dict[str, float] = {}
    with contextlib.ExitStack() as stack:
        hook = stack.enter_context(NotificationReceiver())
        slurm = stack.enter_context(SlurmCluster(os.path.join(work, "slurm"), cluster_name=CLUSTER, nodes=4))
        state = os.path.join(work, "slurm-state.json")
        cluster = stack.enter_context(demo.Agent(work, "cluster", [
            f"--collector.slurm.conf={slurm.conf_path}", "--collector.slurm.refresh-interval=2",
            f"--collector.slurm.state-file={state}"]))
        node = stack.enter_context(demo.Agent(work, "node"))
        slo = demo.slo_rules(work, CATALOGUE, WINDOWS, "e2e-slo")
        am = {e: stack.enter_context(shipped_alertmanager(work, DEPLOY, f"{hook.url}/{e}")) for e in ("prom", "vm")}
        targets = demo.agent_targets(CLUSTER, node, cluster, "1s")
        prom = stack.enter_context(ShippedPrometheus(
            work, DEPLOY, {**targets, "alertmanager": [Target(am["prom"].url.split("//")[1])]}, [slo]))
        # VictoriaMetrics scrapes the same prometheus.yml and targets; vmalert evaluates the same rules.
        vm = stack.enter_context(ShippedVictoriaMetrics(work, prom.config_path))
        vmalert = stack.enter_context(VMAlert(work, [os.path.join(prom.dir, "rules", "*.yml")], vm.url,
                                              am["vm"].url, evaluation_interval="30s",
                                              extra_args=[f"-remoteWrite.url={vm.url}",
                                                          "-remoteWrite.flushInterval=500ms",
                                                          "-datasource.queryStep=5s"]))
        timings["stack up"] = round(time.monotonic() - t0, 1)
        scenario = Scenario(slurm, prom, vm, vmalert, hook)
        scenario.run.rule_files = prom.loaded_rule_files()
        scenario.scraping()
        scenario.healthy()
        scenario.user_failures_alone()
        scenario.maintenance()
        scenario.system_failures()
        scenario.recovery()
        run = scenario.run
        run.state_mode = os.stat(state).st_mode & 0o777  # the ledger the cluster agent keeps
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
    for note in run.notifications:
        key = f"{note.path} {note.status}"
        paths[key] = paths.get(key, 0) + 1
    lines.append("  notifications: " + ", ".join(f"{k} x{n}" for k, n in sorted(paths.items())))
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        for line in lines:
            reporter.write_line(line)
