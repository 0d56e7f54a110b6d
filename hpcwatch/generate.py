"""`hpcwatch generate [--check] [--out deploy]`: write (or check) every generated artifact under deploy/.

What is written: the Prometheus config (hpcwatch.promconfig), the infrastructure alert rules and
their promtool tests, the SLO rules (and the SLO engine's promtool tests) for the default HPC
catalogue (examples/slo/hpc-catalogue.yaml, shipped in the wheel as hpcwatch.examples), every
Grafana dashboard (one SLO detail dashboard per catalogue SLO), and the example Alertmanager config
with the receiver config it was generated from. Each file says it is generated and by which
command; `--check` writes nothing and exits 1 listing the files that are stale. Files are written
0644 (hpcwatch.outputs): Prometheus and Grafana read them as their own users.
"""

from __future__ import annotations

import argparse
import importlib
import importlib.resources
import logging
import os
import re
import sys
from collections.abc import Iterable, Sequence
from typing import Any

from hpcwatch import outputs

log = logging.getLogger("hpcwatch.generate")

COMMAND = "hpcwatch generate"
DASHBOARD_DIR = "grafana/dashboards"
RULES_DIR = "prometheus/rules"
TESTS_DIR = "prometheus/rules/tests"
ALERTMANAGER_DIR = "alertmanager"
SLO_RULES_FILE = "hpcwatch-slo.rules.yml"
PROMETHEUS_CONFIG = "prometheus/prometheus.yml"
K8S_DIR = "kubernetes/base"  # the kustomization there lists these two generated files

HELP = """Write the default generated artifacts under deploy/ (or check they are fresh).

  deploy/prometheus/prometheus.yml  scrape, rule and alerting config (targets go in targets/*.yml)
  deploy/prometheus/rules/        infrastructure alert rules (+ SLO rules of the HPC catalogue)
  deploy/prometheus/rules/tests/  promtool unit tests for them
  deploy/grafana/dashboards/      every Grafana dashboard as JSON
  deploy/grafana/provisioning/    the Prometheus data source and dashboard provider for Grafana
  deploy/alertmanager/            an example Alertmanager config and the receiver config behind it
  deploy/scale/                   sharded Prometheus and vmagent-cluster topologies writing to
                                  VictoriaMetrics, rules on vmalert (docs/scaling.md)
  deploy/kubernetes/base/         prometheusrules.yaml (PrometheusRule) and grafana-dashboards.yaml
                                  (ConfigMaps for the Grafana sidecar)

examples:
  hpcwatch generate                 # rewrite deploy/
  hpcwatch generate -o /tmp/deploy  # the same files anywhere (folders are created)
  hpcwatch generate --check         # CI: exit 1 and list stale files, write nothing
"""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("generate", help="write the generated artifacts under deploy/ (or --check them)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-o", "--out", default="deploy", help="deploy directory (default: deploy)")
    p.add_argument("--check", action="store_true", help="write nothing; exit 1 listing stale or missing files")
    p.set_defaults(func=run)


# --- the SLO engine ------------------------------------------------------------------------------------

# The default HPC catalogue: the objectives `hpcwatch generate` writes rules and dashboards for. It is
# package data (examples/ is the package hpcwatch.examples), so an installed wheel generates the same.
CATALOGUE_NAME = "examples/slo/hpc-catalogue.yaml"
DEFAULT_CATALOGUE = str(importlib.resources.files("hpcwatch.examples").joinpath("slo", "hpc-catalogue.yaml"))


def _slo_api(name: str) -> Any | None:
    """hpcwatch.slo.<name>, or None where the SLO engine does not offer it."""
    try:
        mod = importlib.import_module("hpcwatch.slo")
    except ModuleNotFoundError:
        return None
    return getattr(mod, name, None)


def load_slo_specs(paths: Sequence[str]) -> list[Any]:
    load = _slo_api("load_specs")
    if load is None:
        raise SystemExit("the SLO engine (hpcwatch.slo.load_specs) is not available in this build")
    return list(load(list(paths)))


def default_slos() -> list[Any]:
    """The default HPC catalogue's SLO models ([] without the SLO engine)."""
    if _slo_api("load_specs") is None:
        return []
    return load_slo_specs([DEFAULT_CATALOGUE])


