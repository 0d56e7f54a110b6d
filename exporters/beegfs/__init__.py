"""BeeGFS (`beegfs`, snapshot, cluster agent): `clientstats` parses beegfs-ctl --clientstats,
`collector` runs it and registers the collector.
"""
