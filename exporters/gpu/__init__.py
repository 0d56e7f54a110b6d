"""NVIDIA GPUs (`gpu`, live, node agent): `fields`/`xid`/`jobs` parse, `nvml` is the reader, `families`
the family table, `collector` registers the collector.
"""