def _slo_files(slos: list[Any]) -> dict[str, str]:
    """The catalogue's Sloth-compatible rule file and the SLO engine's promtool tests for it."""
    generate_rules = _slo_api("generate_rules")
    if generate_rules is None or not slos:
        return {}
    from hpcwatch.slo import writer
    from hpcwatch.slo.promtests import promtool_test_files

    head = _yaml_header(f"SLO rules of the default HPC catalogue ({CATALOGUE_NAME})")
    out = {f"{RULES_DIR}/{SLO_RULES_FILE}": head + writer.prometheus_text(generate_rules(slos))}
    for path, text in promtool_test_files(slos, f"{TESTS_DIR}/slo").items():
        out[path] = _yaml_header("promtool tests of the HPC catalogue's SLO alerts") + text
    return out


# --- live spend ----------------------------------------------------------------------------------------

# The example price table (package data, like the catalogue): the spend rules `hpcwatch generate` ships
# (operators write their own with `hpcwatch usage rules --prices FILE`).
PRICES_NAME = "examples/accounting/prices.yaml"
DEFAULT_PRICES = str(importlib.resources.files("hpcwatch.examples").joinpath("accounting", "prices.yaml"))
SPEND_RULES_FILE = "hpcwatch-spend.rules.yml"
SPEND_TESTS_FILE = "hpcwatch-spend.test.yml"


def _spend_files() -> dict[str, str]:
    """The spend and waste recording rules of the example price table, and their promtool tests."""
    if not os.path.exists(DEFAULT_PRICES):
        return {}
    from hpcwatch.accounting.spend_render import render_rules, render_tests

    what = f"spend and waste rules of the example price table ({PRICES_NAME})"
    return {f"{RULES_DIR}/{SPEND_RULES_FILE}": render_rules(DEFAULT_PRICES, _yaml_header(what)),
            f"{TESTS_DIR}/{SPEND_TESTS_FILE}": render_tests(DEFAULT_PRICES, f"../{SPEND_RULES_FILE}",
                                                            _yaml_header("promtool tests of the spend rules"))}


# --- artifacts ---------------------------------------------------------------------------------------

def _yaml_header(what: str) -> str:
    return (f"# Generated by `{COMMAND}`: {what}; do not edit by hand.\n"
            "# CI runs `hpcwatch generate --check` and fails when this file is stale.\n")


def artifacts() -> dict[str, str]:
    """{path relative to deploy/: content} of every generated file."""
    from hpcwatch import promconfig, scaleconfig
    from hpcwatch.alerts import alertmanager, rules
    from hpcwatch.dashboards import provisioning, render_all, slo_refs

    out: dict[str, str] = {}
    out[PROMETHEUS_CONFIG] = promconfig.render(_yaml_header("the Prometheus config hpcwatch ships"))
    out[f"{RULES_DIR}/{rules.RULES_FILE}"] = rules.render_rules(command=COMMAND)
    out[f"{TESTS_DIR}/{rules.TESTS_FILE}"] = rules.render_tests(f"../{rules.RULES_FILE}", command=COMMAND)
    slos = default_slos()
    out.update(_slo_files(slos))
    for rel, text in provisioning.files(_yaml_header("Grafana provisioning for the hpcwatch dashboards")).items():
        out[f"grafana/{rel}"] = text
    out.update(_spend_files())
    for name, text in render_all(slo_refs(slos)).items():
        out[f"{DASHBOARD_DIR}/{name}"] = text
    out[f"{K8S_DIR}/prometheusrules.yaml"] = _prometheus_rules_crd(
        {name: out[f"{RULES_DIR}/{f}"] for name, f in (("hpcwatch-infrastructure", rules.RULES_FILE),
                                                         ("hpcwatch-slo", SLO_RULES_FILE),
                                                         ("hpcwatch-spend", SPEND_RULES_FILE))
         if f"{RULES_DIR}/{f}" in out})
    out[f"{K8S_DIR}/grafana-dashboards.yaml"] = _dashboard_configmaps(
        {k: v for k, v in out.items() if k.startswith(DASHBOARD_DIR)})
    rule_texts = {os.path.basename(k): v for k, v in out.items() if k.startswith(RULES_DIR + "/") and k.endswith(".yml")
                  and not k.startswith(TESTS_DIR)}
    out.update(scaleconfig.files(_yaml_header("a reference topology past one Prometheus (docs/scaling.md)"),
                                 rule_texts))
    out[f"{ALERTMANAGER_DIR}/receivers.example.yml"] = (
        _yaml_header("the receiver config alertmanager.yml is generated from") + alertmanager.EXAMPLE_CONFIG)
    out[f"{ALERTMANAGER_DIR}/alertmanager.yml"] = alertmanager.render(
        alertmanager.load_config(alertmanager.EXAMPLE_CONFIG),
        command=f"{COMMAND} (hpcwatch alerts alertmanager --config receivers.example.yml)")
    return out


