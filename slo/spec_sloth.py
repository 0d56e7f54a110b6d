"""Sloth specs: `prometheus/v1` files and the Kubernetes `PrometheusServiceLevel` CRD (sloth.slok.dev/v1)."""

from __future__ import annotations

import re

from hpcwatch.slo import conventions as c
from hpcwatch.slo.model import SLO, AlertMeta, EventsSLI, GroupIntervals, RawSLI, SpecObject, frozen_map
from hpcwatch.slo.plugins import check_plugins, metricsql, parse_chain
from hpcwatch.slo.validate import Fields
from hpcwatch.slo.windows import WindowsCatalogue

SLOTH_V1 = "prometheus/v1"
SLOTH_K8S = "sloth.slok.dev/v1"

# Job-count SLIs: tens of events an hour, where one failure is a large burn (see docs/slo.md).
LOW_TRAFFIC_METRICS = re.compile(r"hpc_scheduler_(jobs_finished_total|queue_wait_seconds|pending_wait_seconds)")
_RATE = re.compile(r"\b(i?rate)\s*\(")

# hpcwatch extensions Sloth ignores (its YAML decoding is not strict).
EXTENSIONS = {"min_events", "events_per_second"}

SNAKE = {"error_query": "error_query", "total_query": "total_query", "raw_query": "error_ratio_query",
         "page": "page_alert", "ticket": "ticket_alert", "info": "infoLabels"}
CAMEL = {"error_query": "errorQuery", "total_query": "totalQuery", "raw_query": "errorRatioQuery",
         "page": "pageAlert", "ticket": "ticketAlert", "info": "infoLabels"}


def load_sloth(doc: dict, path: str, period_s: int, catalogue: WindowsCatalogue,
               extra_labels: dict[str, str], index: int = 0) -> list[SLO]:
    """SLO models from one Sloth document (prometheus/v1 or the CRD)."""
    f = Fields(path)
    k8s = "apiVersion" in doc
    if k8s:
        f.only(doc, None, {"apiVersion", "kind", "metadata", "spec", "status"})
        if doc.get("kind") != "PrometheusServiceLevel":
            raise f.fail("kind", "PrometheusServiceLevel", doc.get("kind"))
        meta = f.mapping(doc.get("metadata"), "metadata")
        namespace = meta.get("namespace")
        if namespace is not None and not isinstance(namespace, str):
            raise f.fail("metadata.namespace", "a namespace name", namespace)
        # The CRD's identity and selector labels become its PrometheusRule's (Sloth's k8s output).
        origin = SpecObject(path, index, SLOTH_K8S, f.name(meta, "name", "metadata.name"), namespace,
                            frozen_map(f.k8s_labels(meta.get("labels"), "metadata.labels")),
                            frozen_map(f.k8s_labels(meta.get("annotations"), "metadata.annotations")))
        spec, prefix, keys = f.mapping(doc.get("spec"), "spec"), "spec.", CAMEL
        f.only(spec, "spec", {"service", "labels", "slos", "sloPlugins"} | EXTENSIONS)
        plugins = parse_chain(f, spec.get("sloPlugins"), "spec.sloPlugins")
    else:
        origin = SpecObject(path, index, SLOTH_V1)
        spec, prefix, keys = doc, "", SNAKE
        f.only(spec, None, {"version", "service", "labels", "slos", "slo_plugins"} | EXTENSIONS)
        plugins = parse_chain(f, spec.get("slo_plugins"), "slo_plugins")
    service = f.name(spec, "service", prefix + "service")
    svc_labels = f.labels(spec.get("labels"), prefix + "labels")
    default_min = f.integer(spec, "min_events", prefix + "min_events", lo=0)
    slos_raw = f.items(spec.get("slos"), prefix + "slos", "SLO")
    out = []
    for i, raw in enumerate(slos_raw):
        field = f"{prefix}slos[{i}]"
        s = f.mapping(raw, field)
        name = f.name(s, "name", field + ".name")
        out.append(_slo(Fields(path, name), s, field, keys, service, svc_labels, default_min, period_s,
                        catalogue, extra_labels, origin, plugins))
    return out


