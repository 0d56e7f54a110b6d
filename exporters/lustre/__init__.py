"""Lustre: `lustre` (client, live, node agent), `lustre_server` (OSS/MDS job_stats, brw_stats, snapshot,
cluster agent), `lustre_health` and `lnet` (host-wide, live, node agent)."""

from hpcwatch.exporters.lustre import client, host, server  # noqa: F401  (importing registers the collectors)
