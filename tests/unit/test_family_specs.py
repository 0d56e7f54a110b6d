"""Family specs are data, and the data is the truth: every collector declares its families in a table
(rendered families are held to it in test_metrics_doc.py), and hpcwatch/metric_names.py, which the
dashboards and alerts read, names only declared families."""

from __future__ import annotations

import os

import pytest
from hpcwatch.exporters.families import FamilySpec, FamilyTable
from hpcwatch.exporters.registry import load_all

from hpcwatch import metric_names
from hpcwatch.docexamples import examples
from hpcwatch.metricsdoc import _render, families_of

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PREFIX = {"node": ("node_", "hpc_node_"), "textfile": "node_textfile_", "jobs": "hpc_job_", "gpu": "hpc_gpu_",
          "energy": ("hpc_job_energy_", "hpc_energy_"), "fabric": "hpc_fabric_", "fabric_switches": "hpc_fabric_",
          "lustre": "hpc_lustre_", "lustre_server": "hpc_lustre_", "lustre_health": "hpc_lustre_",
          "lnet": "hpc_lustre_lnet_", "gpfs": "hpc_gpfs_", "nfs": "hpc_nfs_", "beegfs": "hpc_beegfs_",
          "slurm": ("hpc_scheduler_", "hpc_slurm_"), "flux": ("hpc_scheduler_", "hpc_flux_")}


def health_families() -> set[str]:
    """The exporter's own families, as a scrape of a snapshot collector carries them."""
    return {f for f in families_of(_render(examples("beegfs", ROOT))) if f.startswith("hpcwatch_")}


@pytest.mark.parametrize("name", sorted(load_all()))
def test_every_collector_declares_its_families(name):
    """Each table is checked against what the collector renders in test_metrics_doc.py (one render)."""
    table = load_all()[name].families
    assert isinstance(table, FamilyTable) and table, f"collector {name} declares no families"
    for spec in table.values():
        assert spec.name.startswith(PREFIX[name]) or spec.name.startswith("hpcwatch_"), spec.name


def test_metric_names_only_names_declared_families():
    """Dashboards and alerts read names from metric_names.py; each must be a family some collector declares."""
    declared = [cls.families for cls in load_all().values()]
    health = health_families()
    for name in metric_names.all_metric_names():
        if name.startswith("hpcwatch_"):
            assert name in health or any(t.spec_of(name) for t in declared), f"{name}: no collector declares it"
        elif name.startswith("hpc_"):
            assert any(t.spec_of(name) for t in declared), f"metric_names.py names {name}; no collector declares it"


def test_specs_reject_what_prometheus_would():
    with pytest.raises(ValueError, match="_total"):
        FamilySpec("hpc_x_events", "counter", "Events.")
    with pytest.raises(ValueError, match="_total"):
        FamilySpec("hpc_x_total", "gauge", "A gauge.")
    with pytest.raises(ValueError, match="declared twice"):
        FamilyTable([FamilySpec("hpc_x", "gauge", "X."), FamilySpec("hpc_x", "gauge", "X.")])
    template = FamilySpec("hpc_x_{field}_bytes", "gauge", "X.")
    assert template.matches("hpc_x_mem_total_bytes") and not template.matches("hpc_y_bytes")
    assert template.new(field="a").name == "hpc_x_a_bytes"
    assert FamilySpec("hpc_x_total", "counter", "X.", ("a",)).new().name == "hpc_x"