def _k8s_name(text: str) -> str:
    return re.sub(r"[^a-z0-9-]", "-", text.lower()).strip("-")[:63]


def _prometheus_rules_crd(rule_files: dict[str, str]) -> str:
    """The same rule groups as prometheus-operator PrometheusRule objects, one per rule file (by name)."""
    import yaml
    docs = []
    for name, text in rule_files.items():
        groups = yaml.safe_load(text)["groups"]
        docs.append({"apiVersion": "monitoring.coreos.com/v1", "kind": "PrometheusRule",
                     "metadata": {"name": name, "labels": {"app.kubernetes.io/part-of": "hpcwatch"}},
                     "spec": {"groups": groups}})
    return _yaml_header("PrometheusRule objects of deploy/prometheus/rules") + yaml.safe_dump_all(
        docs, sort_keys=False, width=100)


def _dashboard_configmaps(dashboards: dict[str, str]) -> str:
    """One ConfigMap per dashboard, labelled for the Grafana sidecar (grafana_dashboard=1)."""
    import yaml
    docs = [{"apiVersion": "v1", "kind": "ConfigMap",
             "metadata": {"name": _k8s_name(f"grafana-dashboard-{os.path.basename(rel)[:-5]}"),
                          "labels": {"grafana_dashboard": "1", "app.kubernetes.io/part-of": "hpcwatch"},
                          "annotations": {"grafana_folder": "hpcwatch"}},
             "data": {os.path.basename(rel): text}} for rel, text in sorted(dashboards.items())]
    return _yaml_header("Grafana dashboards of deploy/grafana/dashboards as ConfigMaps") + yaml.safe_dump_all(
        docs, sort_keys=False, width=100)


def _read(path: str) -> str | None:
    try:
        with open(path, encoding="utf-8") as fh:
            return fh.read()
    except OSError:
        return None


def _orphans(root: str, wanted: Iterable[str]) -> list[str]:
    """Generated dashboards on disk that the code no longer produces (a removed SLO, a renamed uid)."""
    d = os.path.join(root, DASHBOARD_DIR)
    keep = set(wanted)
    try:
        names = sorted(os.listdir(d))
    except OSError:
        return []
    return [f"{DASHBOARD_DIR}/{n}" for n in names
            if n.startswith("hpcwatch-") and n.endswith(".json") and f"{DASHBOARD_DIR}/{n}" not in keep]


def stale(root: str, files: dict[str, str]) -> list[str]:
    """Paths (relative to root) whose content differs from what would be generated, plus orphans."""
    out = [rel for rel, text in sorted(files.items()) if _read(os.path.join(root, rel)) != text]
    return out + _orphans(root, files)


def write(root: str, files: dict[str, str]) -> list[str]:
    """Write what changed (0644, folders created), remove orphans; the paths that were stale."""
    changed = stale(root, files)
    outputs.write_files({os.path.join(root, rel): text for rel, text in files.items()
                         if _read(os.path.join(root, rel)) != text})
    for rel in _orphans(root, files):
        outputs.remove(os.path.join(root, rel))
    return changed


def run(args: argparse.Namespace) -> int:
    files = artifacts()
    if f"{RULES_DIR}/{SLO_RULES_FILE}" not in files:
        log.warning("no SLO engine or no %s: SLO rules and SLO detail dashboards skipped", DEFAULT_CATALOGUE)
    if args.check:
        bad = stale(args.out, files)
        if bad:
            print(f"{len(bad)} generated file(s) under {args.out}/ are stale; run `{COMMAND}`:", file=sys.stderr)
            for rel in bad:
                print(f"  {args.out}/{rel}", file=sys.stderr)
            return 1
        print(f"{len(files)} generated files under {args.out}/ are fresh", file=sys.stderr)
        return 0
    changed = write(args.out, files)
    print(f"wrote {len(files)} files under {args.out}/ ({len(changed)} changed)", file=sys.stderr)
    return 0
