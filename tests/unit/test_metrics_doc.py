"""docs/metrics.md is generated from the code and kept fresh; every documented family follows the
naming conventions and every collector's fixture exposition passes promtool."""

import os
import subprocess
import sys

import pytest
from helpers import assert_promtool_clean
from hpcwatch.exporters.registry import load_all

from hpcwatch.docexamples import examples as doc_examples
from hpcwatch.metricsdoc import _render, document, families_of

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# node_ is node_exporter's: the node collector keeps its exact names (docs/node-exporter-compat.md).
PREFIXES = ("node_", "hpc_node_", "hpc_job_", "hpc_energy_", "hpc_gpu_", "hpc_fabric_", "hpc_lustre_", "hpc_gpfs_",
            "hpc_nfs_",
            "hpc_beegfs_", "hpc_scheduler_", "hpc_slurm_", "hpc_flux_", "hpcwatch_")


def test_metrics_reference_is_fresh():
    # A fresh process, as `hpcwatch docs metrics` runs: process-wide self-metrics (parse-error
    # counts) left by other tests must not leak into the reference.
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "hpcwatch"), "docs", "metrics",
                           "--repo", ROOT, "--check"], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]


def test_document_is_deterministic():
    assert document(ROOT) == document(ROOT)


def test_check_flag_reports_stale(tmp_path):
    (tmp_path / "docs").mkdir()
    (tmp_path / "docs" / "metrics.md").write_text("old\n")
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), "hpcwatch"), "docs", "metrics",
                           "--repo", str(tmp_path), "--check"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1 and "stale" in proc.stderr


@pytest.mark.parametrize("name", sorted(load_all()))
def test_every_collector_documents_conventional_families(name):
    examples = doc_examples(name, ROOT)
    assert examples, f"collector {name} has no example in hpcwatch/docexamples.py: its families would be undocumented"
    fams = {}
    for example in examples:  # one scrape per example, as one exporter would serve it
        text = _render([example])
        assert_promtool_clean(text)
        fams.update(families_of(text))
    own = [f for f in fams if not f.startswith("hpcwatch_")]
    assert own, f"collector {name} rendered no families of its own on its fixtures"
    for fam, (_typ, help_text, _labels) in fams.items():
        assert fam.startswith(PREFIXES), f"{fam}: unknown prefix"
        assert len(help_text) >= 10, f"{fam}: HELP too short: {help_text!r}"
    # Family specs are data, and the data is the truth: what is rendered is what the table declares.
    table = load_all()[name].families
    for fam, (typ, help_text, label_names) in fams.items():
        spec = table.spec_of(fam)
        if spec is None and (fam.startswith("hpcwatch_") or table.passthrough):
            continue  # the scrape's own health families (scrape.py, selfmetrics.py), or a textfile's own
        assert spec is not None, f"{name} renders {fam}, which its family table does not declare"
        assert typ == spec.type, f"{fam}: rendered as {typ}, declared {spec.type}"
        if not spec.fields:  # a templated family's HELP names its field
            assert help_text == spec.help, f"{fam}: HELP differs from the table"
        assert label_names <= set(spec.labels), f"{fam}: labels {label_names} not in {spec.labels}"
