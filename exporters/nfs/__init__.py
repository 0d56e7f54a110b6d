"""NFS client statistics (`nfs`, live, node agent) from mountstats."""

from hpcwatch.exporters.nfs import collector  # noqa: F401  (importing registers the collector)
