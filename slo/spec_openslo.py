"""OpenSLO: v1alpha as Sloth reads it, and v1 SLO + SLI (ratioMetric good or bad over total, inline or
referenced by name, rolling time windows)."""

from __future__ import annotations

from hpcwatch.slo import conventions as c
from hpcwatch.slo.model import SLO, EventsSLI, RawSLI, SpecObject, frozen_map
from hpcwatch.slo.validate import Fields, check_query
from hpcwatch.slo.windows import WindowsCatalogue

# Sloth's mapping of good/total to a raw error ratio (internal/openslo/spec.go), kept byte for byte.
_V1ALPHA_RAW = "\n  1 - (\n    (\n      {good}\n    )\n    /\n    (\n      {total}\n    )\n  )\n"
OPENSLO_V1ALPHA = "openslo/v1alpha"
OPENSLO_V1 = "openslo/v1"


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
    tws = spec.get("timeWindows")
    if not isinstance(tws, list) or len(tws) != 1 or not isinstance(tws[0], dict):
        raise f.fail("spec.timeWindows", "exactly one time window", tws)
    tw = tws[0]
    if tw.get("count") != 30 or str(tw.get("unit", "")).lower() != "day":
        raise f.fail("spec.timeWindows[0]", "count: 30, unit: Day (Sloth reads only 30-day windows)", tw)
    period_s = 30 * 86400
    objectives = spec.get("objectives")
    if not isinstance(objectives, list) or not objectives:
        raise f.fail("spec.objectives", "a list of at least one objective", objectives)
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
                       source=path, spec=OPENSLO_V1ALPHA, mode=c.MODE_OPENSLO,
                       origin=SpecObject(path, index, OPENSLO_V1ALPHA)))
    return out


class OpenSLOv1Index:
    """OpenSLO v1 documents of one load: SLIs by name, then SLOs resolved against them."""

    def __init__(self) -> None:
        self.slis: dict[str, tuple[str, dict]] = {}
        self.slo_docs: list[tuple[str, dict]] = []

    def add(self, doc: dict, path: str) -> None:
        f = Fields(path)
        kind = doc.get("kind")
        if kind == "SLI":
            name = f.name(f.mapping(doc.get("metadata"), "metadata"), "name", "metadata.name")
            if name in self.slis:
                raise f.fail("metadata.name", "an SLI name not already defined", name)
            self.slis[name] = (path, doc)
        elif kind == "SLO":
            self.slo_docs.append((path, doc))
        elif kind not in ("Service", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "DataSource"):
            raise f.fail("kind", "SLO or SLI (or Service, AlertPolicy, ... which are ignored)", kind)

    def slos(self, catalogue: WindowsCatalogue, extra: dict) -> list[SLO]:
        return [s for path, doc in self.slo_docs for s in self._slo(path, doc, catalogue, extra)]

    def _slo(self, path: str, doc: dict, catalogue: WindowsCatalogue, extra: dict) -> list[SLO]:
        f = Fields(path)
        meta = f.mapping(doc.get("metadata"), "metadata")
        name = f.name(meta, "name", "metadata.name")
        f = Fields(path, name)
        spec = f.mapping(doc.get("spec"), "spec")
        service = f.name(spec, "service", "spec.service")
        if spec.get("budgetingMethod", "Occurrences") != "Occurrences":
            raise f.fail("spec.budgetingMethod", "Occurrences (ratio of events)", spec.get("budgetingMethod"))
        period_s = self._period(f, spec.get("timeWindow"))
        sli = self._sli(f, spec)
        objectives = spec.get("objectives")
        if not isinstance(objectives, list) or not objectives:
            raise f.fail("spec.objectives", "a list of at least one objective", objectives)
        labels = {**f.labels(meta.get("labels"), "metadata.labels"), **extra}
        out = []
        for i, o in enumerate(objectives):
            field = f"spec.objectives[{i}]"
            o = f.mapping(o, field)
            if "targetPercent" in o:
                objective = f.number(o, "targetPercent", field + ".targetPercent", 0, 100)
            else:
                objective = f.number(o, "target", field + ".target", 0, 1) * 100
            slo_name = name if len(objectives) == 1 else f"{name}-{o.get('name') or i}"
            out.append(SLO(id=c.slo_id(service, slo_name), name=slo_name, service=service, objective=objective,
                           period_s=period_s, sli=sli, windows=catalogue.get(period_s),
                           labels=frozen_map(labels),
                           description=spec.get("description") if isinstance(spec.get("description"), str)
                           else "", source=path, spec=OPENSLO_V1, mode=c.MODE_OPENSLO,
                           events_per_second=False))
        return out

    def _period(self, f: Fields, tw: object) -> int:
        if not isinstance(tw, list) or len(tw) != 1 or not isinstance(tw[0], dict):
            raise f.fail("spec.timeWindow", "exactly one time window", tw)
        if tw[0].get("isRolling") is not True:
            raise f.fail("spec.timeWindow[0].isRolling", "true (calendar windows are not supported)",
                         tw[0].get("isRolling"))
        s = f.duration(tw[0].get("duration"), "spec.timeWindow[0].duration")
        if s % 86400:
            raise f.fail("spec.timeWindow[0].duration", "whole days such as 28d or 30d", tw[0].get("duration"))
        return s

    def _sli(self, f: Fields, spec: dict) -> EventsSLI:
        if spec.get("indicator") is not None:
            sli_doc, field = spec["indicator"], "spec.indicator"
        elif spec.get("indicatorRef") is not None:
            ref = spec["indicatorRef"]
            if not isinstance(ref, str) or ref not in self.slis:
                raise f.fail("spec.indicatorRef", "the name of an SLI in the inputs: " +
                             (", ".join(sorted(self.slis)) or "none given"), ref)
            sli_doc, field = self.slis[ref][1], f"SLI {ref}"
        else:
            raise f.fail("spec.indicator", "an inline indicator or an indicatorRef", None)
        sli_doc = f.mapping(sli_doc, field)
        sli_spec = f.mapping(sli_doc.get("spec"), field + ".spec")
        rm = f.mapping(sli_spec.get("ratioMetric"), field + ".spec.ratioMetric")
        total = self._query(f, rm.get("total"), field + ".spec.ratioMetric.total")
        if rm.get("bad") is not None and rm.get("good") is None:
            return EventsSLI(self._query(f, rm["bad"], field + ".spec.ratioMetric.bad"), total)
        if rm.get("good") is not None and rm.get("bad") is None:
            good = self._query(f, rm["good"], field + ".spec.ratioMetric.good")
            # Errors are what the good events leave of the total; kept as events so the guard works.
            return EventsSLI(f"({total}) - ({good})", total)
        raise f.fail(field + ".spec.ratioMetric", "exactly one of good or bad, with total", sorted(rm))

    def _query(self, f: Fields, obj: object, field: str) -> str:
        m = f.mapping(obj, field)
        src = f.mapping(m.get("metricSource"), field + ".metricSource")
        if str(src.get("type", "")).lower() != "prometheus":
            raise f.fail(field + ".metricSource.type", "Prometheus", src.get("type"))
        spec = f.mapping(src.get("spec"), field + ".metricSource.spec")
        key = "query" if "query" in spec else "promql"
        q = f.string(spec, key, f"{field}.metricSource.spec.{key}")
        check_query(q, f, f"{field}.metricSource.spec.{key}")
        return q
