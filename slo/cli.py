"""`hpcwatch slo generate|validate`: SLO specs to Prometheus rules (and promtool tests)."""

from __future__ import annotations

import argparse
import json
import sys

from hpcwatch.slo.advice import check_slos
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.generate import SLOTH_VERSION, Options
from hpcwatch.slo.loader import DEFAULT_PERIOD, load_specs, spec_files
from hpcwatch.slo.model import SLO
from hpcwatch.slo.output import FORMATS, Target, render_outputs
from hpcwatch.slo.plugins import parse_call
from hpcwatch.slo.validate import Fields
from hpcwatch.slo.windows import WindowsCatalogue

K8S_TRANSFORM = "sloth.dev/k8stransform/prom-operator-prometheus-rule/v1"

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
    p.add_argument("--period", "--default-slo-period", default=DEFAULT_PERIOD,
                   help="SLO period for specs that do not set one, whole days (default: %(default)s)")
    p.add_argument("--windows", "--slo-period-windows-path", action="append", default=[], metavar="FILE|DIR",
                   help="Sloth AlertWindows file(s) for custom periods (default: Google's windows)")
    p.add_argument("-l", "--extra-labels", action="append", default=[], metavar="K=V",
                   help="labels added to every SLO (repeatable, or comma-separated)")
    p.add_argument("-e", "--fs-exclude", metavar="REGEX", help="skip discovered spec paths matching this")
    p.add_argument("-n", "--fs-include", metavar="REGEX", help="only discovered spec paths matching this")


def register(sub: argparse._SubParsersAction) -> None:
    slo = sub.add_parser("slo", help="SLO specs to Prometheus rules, alerts and their tests",
                         description="SLO engine: generate rules from specs, or validate specs.")
    ssub = slo.add_subparsers(dest="slo_command", metavar="SUBCOMMAND")
    g = ssub.add_parser("generate", help="write rules (and promtool tests) from specs", description=GENERATE_HELP,
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    _common(g)
    g.add_argument("-o", "--out", default="-", metavar="FILE|DIR/|-",
                   help="one file, a directory (one .yml file per input object), or - for stdout (default)")
    g.add_argument("--format", choices=FORMATS, default="auto",
                   help="auto (default): a PrometheusRule per PrometheusServiceLevel CRD, rule files for "
                   "everything else, as Sloth does")
    g.add_argument("--sloth-compatible", action="store_true",
                   help="Sloth's exact SLI expressions: drop hpcwatch's ((total) > 0) denominator guard")
    g.add_argument("--disable-alerts", action="store_true", help="no alert rules (Sloth's flag)")
    g.add_argument("--disable-recordings", action="store_true", help="no recording rules (Sloth's flag)")
    g.add_argument("-s", "--slo-plugins", action="append", default=[], metavar="JSON",
                   help='Sloth SLO plugin for every SLO, \'{"id": ..., "priority": 0, "config": {...}}\' '
                   "(repeatable; built-in plugins only)")
    g.add_argument("--disable-default-slo-plugins", action="store_true",
                   help="only the plugins given run (Sloth's flag)")
    g.add_argument("-p", "--plugins-path", action="append", default=[], metavar="DIR",
                   help="refused: Sloth's Go plugins do not run in hpcwatch")
    g.add_argument("--k8s-transform-plugin-id", default=K8S_TRANSFORM,
                   help="only Sloth's default (%(default)s) is supported")
    g.add_argument("--tests", metavar="DIR", help="also write promtool unit tests for every SLO here")
    g.add_argument("--name", help="PrometheusRule name for inputs that are not CRDs (default: spec file's stem)")
    g.add_argument("--namespace", help="PrometheusRule namespace for inputs that are not CRDs (default: none)")
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
    return load_specs(args.input, args.period, catalogue, _labels(args.extra_labels), args.fs_include,
                      args.fs_exclude)


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
    print(f"{len(slos)} SLOs valid in {len(spec_files(args.input, args.fs_include, args.fs_exclude))} files")
    return 0


def _options(args) -> Options:
    if args.plugins_path:
        raise SpecError("--plugins-path", None, "plugins-path", "no plugin directories: not supported: Sloth "
                        "plugins from disk are Go code hpcwatch does not run", args.plugins_path[0])
    if args.k8s_transform_plugin_id != K8S_TRANSFORM:
        raise SpecError("--k8s-transform-plugin-id", None, "k8s-transform-plugin-id", f"{K8S_TRANSFORM}; not "
                        f"supported: Sloth k8s transform plugin `{args.k8s_transform_plugin_id}`",
                        args.k8s_transform_plugin_id)
    f = Fields("--slo-plugins")
    calls = []
    for i, text in enumerate(args.slo_plugins):
        try:
            obj = json.loads(text)
        except ValueError as exc:
            raise SpecError("--slo-plugins", None, f"slo-plugins[{i}]", 'JSON like {"id": "...", "config": {}}',
                            f"{text} ({exc})") from None
        calls.append(parse_call(f, obj, f"slo-plugins[{i}]"))
    return Options(sloth_version=args.sloth_version, guard=not args.sloth_compatible,
                   recordings=not args.disable_recordings, alerts=not args.disable_alerts,
                   cli_plugins=tuple(calls), default_plugins=not args.disable_default_slo_plugins)


def run_generate(args) -> int:
    from hpcwatch.slo import promtests, writer

    try:
        opts = _options(args)
        slos = _load(args)
        if not slos:
            raise SpecError(", ".join(args.input), None, None, "at least one SLO in the inputs", "none")
        target = Target(args.out, args.format, tuple(args.input), args.name, args.namespace)
        files = render_outputs(slos, target, opts)
        if args.tests:
            files.update(promtests.promtool_test_files(slos, args.tests, opts))
    except SpecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    _warn(slos)
    stdout = files.pop("-", None)
    docs = max(t.count("\n---\n") for t in (stdout or "", *files.values()))
    if docs > 1 and not target.is_dir and args.format != "prometheus-operator" and args.out != "-":
        print(f"warning: {args.out} holds {docs} YAML documents, one per input object as Sloth writes them; "
              "Prometheus reads only the first document of a rule file: give -o DIR/ for one file per "
              "object", file=sys.stderr)
    try:
        writer.write_all(files)
    except OSError as exc:
        print(f"error: {exc}", file=sys.stderr)  # hpcwatch.outputs.OutputError: `PATH: reason`
        return 1
    if stdout is not None:
        sys.stdout.write(stdout)
    print(f"{len(slos)} SLOs: wrote {len(files)} files", file=sys.stderr)
    return 0
