"""The Flux adapter (`flux`, snapshot, cluster agent): `parse` (pure parsers), `collector` (reads
through `flux` and registers the collector on the shared scheduler adapter).
"""
