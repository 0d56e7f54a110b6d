"""Shared builders for Grafana 10 dashboards: panels, variables, layout and the stamped JSON.

grafanalib (0.7) builds the dashboard shell; its panel and template classes predate Grafana 10
(string datasources, the old heatmap, null-valued legacy keys), so panels and variables are built
here as the JSON Grafana saves itself, and tests/integration/test_grafana_schema.py type-checks
every dashboard against Grafana's published schema. Every panel reads the `datasource` variable,
and carries a unit, thresholds and a description — the unit tests hold every dashboard to that.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import grafanalib.core as g
from grafanalib._gen import DashboardEncoder

# The final v1 dashboard schema (Grafana 12): Grafana 12 loads it as it is, and Grafana 10 and 11
# run none of their migration steps on it (each only upgrades versions below its own).
SCHEMA_VERSION = 42
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}
GENERATED_TAG = "hpcwatch-generated"
WIDTH = 24

# Label filters every query of a dashboard shares; `$var` is expanded by Grafana (regex for All).
# Every series carries `cluster` as shipped (docs/operator-guide.md, "The cluster label"): target
# labels from the shipped scrape configs, and the scheduler families' own from slurm.conf.
CLUSTER = 'cluster=~"$cluster"'
NODE = 'cluster=~"$cluster",instance=~"$instance"'


@dataclass(frozen=True)
class Q:
    """One panel query: PromQL, its legend, and whether it is an instant (table/stat) query."""

    expr: str
    legend: str = ""
    instant: bool = False
    format: str = "time_series"


Thresholds = Sequence[tuple[float | None, str]]

# Threshold presets: (value the colour starts at, colour); the first step's value is always None.
NEUTRAL: Thresholds = ((None, "green"),)
HIGH_BAD_RATIO: Thresholds = ((None, "green"), (0.8, "orange"), (0.9, "red"))
LOW_BAD_RATIO: Thresholds = ((None, "red"), (0.5, "orange"), (0.8, "green"))
ANY_BAD: Thresholds = ((None, "green"), (1, "red"))
UP_DOWN: Thresholds = ((None, "red"), (1, "green"))


@dataclass
class Panel:
    """A Grafana 10 panel as JSON; layout() sets its id and gridPos."""

    json: dict[str, Any]
    w: int = 12
    h: int = 8

    def to_json_data(self) -> dict[str, Any]:
        return self.json


@dataclass
class Dashboard:
    """What a dashboard module builds: identity, variables and panels in reading order."""

    uid: str
    title: str
    description: str
    module: str
    panels: list[Panel]
    variables: list[dict[str, Any]] = field(default_factory=list)
    tags: tuple[str, ...] = ()
    time_from: str = "now-6h"


def _targets(queries: Iterable[Q]) -> list[dict[str, Any]]:
    out = []
    for i, q in enumerate(queries):
        out.append({"datasource": DATASOURCE, "expr": q.expr, "legendFormat": q.legend or "__auto",
                    "refId": chr(ord("A") + i), "instant": q.instant, "range": not q.instant,
                    "format": q.format, "editorMode": "code"})
    return out


def _defaults(unit: str, thresholds: Thresholds, min_: float | None, max_: float | None,
              mappings: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    d: dict[str, Any] = {
        "unit": unit,
        "color": {"mode": "thresholds" if len(thresholds) > 1 else "palette-classic"},
        "thresholds": {"mode": "absolute", "steps": [{"value": v, "color": c} for v, c in thresholds]},
        "mappings": mappings or [],
    }
    if min_ is not None:
        d["min"] = min_
    if max_ is not None:
        d["max"] = max_
    return d


def _panel(kind: str, title: str, description: str, queries: Sequence[Q], unit: str, thresholds: Thresholds,
           min_: float | None, max_: float | None, options: dict[str, Any], custom: dict[str, Any] | None = None,
           mappings: list[dict[str, Any]] | None = None, **extra: Any) -> dict[str, Any]:
    if not description:
        raise ValueError(f"panel {title!r} needs a description")
    defaults = _defaults(unit, thresholds, min_, max_, mappings)
    if custom is not None:
        defaults["custom"] = custom
    return {"type": kind, "title": title, "description": description, "datasource": DATASOURCE,
            "targets": _targets(queries), "fieldConfig": {"defaults": defaults, "overrides": []},
            "options": options, **extra}


def timeseries(title: str, description: str, queries: Sequence[Q], unit: str = "short",
               thresholds: Thresholds = NEUTRAL, min_: float | None = None, max_: float | None = None,
               stack: bool = False, w: int = 12, h: int = 8) -> Panel:
    custom = {"drawStyle": "line", "lineWidth": 1, "fillOpacity": 10 if stack else 0, "showPoints": "never",
              "spanNulls": False, "stacking": {"mode": "normal" if stack else "none", "group": "A"},
              # Thresholds of a time series show as dashed lines only where they mean something.
              "thresholdsStyle": {"mode": "dashed" if len(thresholds) > 1 else "off"}}
    options = {"legend": {"displayMode": "list", "placement": "bottom", "showLegend": True, "calcs": []},
               "tooltip": {"mode": "multi", "sort": "desc"}}
    body = _panel("timeseries", title, description, queries, unit, thresholds, min_, max_, options, custom)
    body["fieldConfig"]["defaults"]["color"] = {"mode": "palette-classic"}  # one colour per series
    return Panel(body, w, h)


def _reduce(calc: str = "lastNotNull") -> dict[str, Any]:
    return {"calcs": [calc], "fields": "", "values": False}


def stat(title: str, description: str, query: Q | str, unit: str = "short", thresholds: Thresholds = NEUTRAL,
         mappings: list[dict[str, Any]] | None = None, w: int = 6, h: int = 4) -> Panel:
    q = query if isinstance(query, Q) else Q(query, instant=True)
    options = {"reduceOptions": _reduce(), "colorMode": "value", "graphMode": "none", "justifyMode": "auto",
               "orientation": "auto", "textMode": "auto"}
    return Panel(_panel("stat", title, description, [q], unit, thresholds, None, None, options,
                        mappings=mappings), w, h)


def gauge(title: str, description: str, query: Q | str, unit: str = "percentunit",
          thresholds: Thresholds = HIGH_BAD_RATIO, min_: float = 0, max_: float = 1, w: int = 6, h: int = 6) -> Panel:
    q = query if isinstance(query, Q) else Q(query, instant=True)
    options = {"reduceOptions": _reduce(), "showThresholdLabels": False, "showThresholdMarkers": True,
               "orientation": "auto"}
    return Panel(_panel("gauge", title, description, [q], unit, thresholds, min_, max_, options), w, h)


def bargauge(title: str, description: str, queries: Sequence[Q], unit: str = "percentunit",
             thresholds: Thresholds = HIGH_BAD_RATIO, min_: float | None = 0, max_: float | None = 1,
             w: int = 12, h: int = 8) -> Panel:
    options = {"reduceOptions": _reduce(), "displayMode": "gradient", "orientation": "horizontal",
               "showUnfilled": True, "valueMode": "color", "namePlacement": "auto", "sizing": "auto"}
    return Panel(_panel("bargauge", title, description, queries, unit, thresholds, min_, max_, options), w, h)


def table(title: str, description: str, queries: Sequence[Q], unit: str = "short",
          thresholds: Thresholds = NEUTRAL, hide: Sequence[str] = ("Time",), w: int = 24, h: int = 8,
          sort_by: str | None = None) -> Panel:
    """An instant table; several queries are merged into one row per label set."""
    qs = [Q(q.expr, q.legend, instant=True, format="table") for q in queries]
    transformations: list[dict[str, Any]] = []
    if len(qs) > 1:
        transformations.append({"id": "merge", "options": {}})
    transformations.append({"id": "organize", "options": {
        "excludeByName": {name: True for name in hide}, "indexByName": {},
        "renameByName": {f"Value #{chr(ord('A') + i)}": q.legend for i, q in enumerate(queries) if q.legend}}})
    options = {"showHeader": True, "cellHeight": "sm",
               "sortBy": [{"displayName": sort_by, "desc": True}] if sort_by else []}
    custom = {"align": "auto", "cellOptions": {"type": "auto"}, "inspect": False}
    return Panel(_panel("table", title, description, qs, unit, thresholds, None, None, options, custom,
                        transformations=transformations), w, h)


def heatmap(title: str, description: str, expr: str, unit: str = "s", calculate: bool = False,
            w: int = 12, h: int = 8) -> Panel:
    """A Grafana 10 heatmap: of Prometheus histogram buckets (`sum by (le) (rate(..._bucket[...]))`),
    or with calculate=True of plain series that Grafana buckets itself."""
    q = Q(expr, legend="" if calculate else "{{le}}", format="time_series" if calculate else "heatmap")
    options = {"calculate": calculate, "cellGap": 1, "color": {"mode": "scheme", "scheme": "Oranges", "fill": "dark",
                                                           "scale": "exponential", "exponent": 0.5, "steps": 64},
               "yAxis": {"axisPlacement": "left", "unit": unit}, "rowsFrame": {"layout": "auto"},
               "tooltip": {"mode": "single", "yHistogram": True}, "legend": {"show": True},
               "filterValues": {"le": 1e-9}, "exemplars": {"color": "rgba(255,0,255,0.7)"}}
    custom = {"hideFrom": {"legend": False, "tooltip": False, "viz": False},
              "scaleDistribution": {"type": "linear"}}
    return Panel(_panel("heatmap", title, description, [q], unit, NEUTRAL, None, None, options, custom), w, h)


def row(title: str) -> Panel:
    return Panel({"type": "row", "title": title, "collapsed": False, "panels": []}, WIDTH, 1)


UP_MAPPING = [{"type": "value", "options": {"0": {"text": "down", "color": "red"},
                                             "1": {"text": "up", "color": "green"}}}]


# --- variables --------------------------------------------------------------------------------------

def datasource_variable() -> dict[str, Any]:
    """The Prometheus data source to read, chosen in the dashboard (no `__inputs`: provisioning works)."""
    return {"name": "datasource", "label": "Data source", "type": "datasource", "query": "prometheus",
            "hide": 0, "includeAll": False, "multi": False, "options": [], "refresh": 1, "regex": "",
            "skipUrlSync": False}


def query_variable(name: str, label: str, query: str, multi: bool = True, include_all: bool = True) -> dict[str, Any]:
    """A Prometheus label_values() variable, refreshed when the time range changes; All is `.*` (one
    regex however many values there are), and a variable without All starts on its first value."""
    v: dict[str, Any] = {"name": name, "label": label, "type": "query", "datasource": DATASOURCE, "query": query,
                         "hide": 0, "includeAll": include_all, "multi": multi, "options": [], "refresh": 2,
                         "regex": "", "skipUrlSync": False, "sort": 1}
    if include_all:
        v["allValue"] = ".*"
        v["current"] = {"selected": True, "text": ["All"] if multi else "All",
                        "value": ["$__all"] if multi else "$__all"}
    return v


def cluster_variable(selector: str) -> dict[str, Any]:
    """Clusters that have the series this dashboard is about (`selector`: a metric, with matchers), so
    every value the list offers fills the dashboard; `cluster` comes from the shipped scrape configs."""
    return query_variable("cluster", "Cluster", f"label_values({selector}, cluster)")


def down_count(selector: str, healthy: str = "== bool 0") -> str:
    """How many of the selected series are unhealthy: 0 when all are fine, and no data (never a
    reassuring 0) when nothing matches, e.g. `sum(up{...} == bool 0)`. Never `or vector(0)`."""
    return f"sum({selector} {healthy})"


def instance_variable(metric: str, multi: bool = True) -> dict[str, Any]:
    return query_variable("instance", "Instance", f'label_values({metric}{{{CLUSTER}}}, instance)',
                          multi=multi, include_all=multi)


# --- layout and output ------------------------------------------------------------------------------

def layout(panels: Sequence[Panel]) -> list[dict[str, Any]]:
    """Flow panels left to right in 24 columns, a row header starting a new line; ids in order."""
    out: list[dict[str, Any]] = []
    x = y = line_h = 0
    for i, p in enumerate(panels, start=1):
        if p.json["type"] == "row" or x + p.w > WIDTH:
            x, y, line_h = 0, y + line_h, 0
        body = dict(p.json)
        body["id"] = i
        body["gridPos"] = {"x": x, "y": y, "w": p.w, "h": p.h}
        out.append(body)
        x += p.w
        line_h = max(line_h, p.h)
        if p.json["type"] == "row":
            x, y, line_h = 0, y + p.h, 0
    return out


LEGACY_KEYS = ("__inputs", "rows", "hideControls", "sharedCrosshair", "style", "gnetId")


def to_json(d: Dashboard) -> dict[str, Any]:
    """The dashboard as Grafana 10 JSON, stamped as generated (in its description and tags)."""
    stamp = (f"Generated by `hpcwatch generate` from hpcwatch.dashboards.{d.module}; "
             "edit the code, not this JSON.")
    shell = g.Dashboard(
        title=d.title, uid=d.uid, description=f"{d.description} {stamp}", tags=["hpcwatch", GENERATED_TAG, *d.tags],
        templating=g.Templating([]), panels=[], refresh="1m",
        graphTooltip=g.GRAPH_TOOLTIP_MODE_SHARED_CROSSHAIR, time=g.Time(d.time_from, "now"), timezone="browser",
    )
    data = json.loads(json.dumps(shell.to_json_data(), cls=DashboardEncoder))
    for key in LEGACY_KEYS:
        data.pop(key, None)
    data["schemaVersion"] = SCHEMA_VERSION
    data["templating"] = {"list": [datasource_variable(), *d.variables]}
    data["timepicker"] = {}  # grafanalib's carries time_options, which Grafana 12 removes (schema v41)
    data["panels"] = layout(d.panels)
    data["editable"] = False  # provisioned from files: changes belong in the code
    if len(d.uid) > 40:
        raise ValueError(f"dashboard uid {d.uid!r} is longer than Grafana's 40 characters")
    return data


def dumps(data: dict[str, Any]) -> str:
    """Stable text: sorted keys, two-space indent, trailing newline (so regenerating diffs cleanly)."""
    return json.dumps(data, sort_keys=True, indent=2, ensure_ascii=False) + "\n"


def iter_panels(data: dict[str, Any]) -> Iterable[dict[str, Any]]:
    for p in data.get("panels", []):
        yield p
        yield from p.get("panels", [])


def panel_exprs(data: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) for every query of every panel."""
    return [(p["title"], t["expr"]) for p in iter_panels(data) for t in p.get("targets", [])]
