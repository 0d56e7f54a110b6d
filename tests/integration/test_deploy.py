"""What operators install: systemd units verified by systemd-analyze, the kustomize base and overlays
rendered by kubectl and validated against the Kubernetes schemas (the image `make image` builds, the
NetworkPolicy, the TLS and basic-auth overlay), Prometheus config by promtool."""

from __future__ import annotations

import functools
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


@functools.cache
def _kustomize(path: str) -> list[dict]:
    """The rendered objects (cached: the tests only read them)."""
    kubectl = require_binary("kubectl")
    proc = subprocess.run([kubectl, "kustomize", path], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return [d for d in yaml.safe_load_all(proc.stdout) if d]


OVERLAYS = ["base", "overlays/gpu-nodes", "overlays/slurm-hostpath", "overlays/tls-basic-auth"]


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


def _workloads(objects: list[dict]) -> list[dict]:
    return [o for o in objects if o["kind"] in ("DaemonSet", "Deployment")]


@pytest.mark.parametrize("where", OVERLAYS)
def test_workloads_run_the_image_make_image_builds(where):
    image = subprocess.run(["make", "-s", "-C", ROOT, "image-name"], capture_output=True, text=True, timeout=60,
                           check=True).stdout.strip()
    from hpcwatch.version import __version__

    assert image == f"localhost/hpcwatch:{__version__}"
    for obj in _workloads(_kustomize(os.path.join(DEPLOY, "kubernetes", where))):
        (c,) = obj["spec"]["template"]["spec"]["containers"]
        assert c["image"] == image and c["imagePullPolicy"] == "IfNotPresent", (obj["metadata"]["name"], c["image"])


def test_network_policy_admits_scrapes_from_the_monitoring_namespace_only():
    objects = _kustomize(os.path.join(DEPLOY, "kubernetes", "base"))
    (policy,) = [o for o in objects if o["kind"] == "NetworkPolicy"]
    spec = policy["spec"]
    assert spec["policyTypes"] == ["Ingress"]
    assert spec["podSelector"]["matchLabels"] == {"app.kubernetes.io/part-of": "hpcwatch"}
    (rule,) = spec["ingress"]
    assert rule["from"] == [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    # Every pod it selects names its port `metrics`.
    for obj in _workloads(objects):
        labels = obj["spec"]["template"]["metadata"]["labels"]
        assert labels["app.kubernetes.io/part-of"] == "hpcwatch"
        assert [p["name"] for p in obj["spec"]["template"]["spec"]["containers"][0]["ports"]] == ["metrics"]


def test_service_monitors_label_cluster_like_the_shipped_prometheus_config():
    objects = _kustomize(os.path.join(DEPLOY, "kubernetes", "base"))
    monitors = {o["metadata"]["name"]: o["spec"]["endpoints"][0] for o in objects if o["kind"] == "ServiceMonitor"}
    for name, ep in monitors.items():
        assert {"targetLabel": "cluster", "replacement": "mycluster"} in ep["relabelings"], name
    assert monitors["hpcwatch-cluster"].get("honorLabels") is True
    assert not monitors["hpcwatch-node"].get("honorLabels")


def test_tls_overlay_mounts_the_web_config_and_scrapes_with_tls_and_basic_auth(tmp_path):
    import bcrypt
    from hpcwatch.exporters.webconfig import load_web_config

    where = os.path.join(DEPLOY, "kubernetes", "overlays", "tls-basic-auth")
    objects = _kustomize(where)
    for obj in _workloads(objects):
        pod = obj["spec"]["template"]["spec"]
        c = pod["containers"][0]
        assert "--web.config.file=/etc/hpcwatch/web/web-config.yml" in c["args"]
        mounts = {m["mountPath"]: m for m in c["volumeMounts"]}
        assert mounts["/etc/hpcwatch/web"]["readOnly"] and mounts["/etc/hpcwatch/tls"]["readOnly"]
        secrets = {v["name"]: v["secret"]["secretName"] for v in pod["volumes"] if "secret" in v}
        assert secrets == {"web-config": "hpcwatch-web-config", "tls": "hpcwatch-tls"}
        for probe in ("readinessProbe", "livenessProbe"):
            if probe in c:  # every path asks for the password: TCP checks
                assert c[probe]["tcpSocket"] == {"port": "metrics"}, (obj["metadata"]["name"], probe)
    for sm in (o for o in objects if o["kind"] == "ServiceMonitor"):
        ep = sm["spec"]["endpoints"][0]
        assert ep["scheme"] == "https" and ep["tlsConfig"]["ca"]["secret"]["name"] == "hpcwatch-tls"
        assert ep["basicAuth"]["password"] == {"name": "hpcwatch-scrape-auth", "key": "password"}
    # The example web config is what the agent reads, once the hash is a real one and the files exist.
    openssl = require_binary("openssl")
    subprocess.run([openssl, "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1", "-subj", "/CN=hpcwatch",
                    "-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")],
                   check=True, capture_output=True, timeout=120)
    text = open(os.path.join(where, "web-config.example.yml")).read()
    assert "REPLACE-WITH-A-BCRYPT-HASH" in text
    text = (text.replace("REPLACE-WITH-A-BCRYPT-HASH", bcrypt.hashpw(b"secret", bcrypt.gensalt(4)).decode())
            .replace("/etc/hpcwatch/tls/", str(tmp_path) + "/"))
    (tmp_path / "web-config.yml").write_text(text)
    cfg = load_web_config(str(tmp_path / "web-config.yml"))
    assert "prometheus" in cfg.users
