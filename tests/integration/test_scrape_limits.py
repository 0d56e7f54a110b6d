"""The scrape limits of the shipped prometheus.yml through the real tools: promtool accepts the file, and
vmagent accepts its scrape jobs once the Prometheus-only fields (promconfig.PROMETHEUS_ONLY_FIELDS) are
left out, and refuses them otherwise (so the list stays true)."""

from __future__ import annotations

import copy
import os
import subprocess

import helpers
import yaml

from hpcwatch import promconfig

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SHIPPED = os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")


def _shipped_jobs() -> list[dict]:
    with open(SHIPPED, encoding="utf-8") as fh:
        return yaml.safe_load(fh)["scrape_configs"]


def _vmagent_dry_run(tmp_path, jobs: list[dict]) -> subprocess.CompletedProcess:
    path = tmp_path / "scrape.yml"
    path.write_text(yaml.safe_dump({"scrape_configs": jobs}))
    return subprocess.run([helpers.require_binary("vmagent"), f"-promscrape.config={path}",
                           "-promscrape.config.dryRun"], capture_output=True, text=True, timeout=60, check=False,
                          cwd=str(tmp_path))


def test_promtool_accepts_the_limits():
    proc = subprocess.run([helpers.require_binary("promtool"), "check", "config", "--syntax-only", SHIPPED],
                          capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert all(job["sample_limit"] > 0 and job["label_limit"] > 0 for job in _shipped_jobs())


def test_vmagent_takes_the_scrape_jobs_without_the_prometheus_only_fields(tmp_path):
    jobs = _shipped_jobs()
    stripped = copy.deepcopy(jobs)
    for job in stripped:
        for field in promconfig.PROMETHEUS_ONLY_FIELDS:
            job.pop(field)
    ok = _vmagent_dry_run(tmp_path, stripped)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    refused = _vmagent_dry_run(tmp_path, jobs)
    assert refused.returncode != 0
    for field in promconfig.PROMETHEUS_ONLY_FIELDS:
        assert field in refused.stdout + refused.stderr
