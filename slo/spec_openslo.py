"""OpenSLO v1alpha as Sloth reads it (each objective a raw SLI `1 - good/total`), with any window
OpenSLO allows; OpenSLO v1 is `openslo_v1`."""

from __future__ import annotations

from hpcwatch.slo import conventions as c
from hpcwatch.slo.model import SLO, RawSLI, SpecObject, frozen_map
from hpcwatch.slo.openslo_time import calendar, nominal_seconds
from hpcwatch.slo.validate import Fields
from hpcwatch.slo.windows import WindowsCatalogue

# Sloth's mapping of good/total to a raw error ratio (internal/openslo/spec.go), kept byte for byte.
_V1ALPHA_RAW = "\n  1 - (\n    (\n      {good}\n    )\n    /\n    (\n      {total}\n    )\n  )\n"
OPENSLO_V1ALPHA = "openslo/v1alpha"


def load_openslo_v1alpha(doc: dict, path: str, catalogue: WindowsCatalogue, extra: dict,
                         index: int = 0) -> list[SLO]:
    f = Fields(path)
    if doc.get("kind") != "SLO":
        raise f.fail("kind", "SLO", doc.get("kind"))
    meta = f.mapping(doc.get("metadata"), "metadata")
    name = f.name(meta, "name", "metadata.name")
    f = Fields(path, name)
    spec = f.mapping(doc.get("spec"), "spec")
    service = f.name(spec, "service", "spec.service")
    if "timeWindow" in spec or "indicatorRef" in spec:
        raise f.fail("apiVersion", "openslo/v1 for a document with spec.timeWindow or indicatorRef (v1alpha has "
                     "timeWindows and per-objective ratioMetrics)", doc.get("apiVersion"))
    if isinstance(spec.get("indicator"), dict) and "thresholdMetric" in spec["indicator"]:
        raise f.fail("spec.indicator.thresholdMetric", "ratioMetrics per objective: v1alpha is read as Sloth reads "
                     "it; write threshold SLOs as openslo/v1", "thresholdMetric")
    tws = spec.get("timeWindows")
    if not isinstance(tws, list) or len(tws) != 1 or not isinstance(tws[0], dict):
        raise f.fail("spec.timeWindows", "exactly one time window", tws)
    period_s, cal = _v1alpha_window(f, tws[0])
    objectives = f.items(spec.get("objectives"), "spec.objectives", "objective")
    out = []
    for i, o in enumerate(objectives):
        field = f"spec.objectives[{i}]"
        o = f.mapping(o, field)
        target = f.number(o, "target", field + ".target", 0, 1)
        rm = f.mapping(o.get("ratioMetrics"), field + ".ratioMetrics")
        queries = {}
        for part in ("good", "total"):
            q = f.mapping(rm.get(part), f"{field}.ratioMetrics.{part}")
            if q.get("source") not in ("prometheus", "sloth"):
                raise f.fail(f"{field}.ratioMetrics.{part}.source", "prometheus or sloth", q.get("source"))
            if q.get("queryType") != "promql":
                raise f.fail(f"{field}.ratioMetrics.{part}.queryType", "promql", q.get("queryType"))
            queries[part] = f.query(q, "query", f"{field}.ratioMetrics.{part}.query")
        slo_name = f"{name}-{i}"
        out.append(SLO(id=f"{service}-{name}-{i}", name=slo_name, service=service, objective=target * 100,
                       period_s=period_s, sli=RawSLI(_V1ALPHA_RAW.format(**queries)),
                       windows=catalogue.get(period_s), labels=frozen_map(extra),
                       description=spec.get("description") if isinstance(spec.get("description"), str) else "",
                       source=path, spec=OPENSLO_V1ALPHA, mode=c.MODE_OPENSLO, calendar=cal,
                       origin=SpecObject(path, index, OPENSLO_V1ALPHA)))
    return out


_UNITS = {"second": "s", "minute": "m", "hour": "h", "day": "d", "week": "w", "month": "M", "quarter": "Q",
          "year": "Y"}


def _v1alpha_window(f: Fields, tw: dict):
    """`{count, unit, isRolling, calendar}`: rolling or calendar-aligned, in any of v1alpha's units."""
    f.only(tw, "spec.timeWindows[0]", {"count", "unit", "isRolling", "calendar"})
    count, unit = tw.get("count"), _UNITS.get(str(tw.get("unit", "")).lower())
    if isinstance(count, bool) or not isinstance(count, int) or count <= 0 or unit is None:
        raise f.fail("spec.timeWindows[0]", "count (a whole number) and unit (Second, Minute, Hour, Day, Week, "
                     "Month, Quarter or Year)", tw)
    period_s = nominal_seconds(count, unit) if unit != "s" else count
    if f.boolean(tw, "isRolling", "spec.timeWindows[0].isRolling", default="calendar" not in tw):
        return period_s, None
    cal = f.mapping(tw.get("calendar"), "spec.timeWindows[0].calendar")
    try:
        return period_s, calendar(count, unit, cal.get("startTime"), str(cal.get("timeZone", "UTC")))
    except ValueError as exc:
        raise f.fail("spec.timeWindows[0].calendar", str(exc), cal) from None
