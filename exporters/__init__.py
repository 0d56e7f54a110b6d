"""hpcwatch.exporters: the serving core and one module per source."""
