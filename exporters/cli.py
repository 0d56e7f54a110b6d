"""Registers `hpcwatch serve` with the top-level command."""

from __future__ import annotations

import argparse

from hpcwatch.exporters.registry import load_all
from hpcwatch.exporters.serve import SERVE_HELP, add_serve_arguments, run_serve


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("serve", help="run the exporter (node or cluster agent)", description=SERVE_HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    add_serve_arguments(p, load_all())
    p.set_defaults(func=run_serve)
