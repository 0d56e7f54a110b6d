"""The one `hpcwatch` command. Subcommands live with their code; each module exposes `register(subparsers)`."""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from hpcwatch.logs import setup_logging
from hpcwatch.outputs import describe
from hpcwatch.version import __version__

DESCRIPTION = """hpcwatch: job-aware observability for HPC clusters.

Exporters for nodes, jobs, GPUs, the RDMA fabric, parallel filesystems and the batch scheduler;
an SLO engine that writes Prometheus rules, burn-rate alerts and their tests; Grafana dashboards
and Alertmanager routing as code.
"""

EPILOG = """common tasks:
  hpcwatch serve                        start the node agent on :19466
  hpcwatch serve --agent cluster        start the cluster agent (Slurm/Flux) on :19467
  hpcwatch slo generate -i slos/ -o rules/   SLO specs to Prometheus rules, alerts and promtool tests
  hpcwatch slo report --spec slos/ --jobs sacct.txt --format html -o report.html
                                        replay SLOs over job history: budgets, burn, when alerts fire
  hpcwatch job report 123456            usage, efficiency, energy, cost and notes of one job
  hpcwatch usage report --month 2026-03 --by account,user   usage, cost and waste by group
  hpcwatch act --partition gpu          Alertmanager webhook: cancel jobs keeping GPUs idle (dry run by default)
  hpcwatch generate                     write the default artifacts under deploy/
  hpcwatch demo                         (root, Debian 12) Slurm + agents + Prometheus + Alertmanager here
  hpcwatch <command> --help             details of one command
"""

# Each module adds its subcommand(s) with register(subparsers).
COMMAND_MODULES = (
    "hpcwatch.exporters.cli",
    "hpcwatch.slo.cli",
    "hpcwatch.dashboards.cli",
    "hpcwatch.alerts.cli",
    "hpcwatch.alerts.actcli",
    "hpcwatch.generate",
    "hpcwatch.demo",
    "hpcwatch.metricsdoc",
    "hpcwatch.accounting.cli",
)


# Commands that build only their own parser instead of importing every command module (dashboards and
# SLO history pull in pandas and grafanalib, ~1 s of CPU and tens of MB): `job` and `usage` run
# interactively, and `serve` is the agent on every compute node, whose memory is taken from the jobs.
QUICK_COMMANDS: dict[str, tuple[str, ...]] = {
    "job": ("hpcwatch.accounting.cli",), "usage": ("hpcwatch.accounting.cli",), "serve": ("hpcwatch.exporters.cli",),
    "version": ()}


def build_parser(modules: Sequence[str] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hpcwatch", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=f"hpcwatch {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    v = sub.add_parser("version", help="print the version")
    v.set_defaults(func=lambda _a: print(f"hpcwatch {__version__}") or 0)
    for module in modules:
        importlib.import_module(module).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    quick = QUICK_COMMANDS.get(args_list[0]) if args_list else None
    parser = build_parser(COMMAND_MODULES if quick is None else quick)
    args = parser.parse_args(args_list)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    setup_logging(getattr(args, "log_level", "info"), getattr(args, "log_format", "logfmt"))
    try:
        return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:
        # A path that cannot be read or written: `error: PATH: reason`, never a traceback.
        message = describe(exc)
        if message is None:
            raise
        print(f"error: {message}", file=sys.stderr)
        return 1


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
