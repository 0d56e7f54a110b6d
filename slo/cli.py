"""`hpcwatch slo generate|validate`: SLO specs to Prometheus rules (and promtool tests)."""

from __future__ import annotations

import argparse
import os
import sys

from hpcwatch.slo.advice import check_slos
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.generate import SLOTH_VERSION, generate_rules
from hpcwatch.slo.loader import DEFAULT_PERIOD, load_specs, spec_files
from hpcwatch.slo.model import SLO
from hpcwatch.slo.windows import WindowsCatalogue

GENERATE_HELP = """Turn SLO specs into Prometheus recording rules and multiwindow multi-burn-rate alerts.

Inputs (files or directories of *.yaml/*.yml, any mix): Sloth `version: prometheus/v1` and the
`sloth.slok.dev/v1` PrometheusServiceLevel CRD, OpenSLO v1alpha and v1, and the HPC catalogue
`apiVersion: hpcwatch/v1` (job-success, queue-wait, node-availability, scheduler-availability).
The rules are Sloth's, rule for rule, so Sloth's Grafana dashboards work on them.

A spec error prints file, SLO, field and what was expected, exits 2 and writes nothing.

examples:
  hpcwatch slo generate -i slos/ -o rules/                  one rule file per spec file
  hpcwatch slo generate -i cluster.yaml -o slo-rules.yml --tests rules/tests/
  hpcwatch slo generate -i k8s/ -o - --format prometheus-operator --period 28d
"""


def _labels(items: list[str]) -> dict[str, str]:
    out = {}
    for item in items:
        for part in item.split(","):
            if not part:
                continue
            k, sep, v = part.partition("=")
            if not sep or not k:
                raise SpecError("--extra-labels", None, "extra-labels", "k=v pairs", part)
            out[k.strip()] = v.strip()
    return out


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-i", "--input", action="append", required=True, metavar="FILE|DIR",
                   help="spec file or directory (repeatable)")
    p.add_argument("--period", default=DEFAULT_PERIOD,
                   help="SLO period for specs that do not set one, whole days (default: %(default)s)")
    p.add_argument("--windows", action="append", default=[], metavar="FILE|DIR",
                   help="Sloth AlertWindows file(s) for custom periods (default: Google's windows)")
    p.add_argument("--extra-labels", action="append", default=[], metavar="K=V",
                   help="labels added to every SLO (repeatable, or comma-separated)")


def register(sub: argparse._SubParsersAction) -> None:
    slo = sub.add_parser("slo", help="SLO specs to Prometheus rules, alerts and their tests",
                         description="SLO engine: generate rules from specs, or validate specs.")
    ssub = slo.add_subparsers(dest="slo_command", metavar="SUBCOMMAND")
    g = ssub.add_parser("generate", help="write rules (and promtool tests) from specs", description=GENERATE_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(g)
    g.add_argument("-o", "--out", required=True, metavar="FILE|DIR|-",
                   help="one rule file, a directory (one file per spec file), or - for stdout")
    g.add_argument("--format", choices=("prometheus", "prometheus-operator"), default="prometheus")
    g.add_argument("--tests", metavar="DIR", help="also write promtool unit tests for every SLO here")
    g.add_argument("--name", help="PrometheusRule name (default: the CRD's name, else the spec file's stem)")
    g.add_argument("--namespace", help="PrometheusRule namespace (default: the CRD's, else none)")
    g.add_argument("--sloth-version", default=SLOTH_VERSION, help="sloth_version label (default: %(default)s)")
    g.set_defaults(func=run_generate)
    v = ssub.add_parser("validate", help="check specs; exit 2 on the first error")
    _common(v)
    v.set_defaults(func=run_validate)
    from hpcwatch.slo.history.cli import register_report  # `slo report`: hpcwatch.slo.history

    register_report(ssub)
    slo.set_defaults(func=lambda a: slo.print_help() or 2)


def _load(args) -> list[SLO]:
    catalogue = WindowsCatalogue.load(args.windows)
    return load_specs(args.input, args.period, catalogue, _labels(args.extra_labels))


def _warn(slos: list[SLO]) -> None:
    for w in check_slos(slos):
        print(f"warning: {w}", file=sys.stderr)


def run_validate(args) -> int:
    try:
        slos = _load(args)
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _warn(slos)
    print(f"{len(slos)} SLOs valid in {len(spec_files(args.input))} files")
    return 0


def run_generate(args) -> int:
    from hpcwatch.slo import promtests, writer

    try:
        slos = _load(args)
        if not slos:
            raise SpecError(", ".join(args.input), None, None, "at least one SLO in the inputs", "none")
        files = render_outputs(slos, args)
        if args.tests:
            files.update(promtests.promtool_test_files(slos, args.tests, args.sloth_version))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _warn(slos)
    stdout = files.pop("-", None)
    try:
        writer.write_all(files)
    except OSError as exc:
        print(f"error: writing output: {exc}", file=sys.stderr)
        return 1
    if stdout is not None:
        sys.stdout.write(stdout)
    print(f"{len(slos)} SLOs: wrote {len(files)} files", file=sys.stderr)
    return 0


def render_outputs(slos: list[SLO], args) -> dict[str, str]:
    """{path: text}; a directory output gets one file per spec file, named after it."""
    from hpcwatch.slo import writer

    by_source: dict[str, list[SLO]] = {}
    for slo in slos:
        by_source.setdefault(slo.source, []).append(slo)
    out_dir = args.out != "-" and (os.path.isdir(args.out) or args.out.endswith(os.sep))
    if out_dir:
        roots = [os.path.abspath(p) for p in args.input if os.path.isdir(p)]
        files = {}
        for source, group in by_source.items():
            rel = os.path.basename(source)
            for root in roots:
                if os.path.abspath(source).startswith(root + os.sep):
                    rel = os.path.relpath(os.path.abspath(source), root)
            files[os.path.join(args.out, rel)] = _render(group, args, source)
        return files
    texts = [_render(group, args, source) for source, group in by_source.items()]
    # One header, then each document; prometheus format is one document of all groups.
    if args.format == "prometheus":
        text = writer.prometheus_text(generate_rules(slos, args.sloth_version))
    else:
        text = texts[0] + "".join("---\n" + t[len(writer.HEADER):] for t in texts[1:])
    return {args.out: text}


def _render(slos: list[SLO], args, source: str) -> str:
    from hpcwatch.slo import writer

    rules = generate_rules(slos, args.sloth_version)
    if args.format == "prometheus":
        return writer.prometheus_text(rules)
    name = args.name or slos[0].k8s_name or os.path.splitext(os.path.basename(source))[0]
    return writer.operator_text(rules, name, args.namespace or slos[0].k8s_namespace)
