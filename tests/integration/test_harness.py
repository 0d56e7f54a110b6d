"""Every harness daemon comes up on loopback, answers, and stops without leaving a process behind."""

from __future__ import annotations

import json
import os
import socket
import urllib.request

import pytest
from conftest import require_root, start

from hpcwatch.harness.prometheus import NodeExporter, Prometheus
from hpcwatch.harness.slurm import SlurmCluster
from hpcwatch.harness.util import DaemonError, MissingDaemon, free_port, wait_until, which

pytestmark = pytest.mark.daemons


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as fh:  # a zombie not yet reaped counts as gone
        return fh.read().split(") ", 1)[1][0] != "Z"


def port_open(port: int) -> bool:
    with socket.socket() as s:
        s.settimeout(1)
        return s.connect_ex(("127.0.0.1", port)) == 0


def test_which_and_missing_daemon_message():
    assert os.path.isabs(which("sh"))
    with pytest.raises(MissingDaemon, match="make deps"):
        which("hpcwatch-no-such-daemon")
    assert 1024 <= free_port() <= 65535


def test_prometheus_answers_queries_and_reloads(prometheus_factory, node_exporter):
    cfg = {"global": {"scrape_interval": "1s"},
           "scrape_configs": [{"job_name": "node", "static_configs": [{"targets": [node_exporter.url[7:]]}]}]}
    prom = prometheus_factory(cfg)
    assert prom.url.startswith("http://127.0.0.1:")
    wait_until(lambda: prom.query('up{job="node"} == 1'), 30, "node_exporter scraped")
    prom.config_yaml = dict(cfg, scrape_configs=cfg["scrape_configs"] + [
        {"job_name": "self", "static_configs": [{"targets": [prom.url[7:]]}]}])
    prom.reload()
    wait_until(lambda: any(t["labels"]["job"] == "self" for t in prom.targets()), 30, "reloaded target")


def test_alertmanager_accepts_alerts(alertmanager):
    alertmanager.post("/api/v2/alerts", json.dumps([{"labels": {"alertname": "HarnessTest"}}]).encode(),
                      "application/json")
    assert [a["labels"]["alertname"] for a in alertmanager.alerts()] == ["HarnessTest"]


def test_pushgateway_keeps_pushed_metrics(pushgateway):
    pushgateway.push("harness", "hpcwatch_harness_test 42\n")
    with urllib.request.urlopen(pushgateway.url + "/metrics") as resp:
        assert b'hpcwatch_harness_test{instance="",job="harness"} 42' in resp.read()


def test_victoria_metrics_and_vmalert(victoria_metrics, alertmanager, vmalert_factory, tmp_path):
    victoria_metrics.import_prometheus('hpcwatch_harness_vm{a="b"} 7\n')
    wait_until(lambda: victoria_metrics.query("hpcwatch_harness_vm"), 30, "imported sample searchable")
    assert victoria_metrics.query("hpcwatch_harness_vm")[0]["value"][1] == "7"
    rules = tmp_path / "rules.yml"
    rules.write_text("groups:\n- name: harness\n  rules:\n  - alert: HarnessVM\n    expr: vector(1)\n")
    vma = vmalert_factory([str(rules)], victoria_metrics.url, alertmanager.url, evaluation_interval="1s")
    wait_until(lambda: [a for a in vma.alerts() if a["name"] == "HarnessVM" and a["state"] == "firing"], 30,
               "vmalert fires")
    wait_until(lambda: [a for a in alertmanager.alerts() if a["labels"]["alertname"] == "HarnessVM"], 30,
               "alert reaches alertmanager")


def test_node_exporter_serves_metrics(node_exporter):
    assert "node_exporter_build_info" in node_exporter.metrics()


def test_daemon_stops_cleanly_and_failed_start_leaves_nothing(tmp_path):
    ne = start(NodeExporter(str(tmp_path)))
    pid, port = ne.process.pid, ne.port
    assert port_open(port)
    ne.stop()
    assert not pid_alive(pid) and not port_open(port)
    ne.stop()  # twice is fine

    bad = Prometheus(str(tmp_path), "scrape_configs: [{job_name: x, static_configs: [{targets: 12}]}]\n")
    with pytest.raises(DaemonError, match="prometheus") as err, bad:
        pass
    assert "daemon.log" in str(err.value)  # the log is named and its tail quoted
    assert bad.process is None and not port_open(bad.port)


def test_slurm_cluster_runs_jobs(slurm):
    assert slurm.startup_seconds is not None
    out = slurm.run(["sinfo", "-h", "-N", "-o", "%N %P %T"]).stdout
    assert slurm.node_name in out and "debug" in out and "gpu" in out
    jobid = slurm.sbatch(wrap="echo hello-$SLURM_JOB_ID")
    assert slurm.wait_job(jobid) == "COMPLETED"
    with open(os.path.join(slurm.jobs_dir, f"slurm-{jobid}.out")) as fh:
        assert fh.read().strip() == f"hello-{jobid}"
    script = "#!/bin/sh\n#SBATCH --partition=gpu\nexit 3\n"
    assert slurm.wait_job(slurm.sbatch(script)) == "FAILED"
    # accounting reached slurmdbd/MariaDB
    wait_until(lambda: str(jobid) in slurm.run(["sacct", "-n", "-X", "-o", "JobID"]).stdout, 30, "sacct")
    assert slurm.cluster_name in slurm.run(["sacctmgr", "-n", "-P", "show", "cluster", "format=cluster"]).stdout


def test_slurm_ctld_and_dbd_restart(slurm):
    slurm.stop_dbd()
    slurm.start_dbd()
    slurm.stop_ctld()
    assert slurm.run(["squeue"], check=False, timeout=30).returncode != 0
    slurm.start_ctld()
    wait_until(lambda: slurm.run(["squeue"], check=False).returncode == 0, 30, "squeue after restart")
    assert slurm.wait_job(slurm.sbatch(wrap="true"), timeout=90) == "COMPLETED"


def test_slurm_stop_leaves_nothing(tmp_path):
    require_root("the Slurm harness")
    cluster = SlurmCluster(str(tmp_path), extra_conf="MaxJobCount=100000\nMaxArraySize=100000\n")
    start(cluster)
    try:
        with open(cluster.conf_path) as fh:
            conf = fh.read()
        assert "MaxJobCount=100000" in conf and "MaxJobCount=10000\n" not in conf
        jobid = cluster.sbatch(None, "--mem=32M", wrap="sleep 300")
        cluster.wait_job(jobid, states=["RUNNING"])
        pids = [p.pid for p in cluster._procs.values()]
        wait_until(lambda: cluster._our_pids() - set(pids), 30, "job processes visible")
        job_pids = cluster._our_pids() - set(pids)
    finally:
        cluster.stop()
    assert not [p for p in pids + sorted(job_pids) if pid_alive(p)]
    assert cluster._our_pids() == set()
    assert cluster._cgroup_dirs() == []
    for port in cluster.ports.values():
        assert not port_open(port)
