"""Slurm job cgroups (`jobs`, live, node agent): `cgroupfs` parses cgroup files, `tree` finds and reads
job cgroups, `collector` registers the collector.
"""
