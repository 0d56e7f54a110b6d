"""No collector family carries a label name the shipped scrape configs set as a target label.

Prometheus attaches target labels (`job`, `instance`, the file_sd group's `cluster`, the relabelled
`node`) to every scraped series. A family label of the same name collides: without honor_labels the
exporter's value is renamed `exported_<label>`, with it the exporter's value replaces the target's,
and either way dashboards selecting on the target label (cluster=~"$cluster") break. The GPFS
cluster name was such a label (`cluster`, now `gpfs_cluster`); this test makes the next one fail CI.
Target labels are read from deploy/ as `hpcwatch generate` writes it; collectors are found the way
the registry finds them.
"""

from __future__ import annotations

import os
import re

import yaml
from hpcwatch.exporters import registry

from hpcwatch import metric_names as n

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PROMETHEUS_YML = os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")
SERVICE_MONITORS = os.path.join(ROOT, "deploy", "kubernetes", "base", "servicemonitors.yaml")
# Labels Prometheus sets on every target whatever the config says.
IMPLICIT_TARGET_LABELS = frozenset({"job", "instance"})
# The scrape jobs that read hpcwatch's agents (node_exporter's job reads no collector of ours).
AGENT_JOBS = {"node": n.NODE_AGENT_JOB, "cluster": n.CLUSTER_AGENT_JOB}
# (collector, label) pairs that carry the target label on purpose, with the same meaning, and why.
# Each must be scraped only by jobs with honor_labels (checked below), or Prometheus renames it.
SAME_MEANING = {
    ("slurm", "cluster"): "ClusterName from slurm.conf; HpcSchedulerMetricsMissing fires when it differs",
    ("flux", "cluster"): "--collector.flux.cluster; HpcSchedulerMetricsMissing fires when it differs",
    # hpc_scheduler_maintenance{node}: the node under maintenance, the name the node agents' `node` target
    # label carries; the per-node alerts' `unless on (cluster, node) hpc_scheduler_maintenance` joins on it.
    ("slurm", "node"): "a node in a MAINT reservation or drained for maintenance (Slurm NodeName = host name)",
    ("flux", "node"): "the neutral family the Flux adapter shares (it reports no maintenance yet)",
}
# Collisions known and not yet resolved: (collector, label) -> why it stays for now. Keep this empty;
# an entry is a bug with an issue, never a way to let a new label in.
# Collisions kept on purpose, each renamed by the shipped configs' metric relabelling: {(collector,
# label): the name the series carry in Prometheus}.
KNOWN_COLLISIONS = {
    # node_exporter's NUMA label on node_memory_numa_* (kept for drop-in compatibility): the `node`
    # target label renames it exported_node, which the shipped config moves to numa_node.
    ("node", "node"): "numa_node",
}
_COMMENTED_GROUP_LABELS = re.compile(r"^#\s+labels:\s*(\{.*\})\s*$", re.M)


def _prometheus_jobs() -> dict[str, dict]:
    with open(PROMETHEUS_YML, encoding="utf-8") as fh:
        return {j["job_name"]: j for j in yaml.safe_load(fh)["scrape_configs"]}


def file_sd_group_labels() -> frozenset[str]:
    """The target-group labels prometheus.yml tells operators to put in targets/*.yml (its header)."""
    with open(PROMETHEUS_YML, encoding="utf-8") as fh:
        found = [yaml.safe_load(m) for m in _COMMENTED_GROUP_LABELS.findall(fh.read())]
    assert found, f"{PROMETHEUS_YML}: no `#   labels: {{...}}` target-group example in its header"
    return frozenset(label for labels in found for label in labels)


def prometheus_target_labels() -> dict[str, frozenset[str]]:
    """{job: target label names} of the shipped prometheus.yml."""
    group = file_sd_group_labels()
    return {name: IMPLICIT_TARGET_LABELS | group
            | {r["target_label"] for r in job.get("relabel_configs", ()) if "target_label" in r}
            for name, job in _prometheus_jobs().items()}


def service_monitor_target_labels() -> dict[str, frozenset[str]]:
    """{ServiceMonitor name: target label names} of the shipped Kubernetes base."""
    with open(SERVICE_MONITORS, encoding="utf-8") as fh:
        docs = [d for d in yaml.safe_load_all(fh) if d and d.get("kind") == "ServiceMonitor"]
    return {d["metadata"]["name"]: IMPLICIT_TARGET_LABELS
            | {r["targetLabel"] for e in d["spec"]["endpoints"] for r in e.get("relabelings", ())
               if "targetLabel" in r}
            for d in docs}


