"""Kubernetes renderings of generated artifacts: PrometheusRule objects and dashboard ConfigMaps.

`hpcwatch generate` writes them into deploy/kubernetes/base so the kustomize base carries the
same rules and dashboards as deploy/prometheus and deploy/grafana.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

import yaml

PART_OF = {"app.kubernetes.io/part-of": "hpcwatch"}


def _dns_name(name: str) -> str:
    """A DNS-1123 name from any string (object names must be lower-case alphanumerics and '-')."""
    out = re.sub(r"[^a-z0-9-]+", "-", name.lower()).strip("-")
    return out[:63].rstrip("-") or "hpcwatch"


def prometheus_rule(name: str, rule_file: Mapping) -> dict:
    """A monitoring.coreos.com/v1 PrometheusRule holding the groups of one Prometheus rule file."""
    return {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": _dns_name(name), "labels": {**PART_OF, "prometheus": "k8s", "role": "alert-rules"}},
        "spec": {"groups": list(rule_file.get("groups", []))},
    }


def dashboard_configmap(name: str, dashboard_json: Mapping) -> dict:
    """A ConfigMap the Grafana sidecar picks up (label grafana_dashboard: "1")."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": _dns_name(f"hpcwatch-dashboard-{name}"),
                     "labels": {**PART_OF, "grafana_dashboard": "1"},
                     "annotations": {"grafana_folder": "hpcwatch"}},
        "data": {f"{_dns_name(name)}.json": json.dumps(dashboard_json, indent=1, sort_keys=True)},
    }


def dump_all(objects: list[dict], header: str) -> str:
    """Objects as one multi-document YAML file, stamped with how it was generated."""
    body = yaml.safe_dump_all(objects, sort_keys=True, default_flow_style=False, width=120)
    return header + body
