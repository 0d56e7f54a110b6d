"""The `node` and `textfile` collectors: node_exporter's host metrics from /proc and /sys, and the
metrics scripts write to *.prom files. Importing the package registers both."""

from hpcwatch.exporters.node.collector import NodeCollector
from hpcwatch.exporters.node.textfile import TextfileCollector

__all__ = ["NodeCollector", "TextfileCollector"]
