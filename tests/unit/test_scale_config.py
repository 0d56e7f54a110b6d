"""deploy/scale as generated: each Prometheus shard is the shipped scrape config plus its hashmod share,
vmagent scrapes the shipped configs unchanged, and the real tools accept every file."""

from __future__ import annotations

import os
import subprocess

import helpers
import yaml

from hpcwatch import promconfig, scaleconfig

DEPLOY = os.path.join(os.path.dirname(__file__), "..", "..", "deploy")
RULES = os.path.join(DEPLOY, "prometheus", "rules")


def load(rel: str) -> dict:
    with open(os.path.join(DEPLOY, rel)) as fh:
        return yaml.safe_load(fh)


def shipped() -> dict:
    return yaml.safe_load(promconfig.render(""))


def test_each_shard_is_the_shipped_scrape_config_plus_its_hashmod_share():
    want = shipped()["scrape_configs"]
    for shard in range(scaleconfig.SHARDS):
        cfg = load(scaleconfig.shard_path(shard))
        for job, ref in zip(cfg["scrape_configs"], want, strict=True):
            relabel = job["relabel_configs"]
            assert relabel[:2] == [
                {"source_labels": ["__address__"], "modulus": scaleconfig.SHARDS, "target_label": "__tmp_hash",
                 "action": "hashmod"},
                {"source_labels": ["__tmp_hash"], "regex": str(shard), "action": "keep"}]
            assert {**job, "relabel_configs": relabel[2:]} == ref
        assert cfg["remote_write"][0]["url"].endswith("/api/v1/write")
        assert "rule_files" not in cfg and "alerting" not in cfg  # rules run once, on vmalert


def test_vmagent_scrapes_the_shipped_configs_less_the_prometheus_only_fields():
    want = [{k: v for k, v in job.items() if k not in promconfig.PROMETHEUS_ONLY_FIELDS}
            for job in shipped()["scrape_configs"]]
    assert load(scaleconfig.VMAGENT_CONFIG)["scrape_configs"] == want
    assert all(job["sample_limit"] > 0 for job in want)  # the limit vmagent knows is kept


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True, timeout=120, check=False)


def test_promtool_vmagent_and_vmalert_accept_the_files():
    promtool = helpers.require_binary("promtool")
    for shard in range(scaleconfig.SHARDS):
        proc = _run(promtool, "check", "config", os.path.join(DEPLOY, scaleconfig.shard_path(shard)))
        assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = _run(helpers.require_binary("vmagent"), "-dryRun",
                f"-promscrape.config={os.path.join(DEPLOY, scaleconfig.VMAGENT_CONFIG)}")
    assert proc.returncode == 0, proc.stderr[-2000:]
    proc = _run(helpers.require_binary("vmalert"), "-dryRun", f"-rule={RULES}/*.yml")
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_kustomize_overlay_renders_vmagent_cluster_members_and_vmalert_on_the_shipped_rules():
    proc = _run(helpers.require_binary("kubectl"), "kustomize", os.path.join(DEPLOY, "scale", "kubernetes"))
    assert proc.returncode == 0, proc.stderr
    objects = {(o["kind"], o["metadata"]["name"]): o for o in yaml.safe_load_all(proc.stdout) if o}
    agent = objects[("StatefulSet", "vmagent")]
    assert agent["spec"]["replicas"] == scaleconfig.SHARDS
    args = agent["spec"]["template"]["spec"]["containers"][0]["args"]
    assert f"-promscrape.cluster.membersCount={scaleconfig.SHARDS}" in args
    assert "-promscrape.cluster.memberNum=$(POD_NAME)" in args
    rules = objects[("ConfigMap", "hpcwatch-rules")]["data"]
    for name in sorted(os.listdir(RULES)):
        if name.endswith(".yml"):
            with open(os.path.join(RULES, name)) as fh:
                assert rules[name] == fh.read()
    assert ("DaemonSet", "hpcwatch-node") in objects  # the base comes along


def test_systemd_units_verify_as_instances(tmp_path):
    analyze = helpers.require_binary("systemd-analyze")
    units = os.path.join(DEPLOY, "scale", "systemd")
    paths = []
    for name in sorted(os.listdir(units)):
        with open(os.path.join(units, name)) as fh:
            path = tmp_path / name.replace("@.", "@1.")
            path.write_text(fh.read())
            paths.append(str(path))
    proc = _run(analyze, "verify", *paths)
    assert proc.returncode == 0 and not proc.stderr.strip(), proc.stderr
