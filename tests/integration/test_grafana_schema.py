"""Every generated dashboard type-checks against Grafana's own published schema.

No Grafana server runs here, so the check is Grafana's schema package: `@grafana/schema` (npm), the
TypeScript types Grafana generates from its CUE dashboard and panel schemas, at two pinned releases
(10.4, the last Grafana 10, and 12.4; tests/schema/package.json and its lock), compiled with a pinned
TypeScript in strict mode. Each dashboard JSON becomes a TypeScript module that assigns:
- the whole dashboard to `Dashboard`,
- each panel's `options` to its panel plugin's `Options`, its `fieldConfig.defaults.custom` to the
  plugin's `FieldConfig`, each query to `PrometheusDataQuery` (10.4: 12.4 no longer ships that type),
  leaving out keys Grafana fills from the plugin's defaults,
so an unknown or misspelled key, a wrong type or an enum value Grafana does not know fails to compile
(string enums are compared by value). A panel type with no schema in either release (Angular `graph`,
`singlestat`, `table-old`) fails, and so does a `schemaVersion` below the schema's own: Grafana would
migrate that dashboard on load.

The toolchain is installed with `npm ci` into a cache outside the repository (HPCWATCH_CACHE, else
$XDG_CACHE_HOME/hpcwatch, else ~/.cache/hpcwatch), once per lock file; without npm the test skips
with how to get it, and fails in CI.
"""

from __future__ import annotations

import functools
import glob
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest
from helpers import IN_CI, require_binary

pytestmark = [pytest.mark.slow]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SPEC = os.path.join(ROOT, "tests", "schema")
RELEASES = ("@grafana/schema-10", "@grafana/schema-12")  # npm aliases in tests/schema/package.json
NEWEST = RELEASES[-1]

# String enums become the union of their values (`${E}`), so JSON strings compare with them; objects
# and arrays are mapped member by member, which keeps excess-property checks. `Json` keeps required
# keys required (the dashboard); `Loose` lets any key go (panel options, field config and queries:
# Grafana fills what is missing from the plugin's defaults, which the generated types mark required).
JSON_TYPE = """\
export type Json<T> =
  T extends string ? (string extends T ? string : `${T}`) :
  T extends number | boolean | null | undefined ? T :
  T extends ReadonlyArray<infer U> ? Array<Json<U>> :
  T extends object ? { [K in keyof T]: Json<T[K]> } :
  T;
export type Loose<T> =
  T extends string ? (string extends T ? string : `${T}`) :
  T extends number | boolean | null | undefined ? T :
  T extends ReadonlyArray<infer U> ? Array<Loose<U>> :
  T extends object ? { [K in keyof T]?: Loose<T[K]> } :
  T;
"""


def _tsconfig(release: str) -> dict:
    # The packages import their own common types as '@grafana/schema': point that at the release checked.
    return {"compilerOptions": {"strict": True, "noEmit": True, "module": "esnext", "moduleResolution": "bundler",
                                "target": "es2022", "skipLibCheck": True, "types": [],
                                "paths": {"@grafana/schema": [f"../node_modules/{release}"]}},
            "include": ["*.ts"]}


def _cache_root() -> str:
    base = os.environ.get("HPCWATCH_CACHE") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "hpcwatch")
    return base


def _unavailable(msg: str) -> None:
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