def _slo(f: Fields, s: dict, field: str, keys: dict, service: str, svc_labels: dict, default_min: int | None,
         period_s: int, catalogue: WindowsCatalogue, extra: dict, origin: SpecObject,
         group_plugins: tuple) -> SLO:
    f.only(s, field, {"name", "description", "objective", "labels", "infoLabels", "sli", "alerting",
                      "interval", "plugins"} | EXTENSIONS)
    name = s["name"]
    k8s = origin.kind == SLOTH_K8S
    objective = f.percent(s, "objective", field + ".objective")
    labels = {**svc_labels, **f.labels(s.get("labels"), field + ".labels"), **extra}
    # Sloth: SLO-level plugins follow the group's, and overridePrevious at SLO level drops the group's.
    own, own_override = parse_chain(f, s.get("plugins"), field + ".plugins")
    plugins = own if own_override else group_plugins[0] + own
    override = own_override or group_plugins[1]
    sli = _sli(f, f.mapping(s.get("sli"), field + ".sli"), field + ".sli", keys, metricsql(plugins, override))
    page, ticket = _alerting(f, s.get("alerting"), field + ".alerting", keys)
    total = sli.total_query if isinstance(sli, EventsSLI) else sli.error_ratio_query
    per_second = f.boolean(s, "events_per_second", field + ".events_per_second", default=None)
    if per_second is None:
        per_second = bool(_RATE.search(total)) and "increase(" not in total
    queries = total + (sli.error_query if isinstance(sli, EventsSLI) else "")
    slo = SLO(
        id=c.slo_id(service, name), name=name, service=service, objective=objective, period_s=period_s,
        sli=sli, windows=catalogue.get(period_s), labels=frozen_map(labels),
        info_labels=frozen_map(f.labels(s.get(keys["info"]), field + "." + keys["info"])),
        description=f.string(s, "description", field + ".description", required=False),
        page_alert=page, ticket_alert=ticket,
        min_events=f.integer(s, "min_events", field + ".min_events", lo=0, default=default_min) or None,
        events_per_second=per_second, low_traffic=bool(LOW_TRAFFIC_METRICS.search(queries)),
        intervals=_intervals(f, s.get("interval"), field + ".interval"), source=f.file,
        spec=SLOTH_K8S if k8s else SLOTH_V1, mode=c.MODE_K8S if k8s else c.MODE_PROM,
        origin=origin, plugins=plugins, override_plugins=override)
    check_plugins(slo, plugins, field + ".plugins")
    return slo


def _sli(f: Fields, sli: dict, field: str, keys: dict, vm: bool = False) -> EventsSLI | RawSLI:
    kinds = [k for k in ("events", "raw", "plugin") if sli.get(k) is not None]
    if len(kinds) != 1:
        raise f.fail(field, "exactly one of events or raw", ", ".join(kinds) or "none")
    if kinds[0] == "plugin":
        pid = sli["plugin"].get("id") if isinstance(sli["plugin"], dict) else sli["plugin"]
        raise f.fail(field + ".plugin.id", f"events or raw; not supported: Sloth SLI plugin `{pid}` "
                     "(SLI plugins are Go code hpcwatch does not run)", pid)
    body = f.mapping(sli[kinds[0]], f"{field}.{kinds[0]}")
    if kinds[0] == "events":
        f.only(body, field + ".events", {keys["error_query"], keys["total_query"]})
        error = f.query(body, keys["error_query"], f"{field}.events.{keys['error_query']}", promql=not vm)
        total = f.query(body, keys["total_query"], f"{field}.events.{keys['total_query']}", promql=not vm)
        if error.strip() == total.strip():
            raise f.fail(f"{field}.events.{keys['total_query']}", "a total query different from the error "
                         "query (the same query makes every window's error ratio 1)", total)
        return EventsSLI(error, total)
    # Sloth has used both spellings for the raw query key.
    key = next((k for k in ("errorRatioQuery", "error_ratio_query") if k in body), keys["raw_query"])
    f.only(body, field + ".raw", {key})
    return RawSLI(f.query(body, key, f"{field}.raw.{key}", promql=not vm))


def _alerting(f: Fields, obj: object, field: str, keys: dict) -> tuple[AlertMeta | None, AlertMeta | None]:
    a = f.mapping(obj, field, required=False)
    f.only(a, field, {"name", "labels", "annotations", keys["page"], keys["ticket"]})
    labels = f.labels(a.get("labels"), field + ".labels")
    annotations = f.labels(a.get("annotations"), field + ".annotations", annotations=True)
    metas = []
    for key in (keys["page"], keys["ticket"]):
        sub = f.mapping(a.get(key), f"{field}.{key}", required=False)
        f.only(sub, f"{field}.{key}", {"disable", "labels", "annotations"})
        if f.boolean(sub, "disable", f"{field}.{key}.disable"):
            metas.append(None)
            continue
        name = a.get("name")
        # Prometheus takes any alert name (it is the alertname label's value); Sloth needs one.
        if not isinstance(name, str) or not name.strip() or "\n" in name:
            raise f.fail(field + ".name", f"an alert name (one line) unless {key} is disabled", name)
        metas.append(AlertMeta(
            name,
            frozen_map({**labels, **f.labels(sub.get("labels"), f"{field}.{key}.labels")}),
            frozen_map({**annotations, **f.labels(sub.get("annotations"), f"{field}.{key}.annotations",
                                                  annotations=True)})))
    return metas[0], metas[1]


def _intervals(f: Fields, obj: object, field: str) -> GroupIntervals:
    m = f.mapping(obj, field, required=False)
    f.only(m, field, {"all", "slierror", "metadata", "alert"})
    every = f.duration(m.get("all"), field + ".all", required=False)
    return GroupIntervals(sli=f.duration(m.get("slierror"), field + ".slierror", required=False) or every,
                          meta=f.duration(m.get("metadata"), field + ".metadata", required=False) or every,
                          alerts=f.duration(m.get("alert"), field + ".alert", required=False) or every)
