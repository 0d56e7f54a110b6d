"""Sloth specs: `prometheus/v1` files and the Kubernetes `PrometheusServiceLevel` CRD (sloth.slok.dev/v1)."""

from __future__ import annotations

import re

from hpcwatch.slo import conventions as c
from hpcwatch.slo.model import SLO, AlertMeta, EventsSLI, GroupIntervals, RawSLI, frozen_map
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
               extra_labels: dict[str, str]) -> list[SLO]:
    """SLO models from one Sloth document (prometheus/v1 or the CRD)."""
    f = Fields(path)
    k8s = "apiVersion" in doc
    if k8s:
        f.only(doc, None, {"apiVersion", "kind", "metadata", "spec", "status"})
        if doc.get("kind") != "PrometheusServiceLevel":
            raise f.fail("kind", "PrometheusServiceLevel", doc.get("kind"))
        meta = f.mapping(doc.get("metadata"), "metadata")
        k8s_name = f.name(meta, "name", "metadata.name")
        namespace = meta.get("namespace") if isinstance(meta.get("namespace"), str) else None
        spec, prefix, keys = f.mapping(doc.get("spec"), "spec"), "spec.", CAMEL
        f.only(spec, "spec", {"service", "labels", "slos"} | EXTENSIONS)
    else:
        k8s_name = namespace = None
        spec, prefix, keys = doc, "", SNAKE
        f.only(spec, None, {"version", "service", "labels", "slos"} | EXTENSIONS)
    service = f.name(spec, "service", prefix + "service")
    svc_labels = f.labels(spec.get("labels"), prefix + "labels")
    default_min = f.integer(spec, "min_events", prefix + "min_events", lo=0)
    slos_raw = spec.get("slos")
    if not isinstance(slos_raw, list) or not slos_raw:
        raise f.fail(prefix + "slos", "a list of at least one SLO", slos_raw)
    out = []
    for i, raw in enumerate(slos_raw):
        field = f"{prefix}slos[{i}]"
        s = f.mapping(raw, field)
        name = f.name(s, "name", field + ".name")
        out.append(_slo(Fields(path, name), s, field, keys, service, svc_labels, default_min, period_s,
                        catalogue, extra_labels, k8s, k8s_name, namespace))
    return out


def _slo(f: Fields, s: dict, field: str, keys: dict, service: str, svc_labels: dict, default_min: int | None,
         period_s: int, catalogue: WindowsCatalogue, extra: dict, k8s: bool, k8s_name, namespace) -> SLO:
    f.only(s, field, {"name", "description", "objective", "labels", "infoLabels", "sli", "alerting",
                      "interval"} | EXTENSIONS)
    name = s["name"]
    objective = f.number(s, "objective", field + ".objective", 0, 100)
    labels = {**svc_labels, **f.labels(s.get("labels"), field + ".labels"), **extra}
    sli = _sli(f, f.mapping(s.get("sli"), field + ".sli"), field + ".sli", keys)
    page, ticket = _alerting(f, s.get("alerting"), field + ".alerting", keys)
    total = sli.total_query if isinstance(sli, EventsSLI) else sli.error_ratio_query
    per_second = f.boolean(s, "events_per_second", field + ".events_per_second", default=None)
    if per_second is None:
        per_second = bool(_RATE.search(total)) and "increase(" not in total
    queries = total + (sli.error_query if isinstance(sli, EventsSLI) else "")
    return SLO(
        id=c.slo_id(service, name), name=name, service=service, objective=objective, period_s=period_s,
        sli=sli, windows=catalogue.get(period_s), labels=frozen_map(labels),
        info_labels=frozen_map(f.labels(s.get(keys["info"]), field + "." + keys["info"])),
        description=f.string(s, "description", field + ".description", required=False),
        page_alert=page, ticket_alert=ticket,
        min_events=f.integer(s, "min_events", field + ".min_events", lo=0, default=default_min) or None,
        events_per_second=per_second, low_traffic=bool(LOW_TRAFFIC_METRICS.search(queries)),
        intervals=_intervals(f, s.get("interval"), field + ".interval"), source=f.file,
        spec=SLOTH_K8S if k8s else SLOTH_V1, mode=c.MODE_K8S if k8s else c.MODE_PROM,
        k8s_name=k8s_name, k8s_namespace=namespace)


def _sli(f: Fields, sli: dict, field: str, keys: dict) -> EventsSLI | RawSLI:
    kinds = [k for k in ("events", "raw", "plugin") if sli.get(k) is not None]
    if len(kinds) != 1:
        raise f.fail(field, "exactly one of events or raw", ", ".join(kinds) or "none")
    if kinds[0] == "plugin":
        raise f.fail(field + ".plugin", "events or raw (Sloth SLI plugins are Go code hpcwatch does not run)")
    body = f.mapping(sli[kinds[0]], f"{field}.{kinds[0]}")
    if kinds[0] == "events":
        f.only(body, field + ".events", {keys["error_query"], keys["total_query"]})
        return EventsSLI(f.query(body, keys["error_query"], f"{field}.events.{keys['error_query']}"),
                         f.query(body, keys["total_query"], f"{field}.events.{keys['total_query']}"))
    # Sloth has used both spellings for the raw query key.
    key = next((k for k in ("errorRatioQuery", "error_ratio_query") if k in body), keys["raw_query"])
    f.only(body, field + ".raw", {key})
    return RawSLI(f.query(body, key, f"{field}.raw.{key}"))


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
        if not isinstance(name, str) or not re.match(r"^[a-zA-Z_][a-zA-Z0-9_:]*$", name):
            raise f.fail(field + ".name", f"an alert name ([a-zA-Z_][a-zA-Z0-9_:]*) unless {key} is disabled",
                         name)
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
