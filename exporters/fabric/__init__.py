"""RDMA fabric, node side: the `fabric` collector (InfiniBand, RoCE and Omni-Path ports in sysfs)."""

from hpcwatch.exporters.fabric.collector import FabricCollector

__all__ = ["FabricCollector"]
