"""Lustre health (`lustre_health`, live, node agent): `collector` reads health_check; the parser lives
with Lustre's (hpcwatch.exporters.lustre.health).
"""
