"""The Slurm adapter (`slurm`, snapshot, cluster agent): `parse` (pure parsers), `collector` (reads
through the Slurm commands and registers the collector on the shared scheduler adapter).
"""