@functools.cache
def toolchain() -> str:
    """The folder holding node_modules with the pinned schema releases and TypeScript (installed once)."""
    require_binary("node")
    npm = require_binary("npm")
    with open(os.path.join(SPEC, "package-lock.json"), "rb") as fh:
        key = hashlib.sha256(fh.read()).hexdigest()[:12]
    home = os.path.join(_cache_root(), f"grafana-schema-{key}")
    if not os.path.exists(os.path.join(home, "node_modules", ".bin", "tsc")):
        tmp = tempfile.mkdtemp(prefix="grafana-schema-", dir=os.path.dirname(home) if os.path.isdir(
            os.path.dirname(home)) else None)
        for name in ("package.json", "package-lock.json"):
            shutil.copy(os.path.join(SPEC, name), tmp)
        proc = subprocess.run([npm, "ci", "--no-audit", "--no-fund", "--ignore-scripts"], cwd=tmp,
                              capture_output=True, text=True, timeout=900)
        if proc.returncode != 0:
            shutil.rmtree(tmp, ignore_errors=True)
            _unavailable(f"npm ci of tests/schema failed (registry unreachable?):\n{proc.stderr[-2000:]}")
        os.makedirs(os.path.dirname(home), exist_ok=True)
        try:
            os.rename(tmp, home)
        except OSError:  # another run installed it meanwhile
            shutil.rmtree(tmp, ignore_errors=True)
    return home


def _panel_modules(home: str) -> dict[str, str]:
    """{panel type: its panelcfg module name} from the 10.4 release's layout (12.4 exports the same paths)."""
    out = {}
    base = os.path.join(home, "node_modules", RELEASES[0], "dist", "esm", "raw", "composable")
    for path in glob.glob(os.path.join(base, "*", "panelcfg", "x", "*_types.gen.d.ts")):
        out[path.split(os.sep)[-4]] = os.path.basename(path)[: -len(".d.ts")]
    return out


def _has_field_config(home: str, kind: str, module: str) -> bool:
    path = os.path.join(home, "node_modules", RELEASES[0], "dist", "esm", "raw", "composable", kind, "panelcfg",
                        "x", module + ".d.ts")
    with open(path, encoding="utf-8") as fh:
        return "export interface FieldConfig" in fh.read()


def _module(d: dict, release: str, modules: dict[str, str], home: str) -> tuple[str, list[str]]:
    """A TypeScript module assigning the dashboard and its parts to Grafana's types; problems found
    before compiling (a panel type with no schema, a custom field config its plugin has none of)."""
    from hpcwatch.dashboards.helpers import iter_panels

    raw = f"{release}/dist/esm/raw/composable"
    # Grafana 12's package no longer carries the Prometheus query type (it moved to @grafana/prometheus):
    # queries are checked against 10.4's.
    queries = release == RELEASES[0]
    lines = [f"import type {{ Dashboard }} from '{release}';", "import type { Json, Loose } from './json';"]
    if queries:
        lines.append(f"import type * as prom from '{raw}/prometheus/dataquery/x/PrometheusDataQuery_types.gen';")
    problems: list[str] = []
    imported = set()
    body = [f"export const dashboard: Json<Dashboard> = {json.dumps(d, indent=1)};"]
    for p in iter_panels(d):
        kind = p["type"]
        if kind == "row":
            continue  # RowPanel is part of Dashboard
        if kind not in modules:
            problems.append(f"{d['uid']}: panel {p['title']!r} has type {kind!r}, which no Grafana schema knows "
                            "(an Angular panel Grafana 10+ migrates or refuses)")
            continue
        alias = re.sub(r"\W", "_", kind)
        if kind not in imported:
            lines.append(f"import type * as {alias} from '{raw}/{kind}/panelcfg/x/{modules[kind]}';")
            imported.add(kind)
        pid = p["id"]
        body.append(f"export const panel{pid}_options: Loose<{alias}.Options> = {json.dumps(p.get('options', {}))};")
        custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if custom is not None:
            if _has_field_config(home, kind, modules[kind]):
                body.append(f"export const panel{pid}_custom: Loose<{alias}.FieldConfig> = {json.dumps(custom)};")
            else:
                problems.append(f"{d['uid']}: panel {p['title']!r} ({kind}) sets fieldConfig.defaults.custom, "
                                "but that panel has no custom field config")
        for t in p.get("targets", []) if queries else ():
            body.append(f"export const panel{pid}_{t['refId']}: Loose<prom.PrometheusDataQuery> = {json.dumps(t)};")
    return "\n".join(lines + [""] + body) + "\n", problems


