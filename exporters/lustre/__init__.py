"""Lustre client (`lustre`, live, node agent): `stats`/`jobstats`/`target`/`brw`/`health`/`lnet` parse,
`reader` finds files and runs lctl, `collector` registers the client collector. The server side is
`lustre_server`; host-wide health and LNet are `lustre_health` and `lnet`, which use these parsers.
"""
