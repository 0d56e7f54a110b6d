"""`hpcwatch job report JOBID` and `hpcwatch job compact`: per-job reports from the summary dataset,
or from sacct and Prometheus while the job runs (or before its summary is written)."""

from __future__ import annotations

import argparse
import os
import re
import shutil
import sys
import time

DEFAULT_DATASET = "/var/lib/hpcwatch/jobs"
JOBID = re.compile(r"^\d{1,20}(?:_\d{1,10})?$")

REPORT_HELP = """Report on one job: per node and per GPU usage, efficiency, energy, cost, and notes that
say what to change next time, with the link to its Grafana dashboard.

A finished job is read from the summary dataset the cluster agent writes (so the report works
long after Prometheus has forgotten the job); a running job, or one whose summary is not written
yet, from sacct and Prometheus.

examples:
  hpcwatch job report 123456
  hpcwatch job report 123456_7 --format json
  hpcwatch job report 123456 --dataset /srv/hpcwatch/jobs --prometheus http://prom:9090 \\
      --grafana-url https://grafana.example.org --prices /etc/hpcwatch/prices.yaml
"""


def register(sub: argparse._SubParsersAction) -> None:
    job = sub.add_parser("job", help="per-job reports from the summary dataset (job report JOBID)")
    jsub = job.add_subparsers(dest="job_command", metavar="SUBCOMMAND")
    r = jsub.add_parser("report", help="usage, efficiency, energy, cost and notes of one job",
                        description=REPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("jobid", help="job id (123) or array task (123_4)")
    r.add_argument("--cluster", default="", help="cluster name (default: any; sacct's own cluster when asking it)")
    r.add_argument("--dataset", default=os.environ.get("HPCWATCH_DATASET", DEFAULT_DATASET),
                   help=f"summary dataset directory (default: $HPCWATCH_DATASET or {DEFAULT_DATASET})")
    r.add_argument("--prometheus", default=os.environ.get("HPCWATCH_PROMETHEUS", ""), metavar="URL",
                   help="Prometheus for running jobs (default: $HPCWATCH_PROMETHEUS)")
    r.add_argument("--sacct", default="", help="sacct binary for running jobs (default: sacct on PATH)")
    r.add_argument("--prices", default=os.environ.get("HPCWATCH_PRICES", ""), metavar="FILE",
                   help="price table for running jobs (default: $HPCWATCH_PRICES; finished jobs keep their cost)")
    r.add_argument("--grafana-url", default=os.environ.get("HPCWATCH_GRAFANA_URL", ""), metavar="URL",
                   help="Grafana base URL for the dashboard link (default: $HPCWATCH_GRAFANA_URL)")
    r.add_argument("--format", choices=("text", "json"), default="text")
    r.add_argument("--timeout", type=float, default=20.0, help="seconds each sacct or Prometheus call may take")
    r.set_defaults(func=run_report)
    c = jsub.add_parser("compact", help="merge each partition of the summary dataset into one sorted file")
    c.add_argument("--dataset", default=os.environ.get("HPCWATCH_DATASET", DEFAULT_DATASET))
    c.set_defaults(func=run_compact)
    job.set_defaults(func=lambda _a: job.print_help() or 2)


def _error(msg: str) -> int:
    print(f"error: {msg}", file=sys.stderr)
    return 2


def run_report(args: argparse.Namespace) -> int:
    from hpcwatch.accounting import lookup
    from hpcwatch.accounting.report import render_json, render_text

    if not JOBID.match(args.jobid):
        return _error(f"job id {args.jobid!r}: expected digits, or digits_digits for an array task")
    summary, source = None, ""
    if os.path.isdir(args.dataset):
        try:
            summary = lookup.find(args.dataset, args.jobid, args.cluster or None)
        except lookup.LookupError_ as exc:
            return _error(str(exc))
        source = f"summary dataset {args.dataset}"
    if summary is None:
        try:
            summary, source = _live(args)
        except LookupError as exc:
            return _error(str(exc))
    out = render_json if args.format == "json" else render_text
    sys.stdout.write(out(summary, source, args.grafana_url))
    return 0


def _live(args: argparse.Namespace):
    """A summary built now from sacct and Prometheus (running job, or summary not written yet)."""
    from hpcwatch.accounting.enrich import JobWindow, enrich
    from hpcwatch.accounting.prices import PriceTableError, load_price_table
    from hpcwatch.accounting.sacct import read_details
    from hpcwatch.accounting.summary import build_summary
    from hpcwatch.exporters.command import CommandError
    from hpcwatch.slo.history.prom import PrometheusClient

    sacct = args.sacct or shutil.which("sacct")
    if not sacct:
        raise LookupError(f"job {args.jobid} is not in the summary dataset {args.dataset}, and there is no sacct "
                          "here to ask about it (use --dataset, or run on a host with the Slurm client)")
    env = dict(os.environ, SLURM_TIME_FORMAT="standard", LC_ALL="C", TZ="UTC")
    try:
        details, _ = read_details(sacct, [args.jobid], env=env, timeout=args.timeout)
    except CommandError as exc:
        raise LookupError(f"job {args.jobid}: sacct failed: {exc}") from None
    detail = next((d for d in details.values() if d.jobid == args.jobid or d.jobid_raw == args.jobid), None)
    if detail is None:
        raise LookupError(f"job {args.jobid} is neither in the summary dataset {args.dataset} nor known to sacct")
    cluster = args.cluster or detail.cluster
    found, error = None, "Prometheus not given (--prometheus)"
    if args.prometheus and detail.start is not None:
        end = detail.end if detail.end is not None else time.time()
        got, errors = enrich(PrometheusClient(args.prometheus, args.timeout),
                             [JobWindow(detail.jobid, detail.start, end)], cluster)
        found, error = got.get(detail.jobid), ("prometheus: " + errors[0]) if errors else None
    prices = None
    if args.prices:
        try:
            prices = load_price_table(args.prices)
        except PriceTableError as exc:
            raise LookupError(str(exc)) from None
    summary = build_summary(cluster, detail.jobid, None, detail, found, error, prices)
    running = detail.end is None
    return summary, ("sacct and Prometheus (running job)" if running else
                     "sacct and Prometheus (finished; its summary is not in the dataset yet)")


def run_compact(args: argparse.Namespace) -> int:
    from hpcwatch.accounting.store import StoreError, SummaryStore

    if not os.path.isdir(args.dataset):
        return _error(f"{args.dataset}: no such dataset directory")
    try:
        n = SummaryStore(args.dataset).compact()
    except StoreError as exc:
        return _error(str(exc))
    print(f"compacted {n} partitions of {args.dataset}", file=sys.stderr)
    return 0
