"""hpcwatch.exporters.flux: the Flux adapter (parsers in `parse`, the collector in `collector`)."""

from hpcwatch.exporters.flux.collector import FluxCollector

__all__ = ["FluxCollector"]