def honoring_jobs() -> set[str]:
    """Jobs (and ServiceMonitors) whose exporters' labels win over target labels."""
    with open(SERVICE_MONITORS, encoding="utf-8") as fh:
        monitors = {d["metadata"]["name"] for d in yaml.safe_load_all(fh)
                    if d and d.get("kind") == "ServiceMonitor"
                    and all(e.get("honorLabels") for e in d["spec"]["endpoints"])}
    return {name for name, j in _prometheus_jobs().items() if j.get("honor_labels")} | monitors


def shipped_target_labels() -> frozenset[str]:
    """Every label a shipped scrape config sets on the targets that run hpcwatch's agents."""
    prom, k8s = prometheus_target_labels(), service_monitor_target_labels()
    return frozenset().union(*(prom[j] for j in AGENT_JOBS.values()), *(k8s[j] for j in AGENT_JOBS.values()))


def collisions() -> list[tuple[str, str, str]]:
    """(collector, family, label) of every family label that is also a shipped target label."""
    targets = shipped_target_labels()
    return [(name, spec.name, label)
            for name, cls in registry.load_all().items()
            for spec in getattr(cls, "families", {}).values()
            for label in spec.labels if label in targets]


def test_target_labels_are_read_from_the_shipped_configs():
    prom = prometheus_target_labels()
    assert set(AGENT_JOBS.values()) <= set(prom) and set(AGENT_JOBS.values()) <= set(service_monitor_target_labels())
    assert {"cluster", "node", "job", "instance"} <= shipped_target_labels()


def test_every_collector_declares_a_family_table():
    collectors = registry.load_all()
    assert "gpfs" in collectors and len(collectors) > 10
    for name, cls in collectors.items():
        assert len(getattr(cls, "families", ())) > 0, f"collector {name} has no family table to check"


def test_no_family_label_is_a_target_label():
    found = [(c, fam, label) for c, fam, label in collisions()
             if (c, label) not in SAME_MEANING and (c, label) not in KNOWN_COLLISIONS]
    assert not found, ("family labels named like a shipped target label (Prometheus overwrites one or "
                       "renames it exported_<label>; rename the family label, e.g. gpfs_cluster): "
                       + ", ".join(f"{c}: {fam}{{{label}}}" for c, fam, label in found))


def test_gpfs_names_its_cluster_gpfs_cluster():
    labels = {label for spec in registry.load_all()["gpfs"].families.values() for label in spec.labels}
    assert "gpfs_cluster" in labels and "cluster" not in labels


def test_same_meaning_labels_are_kept_by_honor_labels():
    collectors = registry.load_all()
    honoring = honoring_jobs()
    for (name, label), why in SAME_MEANING.items():
        assert (name, label) in {(c, lab) for c, _, lab in collisions()}, f"{name}/{label} no longer collides: drop it"
        for agent in collectors[name].default_agents:
            assert AGENT_JOBS[agent] in honoring, f"{name} `{label}` ({why}) is scraped without honor_labels"


def test_known_collisions_are_still_real():
    """An entry resolved elsewhere must leave the table, so the table never outlives its bug."""
    real = {(c, label) for c, _, label in collisions()}
    assert set(KNOWN_COLLISIONS) <= real, sorted(set(KNOWN_COLLISIONS) - real)


def _renames(rules: list[dict], src: str, dst: str, keys: tuple[str, str, str]) -> bool:
    """Whether metric relabel rules move label `src` to `dst` and drop `src`."""
    source, target, action = keys
    moved = any(r.get(source) == [src] and r.get(target) == dst for r in rules)
    dropped = any(r.get(action) == "labeldrop" and r.get("regex") == src for r in rules)
    return moved and dropped


def test_known_collisions_are_renamed_by_every_shipped_job_that_meets_them():
    """Each kept collision arrives as exported_<label>; every non-honoring job (and ServiceMonitor) that
    scrapes the collector moves it to its documented name, so dashboards can select it."""
    collectors, honoring = registry.load_all(), honoring_jobs()
    jobs = _prometheus_jobs()
    with open(SERVICE_MONITORS, encoding="utf-8") as fh:
        monitors = {d["metadata"]["name"]: d for d in yaml.safe_load_all(fh)
                    if d and d.get("kind") == "ServiceMonitor"}
    for (name, label), renamed in KNOWN_COLLISIONS.items():
        src = f"exported_{label}"
        scraped_by = {AGENT_JOBS[a] for a in collectors[name].default_agents} - honoring
        if name == "node":
            scraped_by.add(n.NODE_EXPORTER_JOB)  # the node_exporter peer job exposes the same families
        assert scraped_by, name
        for job in scraped_by:
            rules = jobs[job].get("metric_relabel_configs", [])
            assert _renames(rules, src, renamed, ("source_labels", "target_label", "action")), (job, rules)
            if job in monitors:
                for e in monitors[job]["spec"]["endpoints"]:
                    rules = e.get("metricRelabelings", [])
                    assert _renames(rules, src, renamed, ("sourceLabels", "targetLabel", "action")), (job, rules)
