"""Textfile metrics (`textfile`, live, node agent): `textformat` parses the Prometheus text format,
`collector` reads the `*.prom` files node_exporter's textfile collector reads.
"""
