"""`hpcwatch alerts rules|tests|alertmanager`: infrastructure alert rules, their promtool tests, routing."""

from __future__ import annotations

import argparse
import sys

from hpcwatch.alerts.model import DEFAULT_RUNBOOK_BASE

HELP = """Infrastructure alerts as code.

  rules         the Prometheus rule file (severity, summary, description, runbook_url on every alert)
  tests         promtool unit tests: a firing and a quiet case per alert (`promtool test rules FILE`)
  alertmanager  the Alertmanager routing tree and inhibitions from a small receiver config

Alerts off by default (the waste alerts to users about their own jobs) are switched on, with their
thresholds, in an alert config given to `rules` and `tests` (`--example-config` prints one).

examples:
  hpcwatch alerts rules -o rules/hpcwatch-infrastructure.rules.yml
  hpcwatch alerts tests --rule-file hpcwatch-infrastructure.rules.yml -o rules/infra.test.yml
  hpcwatch alerts rules --example-config > alerts.yml             # edit it, then:
  hpcwatch alerts rules --config alerts.yml -o rules/hpcwatch-infrastructure.rules.yml
  hpcwatch alerts alertmanager --example-config > receivers.yml   # edit it, then:
  hpcwatch alerts alertmanager --config receivers.yml -o alertmanager.yml
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("alerts", help="infrastructure alert rules, promtool tests, Alertmanager routing",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    asub = p.add_subparsers(dest="alerts_command", metavar="ACTION")
    r = asub.add_parser("rules", help="write the infrastructure alert rules")
    _common(r)
    r.set_defaults(func=run_rules)
    t = asub.add_parser("tests", help="write promtool unit tests for the infrastructure alerts")
    _common(t)
    t.add_argument("--rule-file", default="hpcwatch-infrastructure.rules.yml",
                   help="rule file path as the test should reference it, relative to the test file")
    t.set_defaults(func=run_tests)
    a = asub.add_parser("alertmanager", help="write the Alertmanager config (routing tree and inhibitions)")
    a.add_argument("--config", help="receiver config YAML (see --example-config); default: the example")
    a.add_argument("--example-config", action="store_true", help="print an example receiver config and exit")
    a.add_argument("-o", "--out", default="-", help="output file (default: stdout)")
    a.set_defaults(func=run_alertmanager)
    p.set_defaults(func=lambda _a: p.print_help() or 2)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("-o", "--out", default="-", help="output file (default: stdout)")
    p.add_argument("--runbook-base-url", default=DEFAULT_RUNBOOK_BASE,
                   help=f"where docs/runbooks/ is published (default: {DEFAULT_RUNBOOK_BASE})")
    p.add_argument("--config", help="alert config YAML switching on optional alerts (see --example-config); "
                   "default: the catalogue alone")
    p.add_argument("--example-config", action="store_true", help="print an example alert config and exit")


def _alert_config(args: argparse.Namespace):
    """The --config alert config, or None; a bad one raises SystemExit with `error: FILE: field: ...`."""
    from hpcwatch.alerts.waste import ConfigError, load_config
    if not args.config:
        return None
    try:
        with open(args.config, encoding="utf-8") as fh:
            return load_config(fh.read())
    except OSError as exc:
        raise SystemExit(f"error: {args.config}: {exc.strerror or exc}") from None
    except ConfigError as exc:
        raise SystemExit(f"error: {args.config}: {exc}") from None


def _write(path: str, text: str) -> int:
    """stdout for `-`; otherwise the file, its folders created, 0644 (an unwritable path: OutputError)."""
    if path == "-":
        sys.stdout.write(text)
    else:
        from hpcwatch.outputs import write_text
        write_text(path, text)
    return 0


def run_rules(args: argparse.Namespace) -> int:
    from hpcwatch.alerts.rules import render_rules
    from hpcwatch.alerts.waste import EXAMPLE_CONFIG
    if args.example_config:
        return _write("-", EXAMPLE_CONFIG)
    return _write(args.out, render_rules(args.runbook_base_url, config=_alert_config(args)))


def run_tests(args: argparse.Namespace) -> int:
    from hpcwatch.alerts.rules import render_tests
    from hpcwatch.alerts.waste import EXAMPLE_CONFIG
    if args.example_config:
        return _write("-", EXAMPLE_CONFIG)
    return _write(args.out, render_tests(args.rule_file, args.runbook_base_url, config=_alert_config(args)))


def run_alertmanager(args: argparse.Namespace) -> int:
    from hpcwatch.alerts.alertmanager import EXAMPLE_CONFIG, ConfigError, load_config, render
    if args.example_config:
        return _write("-", EXAMPLE_CONFIG)
    text = EXAMPLE_CONFIG
    if args.config:
        try:
            with open(args.config, encoding="utf-8") as fh:
                text = fh.read()
        except OSError as exc:
            print(f"hpcwatch alerts alertmanager: {args.config}: {exc.strerror}", file=sys.stderr)
            return 2
    try:
        cfg = load_config(text)
    except ConfigError as exc:
        print(f"hpcwatch alerts alertmanager: {args.config or 'example config'}: {exc}", file=sys.stderr)
        return 2
    return _write(args.out, render(cfg))
