"""RDMA fabric, cluster side (`fabric_switches`, snapshot): `parse` (ibnetdiscover, perfquery),
`collector` runs infiniband-diags and registers the collector.
"""
