"""LNet (`lnet`, live, node agent): `collector` reads LNet's stats file or `lnetctl stats show`; the
parsers live with Lustre's (hpcwatch.exporters.lustre.lnet).
"""
