"""`hpcwatch dashboards`: write the Grafana dashboards as JSON files, or list them."""

from __future__ import annotations

import argparse
import os
import sys

HELP = """Write hpcwatch's Grafana 10 dashboards as JSON (one file per dashboard, named by uid).

Every dashboard reads the `datasource` variable, so the files work with Grafana file provisioning
and the Grafana sidecar as they are. SLO detail dashboards are written for each SLO given with
--slo SERVICE/NAME (repeatable) or found in the SLO specs given with --slo-specs.

examples:
  hpcwatch dashboards list
  hpcwatch dashboards write -o deploy/grafana/dashboards
  hpcwatch dashboards write -o /tmp/d --slo hpc/job-success --slo hpc/queue-wait
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("dashboards", help="write the Grafana dashboards as JSON", description=HELP,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    dsub = p.add_subparsers(dest="dashboards_command", metavar="ACTION")
    w = dsub.add_parser("write", help="write every dashboard's JSON into a directory")
    w.add_argument("-o", "--out", required=True, help="directory to write the JSON files into")
    _slo_args(w)
    w.set_defaults(func=run_write)
    ls = dsub.add_parser("list", help="list the dashboards (uid and title)")
    _slo_args(ls)
    ls.set_defaults(func=run_list)
    p.set_defaults(func=lambda _a: p.print_help() or 2)


def _slo_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slo", action="append", default=[], metavar="SERVICE/NAME",
                   help="add an SLO detail dashboard for this SLO (repeatable)")
    p.add_argument("--slo-specs", action="append", default=[], metavar="FILE|DIR",
                   help="add an SLO detail dashboard for every SLO in these specs (needs the SLO engine)")


def _refs(args: argparse.Namespace):
    from hpcwatch.dashboards import SLORef, slo_refs
    refs = []
    for item in args.slo:
        service, sep, name = item.partition("/")
        if not sep or not service or not name:
            raise SystemExit(f"hpcwatch dashboards: --slo {item!r}: expected SERVICE/NAME, e.g. hpc/job-success")
        refs.append(SLORef(service, name))
    if args.slo_specs:
        from hpcwatch.generate import load_slo_specs
        refs += slo_refs(load_slo_specs(args.slo_specs))
    return refs


def run_write(args: argparse.Namespace) -> int:
    from hpcwatch.dashboards import render_all

    from hpcwatch.outputs import write_files
    files = render_all(_refs(args))
    write_files({os.path.join(args.out, name): text for name, text in files.items()})
    print(f"wrote {len(files)} dashboards to {args.out}", file=sys.stderr)
    return 0


def run_list(args: argparse.Namespace) -> int:
    from hpcwatch.dashboards import build_all
    for d in build_all(_refs(args)):
        print(f"{d.uid}\t{d.title}")
    return 0
