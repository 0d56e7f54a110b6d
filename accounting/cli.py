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


USAGE_HELP = """Usage over a period, grouped by cluster, account, user or partition (any combination): jobs by
outcome, core- and GPU-hours, CPU, GPU and memory efficiency, energy, cost, waste (idle CPU-hours,
GPU-hours below a utilisation threshold, memory allocated and never used) and queue wait p50/p90.

Reads the summary dataset the cluster agent writes. Usage counts the part of each run inside the
period; job counts and waits, the jobs that ended in it. Times are UTC.

examples:
  hpcwatch usage report --month 2026-03                              # by account, as text
  hpcwatch usage report --from 2026-01-01 --to 2027-01-01 --by account,user --format csv -o 2026.csv
  hpcwatch usage report --month 2026-03 --by partition --prices /etc/hpcwatch/prices.yaml
  hpcwatch usage report --from 2026-01-01 --format html -o usage.html   # charts for the director
"""


RULES_HELP = """Prometheus recording rules that price running jobs with your price table: spend and waste per
hour by job, account (and partition) and user, by resource (cpu, memory, gpu, energy), from the node
agents' allocation series. Load the file beside the other rules; the Executive dashboard reads it.

examples:
  hpcwatch usage rules --prices /etc/hpcwatch/prices.yaml -o /etc/prometheus/rules/hpcwatch-spend.rules.yml
  hpcwatch usage rules --prices prices.yaml -o spend.rules.yml --tests spend.test.yml
  promtool test rules spend.test.yml
"""


def register(sub: argparse._SubParsersAction) -> None:
    register_usage(sub)
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


def register_usage(sub: argparse._SubParsersAction) -> None:
    usage = sub.add_parser("usage", help="usage, efficiency, cost and waste over a period (usage report)")
    usub = usage.add_subparsers(dest="usage_command", metavar="SUBCOMMAND")
    r = usub.add_parser("report", help="usage, efficiency, energy, cost, waste and queue wait by group",
                        description=USAGE_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--from", dest="start", default="", metavar="WHEN",
                   help="start of the period: 2026-03-01 or 2026-03-01T12:00 UTC (default: 30 days before --to)")
    r.add_argument("--to", dest="end", default="now", metavar="WHEN",
                   help="end of the period, exclusive (default: now)")
    r.add_argument("--month", default="", metavar="YYYY-MM", help="one calendar month (instead of --from/--to)")
    r.add_argument("--by", default="account", metavar="DIMS",
                   help="comma-separated grouping: cluster, account, user, partition (default: account)")
    r.add_argument("--cluster", action="append", default=[], help="only this cluster (repeat for several)")
    r.add_argument("--dataset", default=os.environ.get("HPCWATCH_DATASET", DEFAULT_DATASET),
                   help=f"summary dataset directory (default: $HPCWATCH_DATASET or {DEFAULT_DATASET})")
    r.add_argument("--prices", default="", metavar="FILE",
                   help="re-price every run under this price table (default: the cost written with each summary)")
    r.add_argument("--gpu-idle-below", type=float, default=None, metavar="RATIO",
                   help="a GPU whose mean utilisation is below this is wasted (default: job report's gpu_idle, 0.05)")
    r.add_argument("--format", choices=("text", "csv", "json", "html"), default="text")
    r.add_argument("-o", "--output", default="-", metavar="FILE|-", help="output file (default: stdout)")
    r.set_defaults(func=run_usage)
    rr = usub.add_parser("rules", help="recording rules of live spend and waste from a price table",
                         description=RULES_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    rr.add_argument("--prices", required=True, metavar="FILE", help="the price table (YAML)")
    rr.add_argument("--gpu-idle-below", type=float, default=None, metavar="RATIO",
                    help="a GPU whose utilisation over 10 minutes is below this is wasted (default: 0.05)")
    rr.add_argument("-o", "--output", default="-", metavar="FILE|-", help="rule file (default: stdout)")
    rr.add_argument("--tests", default="", metavar="FILE", help="also write promtool tests of the rules here")
    rr.set_defaults(func=run_rules)
    usage.set_defaults(func=lambda _a: usage.print_help() or 2)


def _usage_query(args: argparse.Namespace):
    from hpcwatch.accounting import usage
    from hpcwatch.accounting.prices import PriceTableError, load_price_table
    from hpcwatch.accounting.rules import GPU_IDLE

    if args.month:
        if args.start or args.end != "now":
            raise usage.UsageError("--month takes the place of --from and --to: give one or the other")
        start, end = usage.month_period(args.month)
    else:
        end = usage.parse_when(args.end, "--to")
        start = usage.parse_when(args.start, "--from") if args.start else end - 30 * 86400
    prices = None
    if args.prices:
        try:
            prices = load_price_table(args.prices)
        except PriceTableError as exc:
            raise usage.UsageError(str(exc)) from None
    return usage.UsageQuery(start=start, end=end, by=usage.dimensions(args.by), clusters=tuple(args.cluster),
                            gpu_idle_below=GPU_IDLE if args.gpu_idle_below is None else args.gpu_idle_below,
                            prices=prices)


def run_usage(args: argparse.Namespace) -> int:
    from hpcwatch.accounting import usage
    from hpcwatch.accounting.usage_render import render_csv, render_json, render_text

    try:
        query = _usage_query(args)
        if not os.path.isdir(args.dataset):
            raise usage.UsageError(f"{args.dataset}: no such dataset directory (--dataset, $HPCWATCH_DATASET)")
        report = usage.run(args.dataset, query, with_series=args.format == "html")
    except usage.UsageError as exc:
        return _error(str(exc))
    if args.format == "html":
        from hpcwatch.accounting.usage_html import render_html
        text = render_html(report)
    else:
        text = {"text": render_text, "csv": render_csv, "json": render_json}[args.format](report)
    return _write(args.output, text)


def _write(path: str, text: str) -> int:
    """`text` to the file (or stdout for -); 0, or an `error: PATH: reason` exit."""
    if path == "-":
        sys.stdout.write(text)
        return 0
    try:
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text)
    except OSError as exc:
        return _error(f"{path}: {exc.strerror or exc}")
    return 0


def run_rules(args: argparse.Namespace) -> int:
    from hpcwatch.accounting.prices import PriceTableError
    from hpcwatch.accounting.rules import GPU_IDLE
    from hpcwatch.accounting.spend_render import render_rules, render_tests

    idle = GPU_IDLE if args.gpu_idle_below is None else args.gpu_idle_below
    if not 0 <= idle <= 1:
        return _error(f"--gpu-idle-below {idle}: expected a utilisation between 0 and 1")
    head = (f"# Generated by `hpcwatch usage rules --prices {args.prices}`: live spend and waste; do not edit by "
            "hand.\n")
    try:
        rules = render_rules(args.prices, head, idle)
        tests = render_tests(args.prices, os.path.relpath(os.path.abspath(args.output), os.path.dirname(
            os.path.abspath(args.tests))) if args.output != "-" else "spend.rules.yml", head, idle) \
            if args.tests else ""
    except PriceTableError as exc:
        return _error(str(exc))
    return _write(args.output, rules) or (_write(args.tests, tests) if args.tests else 0)


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
