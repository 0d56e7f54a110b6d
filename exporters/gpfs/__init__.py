"""IBM Storage Scale / GPFS (`gpfs`, snapshot): mmpmon fs_io_s, mmdf -Y, mmhealth node show -Y."""

from hpcwatch.exporters.gpfs import collector  # noqa: F401  (importing registers the collector)
