"""RDMA fabric, cluster side: the `fabric_switches` collector (switch counters and link map via infiniband-diags)."""

from hpcwatch.exporters.fabric_switches.collector import FabricSwitchesCollector

__all__ = ["FabricSwitchesCollector"]
