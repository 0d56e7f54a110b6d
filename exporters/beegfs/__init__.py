"""BeeGFS (`beegfs`, snapshot, cluster agent): beegfs-ctl --clientstats for meta and storage servers."""

from hpcwatch.exporters.beegfs import collector  # noqa: F401  (importing registers the collector)
