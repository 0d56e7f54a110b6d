"""hpcwatch.exporters.energy: node energy (RAPL, GPUs, a node power meter) attributed to the jobs on the node."""

from hpcwatch.exporters.energy.collector import EnergyCollector

__all__ = ["EnergyCollector"]
