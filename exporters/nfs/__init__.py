"""NFS client statistics (`nfs`, live, node agent): `mountstats` parses, `collector` reads
/proc/<pid>/mountstats and registers the collector.
"""
