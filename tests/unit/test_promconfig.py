"""The shipped Prometheus config: targets only through file_sd, `cluster` from target labels, the
cluster agent's own labels kept; and no dashboard hides absence behind `or vector(0)`."""

from __future__ import annotations

import json
import os
import re

import yaml

from hpcwatch import metric_names as n
from hpcwatch import promconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _config() -> dict:
    with open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml"), encoding="utf-8") as fh:
        return yaml.safe_load(fh)


def test_every_target_comes_from_file_sd():
    cfg = _config()
    jobs = {j["job_name"]: j for j in cfg["scrape_configs"]}
    assert set(jobs) == {n.NODE_AGENT_JOB, n.CLUSTER_AGENT_JOB, n.NODE_EXPORTER_JOB}
    for name, job in jobs.items():
        assert "static_configs" not in job, f"{name}: an address in prometheus.yml"
        assert job["file_sd_configs"] == [{"files": [promconfig.TARGET_FILES[name]]}]
    (am,) = cfg["alerting"]["alertmanagers"]
    assert am == {"file_sd_configs": [{"files": [promconfig.TARGET_FILES["alertmanager"]]}]}
    assert cfg["rule_files"] == ["rules/*.yml"]


def test_cluster_label_story():
    jobs = {j["job_name"]: j for j in _config()["scrape_configs"]}
    # Only the cluster agent's own labels win (the scheduler families' cluster from slurm.conf).
    assert [name for name, j in jobs.items() if j.get("honor_labels")] == [n.CLUSTER_AGENT_JOB]
    for job in jobs.values():
        (relabel,) = job["relabel_configs"]
        assert relabel["target_label"] == "node" and re.fullmatch(relabel["regex"], "cn001:19466")
    assert re.fullmatch(n.EXPORTER_JOB_RE, n.NODE_AGENT_JOB) and re.fullmatch(n.EXPORTER_JOB_RE, n.CLUSTER_AGENT_JOB)


def test_no_dashboard_answers_zero_for_nothing():
    for path in sorted(os.listdir(os.path.join(ROOT, "deploy", "grafana", "dashboards"))):
        with open(os.path.join(ROOT, "deploy", "grafana", "dashboards", path), encoding="utf-8") as fh:
            text = json.dumps(json.load(fh))
        assert "vector(0)" not in text, f"{path}: `or vector(0)` shows a reassuring 0 where nothing matches"