def _dashboards() -> dict[str, dict]:
    out = {}
    for path in sorted(glob.glob(os.path.join(ROOT, "deploy", "grafana", "dashboards", "*.json"))):
        with open(path, encoding="utf-8") as fh:
            out[os.path.basename(path)] = json.load(fh)
    return out


def _newest_schema_version(home: str) -> int:
    node = require_binary("node")
    script = f"import {{ defaultDashboard }} from '{NEWEST}'; console.log(defaultDashboard.schemaVersion)"
    proc = subprocess.run([node, "--input-type=module", "-e", script], cwd=home, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    return int(proc.stdout.strip())


def test_schema_version_is_the_current_one():
    """Grafana migrates a dashboard whose schemaVersion is below its own on every load."""
    home = toolchain()
    current = _newest_schema_version(home)
    old = {name: d["schemaVersion"] for name, d in _dashboards().items() if d["schemaVersion"] < current}
    assert not old, f"schemaVersion below {current} (Grafana would migrate them): {old}"


@pytest.mark.parametrize("release", RELEASES)
def test_every_dashboard_type_checks(release, tmp_path):
    home = toolchain()
    modules = _panel_modules(home)
    assert {"timeseries", "stat", "table", "heatmap", "gauge", "bargauge"} <= set(modules), modules
    work = tempfile.mkdtemp(prefix="check-", dir=home)  # inside the toolchain: node_modules resolves
    try:
        with open(os.path.join(work, "json.ts"), "w") as fh:
            fh.write(JSON_TYPE)
        with open(os.path.join(work, "tsconfig.json"), "w") as fh:
            json.dump(_tsconfig(release), fh)
        problems = []
        dashboards = _dashboards()
        for name, d in dashboards.items():
            text, found = _module(d, release, modules, home)
            problems += found
            with open(os.path.join(work, re.sub(r"\W", "_", name[:-5]) + ".ts"), "w") as fh:
                fh.write(text)
        proc = subprocess.run([os.path.join(home, "node_modules", ".bin", "tsc"), "-p", work],
                              capture_output=True, text=True, timeout=600)
        assert proc.returncode == 0 and not problems, \
            f"{len(dashboards)} dashboards against {release}:\n" + "\n".join(problems) + "\n" + proc.stdout[-8000:]
    finally:
        shutil.rmtree(work, ignore_errors=True)


def test_the_check_catches_what_grafana_would_reject(tmp_path):
    """The check itself: a misspelled option, a wrong enum value and an Angular panel all fail."""
    home = toolchain()
    modules = _panel_modules(home)
    d = next(iter(_dashboards().values()))
    bad = json.loads(json.dumps(d))
    panels = [p for p in bad["panels"] if p["type"] == "timeseries"]
    panels[0]["options"]["legend"]["displayMode"] = "sideways"   # not a LegendDisplayMode
    panels[1]["options"]["tooltipp"] = {}                        # no such option
    panels[2]["type"] = "graph"                                  # Angular, gone in Grafana 11
    text, problems = _module(bad, NEWEST, modules, home)
    assert any("'graph'" in p for p in problems)
    work = tempfile.mkdtemp(prefix="check-", dir=home)
    try:
        with open(os.path.join(work, "json.ts"), "w") as fh:
            fh.write(JSON_TYPE)
        with open(os.path.join(work, "tsconfig.json"), "w") as fh:
            json.dump(_tsconfig(NEWEST), fh)
        with open(os.path.join(work, "bad.ts"), "w") as fh:
            fh.write(text)
        proc = subprocess.run([os.path.join(home, "node_modules", ".bin", "tsc"), "-p", work],
                              capture_output=True, text=True, timeout=600)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    assert proc.returncode != 0
    assert "sideways" in proc.stdout and "tooltipp" in proc.stdout, proc.stdout
