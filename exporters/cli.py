"""Registers `hpcwatch serve` with the top-level command."""

from __future__ import annotations

import argparse

from hpcwatch.exporters.registry import load_all
from hpcwatch.exporters.serve import add_serve_arguments, parser_settings, run_serve


def register(sub: argparse._SubParsersAction) -> None:
    registry = load_all()
    p = sub.add_parser("serve", help="run the exporter (node or cluster agent)", **parser_settings(registry))
    add_serve_arguments(p, registry)
    p.set_defaults(func=run_serve)
