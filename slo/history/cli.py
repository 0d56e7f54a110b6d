"""`hpcwatch slo report`: replay SLOs over job history or Prometheus data; text, HTML or JSON."""

from __future__ import annotations

import argparse
import calendar
import sys
import time

REPORT_HELP = """Replay SLOs over history: the SLI over time, the error ratio over every alert window,
the rolling error budget, burn rates, and when each page and ticket alert would have fired and
resolved, with the same windows, burn-rate factors and min_events guard as the generated rules.

History comes from job records (--jobs: sacct --parsable2 dumps with a header, `flux jobs --json`
output, CSV or Parquet tables; mapped to outcome and cause by the exporters' own tables) or from
Prometheus (--prometheus: range queries of the SLI queries, or of deployed recording rules).

examples:
  sacct -X --duplicates --parsable2 -a -S 2024-01-01 -E 2024-04-01 \\
    -o JobID,JobIDRaw,Cluster,Partition,State,ExitCode,Submit,Eligible,Start,End,User,UID,Account,NNodes > q1.txt
  hpcwatch slo report --spec slos/ --jobs q1.txt                          text summary
  hpcwatch slo report --spec slos/ --jobs q1.txt --format html -o q1.html  plots in one file
  hpcwatch slo report --spec slos/ --prometheus http://prom:9090 --from now-30d --format json -o -
  hpcwatch slo report --spec slos/ --synthetic --format html -o sample.html   no data yet: a sample
"""


def parse_time(text: str, now: float | None = None) -> float:
    """'2024-03-01', '2024-03-01T12:00:00' (UTC), Unix seconds, 'now', 'now-30d'."""
    from hpcwatch.slo.goformat import parse_duration

    now = time.time() if now is None else now
    text = text.strip()
    if text == "now":
        return now
    if text.startswith("now-"):
        return now - parse_duration(text[4:])
    try:
        return float(text)
    except ValueError:
        pass
    for fmt in ("%Y-%m-%dT%H:%M:%SZ", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M", "%Y-%m-%d %H:%M:%S", "%Y-%m-%d"):
        try:
            return float(calendar.timegm(time.strptime(text, fmt)))
        except ValueError:
            continue
    raise ValueError(f"time {text!r}: use 2024-03-01, 2024-03-01T12:00:00 (UTC), Unix seconds or now-30d")


def register_report(ssub: argparse._SubParsersAction) -> None:
    from hpcwatch.slo.history.load import FORMATS
    from hpcwatch.slo.loader import DEFAULT_PERIOD

    r = ssub.add_parser("report", help="replay SLOs over job history or Prometheus data (budgets, burn, alerts)",
                        description=REPORT_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    r.add_argument("--spec", "-i", action="append", required=True, metavar="FILE|DIR", help="SLO spec (repeatable)")
    src = r.add_mutually_exclusive_group(required=True)
    src.add_argument("--jobs", action="append", metavar="FILE", help="job records file (repeatable)")
    src.add_argument("--prometheus", metavar="URL", help="Prometheus base URL for range queries")
    src.add_argument("--synthetic", action="store_true",
                     help="replay a seeded synthetic history (60 days up to today, or --from/--to) of the specs' "
                     "clusters and queues: try the report without data")
    r.add_argument("--jobs-format", choices=FORMATS, default="auto", help="format of --jobs (default: detect)")
    r.add_argument("--prometheus-source", choices=("sli", "rules"), default="sli",
                   help="sli: range-query the SLI queries; rules: read deployed slo:sli_error recordings")
    r.add_argument("--cluster", help="cluster label for records without one (default: the specs' only cluster)")
    r.add_argument("--from", dest="start", metavar="TIME", help="start (default: first job end; Prometheus: "
                   "now minus the longest period)")
    r.add_argument("--to", dest="end", metavar="TIME", help="end (default: last job end; Prometheus: now)")
    r.add_argument("--step", default="5m", help="evaluation step; must divide every alert window (default: 5m)")
    r.add_argument("--format", choices=("text", "html", "json"), default="text")
    r.add_argument("-o", "--out", default="-", metavar="FILE|-", help="output file (default: stdout)")
    r.add_argument("--no-series", action="store_true", help="JSON: leave out the time series")
    r.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bar on stderr (default: when stderr is a terminal)")
    r.add_argument("--period", default=DEFAULT_PERIOD, help="period for specs that set none (default: %(default)s)")
    r.add_argument("--windows", action="append", default=[], metavar="FILE|DIR", help="Sloth AlertWindows files")
    r.set_defaults(func=run_report)


def _default_cluster(slos) -> str:
    names = {s.labels.get("cluster") for s in slos if s.labels.get("cluster")}
    return names.pop() if len(names) == 1 else "default"


def run_report(args) -> int:
    from hpcwatch.slo.errors import SpecError
    from hpcwatch.slo.goformat import parse_duration
    from hpcwatch.slo.history import build_report, render
    from hpcwatch.slo.history.load import JobsInputError
    from hpcwatch.slo.history.progress import Progress
    from hpcwatch.slo.history.prom import PrometheusError
    from hpcwatch.slo.history.scope import ScopeError
    from hpcwatch.slo.loader import load_specs
    from hpcwatch.slo.windows import WindowsCatalogue

    try:
        slos = load_specs(args.spec, args.period, WindowsCatalogue.load(args.windows), {})
        if not slos:
            raise SpecError(", ".join(args.spec), None, None, "at least one SLO in the specs", "none")
        step = parse_duration(args.step)
        if not step:
            raise ValueError(f"--step {args.step!r}: a duration such as 5m")
        start = parse_time(args.start) if args.start else None
        end = parse_time(args.end) if args.end else None
        if start is not None and end is not None and end <= start:
            raise ValueError("--to must be after --from")
        progress = Progress.auto(args.progress)
        report = build_report(slos, jobs=args.jobs, jobs_format=args.jobs_format, prometheus=args.prometheus,
                              prometheus_source=args.prometheus_source,
                              cluster=args.cluster or _default_cluster(slos), start=start, end=end, step=step,
                              progress=progress, synthetic=args.synthetic)
        text = render(report, args.format, series=not args.no_series)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except (ValueError, JobsInputError, PrometheusError, ScopeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        if args.out == "-":
            sys.stdout.write(text)
        else:
            from hpcwatch.outputs import write_text
            write_text(args.out, text)
            print(f"{len(report.histories)} SLOs replayed; wrote {args.out}", file=sys.stderr)
    except OSError as exc:  # hpcwatch.outputs: `PATH: reason`
        from hpcwatch.outputs import describe
        print(f"error: {describe(exc) or exc}", file=sys.stderr)
        return 1
    return 0
