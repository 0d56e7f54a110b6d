"""collect[]/exclude[] with node_exporter's rules (collector/collector.go NewNodeCollector and the handler
in node_exporter.go): names, errors and their wording."""

import pytest
from hpcwatch.exporters.scrape import SelectionError, select

ENABLED = ["jobs", "node", "gpu"]
KNOWN = {"jobs", "node", "gpu", "slurm", "flux"}


@pytest.mark.parametrize(("collect", "exclude", "want"), [
    ([], [], None),                                  # no filter: everything
    (["node"], [], ["node"]),
    (["gpu", "node", "gpu"], [], ["node", "gpu"]),   # repeats are harmless; order is the agent's
    ([], ["gpu"], ["jobs", "node"]),
    ([], ["gpu", "slurm", "nonsense"], ["jobs", "node"]),  # exclude ignores names it cannot remove
    ([], ENABLED, []),                               # excluding all leaves only the exporter's own metrics
])
def test_selection(collect, exclude, want):
    assert select(ENABLED, KNOWN, collect, exclude) == want


@pytest.mark.parametrize(("collect", "exclude", "message"), [
    (["nonsense"], [], "Couldn't create filtered metrics handler: missing collector: nonsense"),
    (["slurm"], [], "Couldn't create filtered metrics handler: disabled collector: slurm"),
    (["node"], ["gpu"], "Combined collect and exclude queries are not allowed."),
])
def test_errors_read_as_node_exporter_writes_them(collect, exclude, message):
    with pytest.raises(SelectionError) as err:
        select(ENABLED, KNOWN, collect, exclude)
    assert str(err.value) == message
