"""Lustre: `lustre` (client, live, node agent) and `lustre_server` (OSS/MDS job_stats, snapshot, cluster agent)."""

from hpcwatch.exporters.lustre import client, server  # noqa: F401  (importing registers the collectors)
