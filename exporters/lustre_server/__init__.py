"""Lustre OSS/MDS (`lustre_server`, snapshot, cluster agent): job_stats, target stats, capacity and
recovery; parsers and reader are shared with `hpcwatch.exporters.lustre`.
"""
