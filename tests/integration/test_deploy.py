"""What operators install: systemd units verified by systemd-analyze, the kustomize base and overlays
rendered by kubectl and validated against the Kubernetes schemas, Prometheus config by promtool."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys

import pytest
import yaml
from helpers import require_binary

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")
VENV_BIN = os.path.dirname(sys.executable)
K8S_VERSION = "1.30.0"


def _serve_help() -> str:
    """Every serve flag, collector options included (the short --help leaves those out)."""
    return subprocess.run([f"{VENV_BIN}/hpcwatch", "serve", "--help-all"], capture_output=True, text=True,
                          timeout=60, check=True).stdout


def _unit(name: str) -> str:
    with open(os.path.join(DEPLOY, "systemd", name)) as fh:
        return fh.read()


@pytest.mark.parametrize("unit", ["hpcwatch-node.service", "hpcwatch-cluster.service"])
def test_systemd_unit_verifies_and_is_hardened(unit, tmp_path):
    analyze = require_binary("systemd-analyze")
    text = _unit(unit)
    # Verify the unit as shipped, with only the binary path pointed at this checkout's install
    # (systemd-analyze checks that ExecStart is executable).
    local = text.replace("/opt/hpcwatch/bin/hpcwatch", f"{VENV_BIN}/hpcwatch")
    (tmp_path / unit).write_text(local)
    proc = subprocess.run([analyze, "verify", str(tmp_path / unit)], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "not safe" not in proc.stderr and "Unknown" not in proc.stderr, proc.stderr
    for directive in ("User=hpcwatch", "NoNewPrivileges=yes", "ProtectSystem=strict", "ProtectHome=yes",
                      "PrivateTmp=yes", "CapabilityBoundingSet=\n", "ReadOnlyPaths=/",
                      "EnvironmentFile=-/etc/default/"):
        assert directive in text, f"{unit} lacks {directive.strip()}"


@pytest.mark.parametrize("unit", ["hpcwatch-node.service", "hpcwatch-cluster.service"])
def test_systemd_unit_bounds_one_agent(unit):
    """Files, tasks and memory are capped for one agent, with room for the HTTP connection bound."""
    from hpcwatch.exporters.server import FD_RESERVE, Limits

    directives = dict(line.split("=", 1) for line in _unit(unit).splitlines() if "=" in line and line[0] != "#")
    nofile = int(directives["LimitNOFILE"])
    assert nofile >= 2 * (Limits().max_connections + FD_RESERVE)   # connections plus the collectors' files
    assert 64 <= int(directives["TasksMax"]) <= 512
    assert directives["MemoryMax"].endswith(("M", "G"))


@pytest.mark.parametrize("unit", ["hpcwatch-node.service", "hpcwatch-cluster.service"])
def test_systemd_execstart_flags_exist(unit):
    help_text = _serve_help()
    exec_line = next(line for line in _unit(unit).splitlines() if line.startswith("ExecStart="))
    for arg in shlex.split(exec_line.split("=", 1)[1])[2:]:
        if arg.startswith("--"):
            flag = arg.split("=", 1)[0]
            assert re.search(rf"{re.escape(flag)}\b", help_text), f"{unit}: {flag} is not a serve flag"


def _kustomize(path: str) -> list[dict]:
    kubectl = require_binary("kubectl")
    proc = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


OVERLAYS = ["base", "overlays/gpu-nodes", "overlays/slurm-hostpath"]


@pytest.mark.parametrize("where", OVERLAYS)
def test_kustomize_renders_and_validates(where):
    import kubernetes_validate

    objects = _kustomize(os.path.join(DEPLOY, "kubernetes", where))
    kinds = {o["kind"] for o in objects}
    assert {"DaemonSet", "Deployment", "Service", "ServiceMonitor", "PrometheusRule", "ConfigMap"} <= kinds
    for obj in objects:
        if obj["apiVersion"].startswith("monitoring.coreos.com/"):
            continue  # operator CRDs: not in the Kubernetes schemas; checked below
        kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        assert obj["metadata"].get("namespace", "hpcwatch") == "hpcwatch" or obj["kind"] == "Namespace"


def test_node_agent_security_posture():
    objects = _kustomize(os.path.join(DEPLOY, "kubernetes", "base"))
    ds = next(o for o in objects if o["kind"] == "DaemonSet")
    pod = ds["spec"]["template"]["spec"]
    c = pod["containers"][0]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert c["securityContext"]["readOnlyRootFilesystem"] is True
    assert c["securityContext"]["capabilities"]["drop"] == ["ALL"]
    assert "add" not in c["securityContext"]["capabilities"]
    assert c["securityContext"]["allowPrivilegeEscalation"] is False
    mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
    for path in ("/host/proc", "/host/sys", "/host/run"):
        assert mounts[path]["readOnly"] is True
    assert any(t.get("operator") == "Exists" for t in pod["tolerations"])
    args = " ".join(c["args"])
    assert "--path.procfs=/host/proc" in args and "--path.sysfs=/host/sys" in args
    help_text = _serve_help()
    for obj in objects:
        if obj["kind"] in ("DaemonSet", "Deployment"):
            for arg in obj["spec"]["template"]["spec"]["containers"][0]["args"][1:]:
                assert arg.split("=", 1)[0] in help_text, f"{arg} is not a serve flag"


def test_gpu_overlay_tolerates_gpu_taint():
    objects = _kustomize(os.path.join(DEPLOY, "kubernetes", "overlays", "gpu-nodes"))
    ds = next(o for o in objects if o["kind"] == "DaemonSet")
    tol = ds["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tol


def test_operator_objects_hold_valid_rules_and_dashboards(tmp_path):
    promtool = require_binary("promtool")
    objects = _kustomize(os.path.join(DEPLOY, "kubernetes", "base"))
    rules = [o for o in objects if o["kind"] == "PrometheusRule"]
    assert rules
    for i, rule in enumerate(rules):
        path = tmp_path / f"rules{i}.yml"
        path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
        proc = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, text=True, timeout=120)
        assert proc.returncode == 0, proc.stdout + proc.stderr
    for sm in (o for o in objects if o["kind"] == "ServiceMonitor"):
        assert sm["spec"]["selector"]["matchLabels"]
        assert all(ep["port"] == "metrics" for ep in sm["spec"]["endpoints"])
    dashboards = [o for o in objects if o["kind"] == "ConfigMap" and o["metadata"]["labels"].get("grafana_dashboard")]
    assert dashboards
    import json

    for cm in dashboards:
        for body in cm["data"].values():
            assert json.loads(body)["uid"]


def test_prometheus_config_passes_promtool(tmp_path):
    promtool = require_binary("promtool")
    proc = subprocess.run([promtool, "check", "config", os.path.join(DEPLOY, "prometheus", "prometheus.yml")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "SUCCESS" in proc.stdout
