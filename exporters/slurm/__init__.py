"""hpcwatch.exporters.slurm: the Slurm adapter (parsers in `parse`, the collector in `collector`)."""

from hpcwatch.exporters.slurm.collector import SlurmCollector

__all__ = ["SlurmCollector"]
