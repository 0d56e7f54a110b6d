"""RDMA fabric, node side (`fabric`, live): `pma` (counter tables) and `sysfs` (pure parser),
`collector` reads sysfs and registers the collector.
"""
