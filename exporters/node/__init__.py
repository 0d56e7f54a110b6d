"""The `node` collector: host metrics from /proc and /sys. Importing the package registers it."""

from hpcwatch.exporters.node.collector import NodeCollector

__all__ = ["NodeCollector"]
