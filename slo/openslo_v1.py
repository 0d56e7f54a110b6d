"""OpenSLO v1 as people write it: objects in YAML lists or documents across files, SLIs and alert
policies referenced by name, list-valued labels, every budgeting method, rolling and calendar
windows, and burn-rate alert conditions. What Prometheus rules cannot mean is refused, saying why."""

from __future__ import annotations

import re

from hpcwatch.slo import conventions as c
from hpcwatch.slo.model import SLO, BurnRateAlert, EventsSLI, RawSLI, SpecObject, frozen_map
from hpcwatch.slo.openslo_sli import Budgeting, RatioQueries, ratio_sli, slice_duration, threshold_sli, windowed
from hpcwatch.slo.openslo_time import calendar, nominal_seconds, parse_shorthand
from hpcwatch.slo.validate import LABEL_NAME, Fields, check_query
from hpcwatch.slo.windows import WindowsCatalogue

OPENSLO_V1 = "openslo/v1"
KINDS = ("SLO", "SLI", "AlertPolicy", "AlertCondition", "AlertNotificationTarget", "Service", "DataSource")
METHODS = ("Occurrences", "Timeslices", "RatioTimeslices")
OPS = ("lt", "lte", "gt", "gte")
_OBJECT = {"apiVersion", "kind", "metadata", "spec"}


def openslo_labels(f: Fields, obj: object, field: str) -> dict[str, str]:
    """metadata.labels: string or list-of-strings values (a list becomes `a,b`); keys that are not
    Prometheus label names get `_` for each other character (`cost-centre` -> `cost_centre`)."""
    m = f.mapping(obj, field, required=False)
    out = {}
    for k, v in m.items():
        values = v if isinstance(v, list) else [v]
        if not values or not all(isinstance(x, (str, int, float)) and not isinstance(x, bool) for x in values):
            raise f.fail(f"{field}.{k}", "a string or a list of strings", v)
        key = re.sub(r"[^a-zA-Z0-9_]", "_", k)
        key = key if LABEL_NAME.match(key) else f"_{key}"
        if key in c.RESERVED_LABELS:
            raise f.fail(f"{field}.{k}", "a label name not reserved for the SLO engine", k)
        out[key] = ",".join(str(x) for x in values)
    return out


def _slug(text: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-")


class OpenSLOv1Index:
    """OpenSLO v1 objects of one load, by kind and name; SLOs are built once every object is known."""

    def __init__(self) -> None:
        self.objects: dict[str, dict[str, tuple[str, dict]]] = {k: {} for k in KINDS}

    def add(self, doc: dict, path: str) -> None:
        f = Fields(path)
        kind = doc.get("kind")
        if kind not in KINDS:
            raise f.fail("kind", "an OpenSLO v1 kind: " + ", ".join(KINDS), kind)
        name = f.name(f.mapping(doc.get("metadata"), "metadata"), "name", "metadata.name")
        if name in self.objects[kind]:
            raise f.fail("metadata.name", f"a {kind} name not already used in {self.objects[kind][name][0]}", name)
        self.objects[kind][name] = (path, doc)

    def slos(self, catalogue: WindowsCatalogue, extra: dict) -> list[SLO]:
        return [s for path, doc in self.objects["SLO"].values() for s in self._slo(path, doc, catalogue, extra)]

    def _ref(self, f: Fields, kind: str, name: object, field: str) -> tuple[dict, str]:
        if not isinstance(name, str) or name not in self.objects[kind]:
            known = ", ".join(sorted(self.objects[kind])) or "none given"
            raise f.fail(field, f"the name of a {kind} in the inputs ({known})", name)
        return self.objects[kind][name][1], f"{kind} {name}"

    def _slo(self, path: str, doc: dict, catalogue: WindowsCatalogue, extra: dict) -> list[SLO]:
        f = Fields(path)
        f.only(doc, None, _OBJECT)
        meta = f.mapping(doc.get("metadata"), "metadata")
        name = f.name(meta, "name", "metadata.name")
        f = Fields(path, name)
        spec = f.mapping(doc.get("spec"), "spec")
        f.only(spec, "spec", {"description", "service", "indicator", "indicatorRef", "timeWindow",
                              "budgetingMethod", "objectives", "alertPolicies"})
        service = f.name(spec, "service", "spec.service")
        period_s, cal = self._window(f, spec.get("timeWindow"))
        method = spec.get("budgetingMethod", "Occurrences")
        if method not in METHODS:
            raise f.fail("spec.budgetingMethod", " or ".join(METHODS), method)
        sli_doc, sli_field = self._indicator(f, spec)
        labels = {**openslo_labels(f, meta.get("labels"), "metadata.labels"), **extra}
        objectives = f.items(spec.get("objectives"), "spec.objectives", "objective")
        burn = self._alerts(f, spec.get("alertPolicies"))
        out = []
        for i, o in enumerate(objectives):
            field = f"spec.objectives[{i}]"
            o = f.mapping(o, field)
            f.only(o, field, {"displayName", "op", "value", "target", "targetPercent", "timeSliceTarget",
                              "timeSliceWindow", "indicator", "indicatorRef", "compositeWeight"})
            if {"indicator", "indicatorRef", "compositeWeight"} & set(o):
                raise f.fail(field + ".indicator", "an objective without its own indicator: composite SLOs "
                             "combine several SLIs' budgets, which one SLO's recording rules cannot carry; "
                             "write one SLO per indicator", "composite objective")
            objective = self._target(f, o, field)
            budgeting = self._budgeting(f, o, field, method)
            sli = self._sli(f, sli_doc, sli_field, o, field, budgeting)
            label = _slug(str(o.get("displayName", ""))) or str(i)
            slo_name = name if len(objectives) == 1 else f"{name}-{label}"
            slo = SLO(id=c.slo_id(service, slo_name), name=slo_name, service=service, objective=objective,
                      period_s=period_s, sli=sli, windows=catalogue.get(period_s), labels=frozen_map(labels),
                      description=spec.get("description") if isinstance(spec.get("description"), str) else "",
                      source=path, spec=OPENSLO_V1, mode=c.MODE_OPENSLO, origin=SpecObject(path, 0, OPENSLO_V1),
                      burn_alerts=tuple(_labelled(a, service, slo_name) for a in burn), calendar=cal)
            self._check_slices(f, slo, budgeting, field)
            out.append(slo)
        return out

    def _window(self, f: Fields, tw: object):
        if not isinstance(tw, list) or len(tw) != 1 or not isinstance(tw[0], dict):
            raise f.fail("spec.timeWindow", "exactly one time window", tw)
        w = f.mapping(tw[0], "spec.timeWindow[0]")
        f.only(w, "spec.timeWindow[0]", {"duration", "isRolling", "calendar"})
        try:
            n, unit = parse_shorthand(w.get("duration"))
        except ValueError as exc:
            raise f.fail("spec.timeWindow[0].duration", str(exc).split(" is not ")[-1], w.get("duration")) from None
        rolling = f.boolean(w, "isRolling", "spec.timeWindow[0].isRolling", default="calendar" not in w)
        period_s = nominal_seconds(n, unit)
        if rolling:
            if "calendar" in w:
                raise f.fail("spec.timeWindow[0].isRolling", "false with a calendar (a rolling window has none)",
                             True)
            return period_s, None
        cal = f.mapping(w.get("calendar"), "spec.timeWindow[0].calendar")
        f.only(cal, "spec.timeWindow[0].calendar", {"startTime", "timeZone"})
        try:
            return period_s, calendar(n, unit, cal.get("startTime"), str(cal.get("timeZone", "UTC")))
        except ValueError as exc:
            raise f.fail("spec.timeWindow[0].calendar", str(exc), cal) from None

    def _indicator(self, f: Fields, spec: dict) -> tuple[dict, str]:
        if spec.get("indicator") is not None and spec.get("indicatorRef") is not None:
            raise f.fail("spec.indicator", "an inline indicator or an indicatorRef, not both", "both")
        if spec.get("indicator") is not None:
            return f.mapping(spec["indicator"], "spec.indicator"), "spec.indicator"
        if spec.get("indicatorRef") is not None:
            return self._ref(f, "SLI", spec["indicatorRef"], "spec.indicatorRef")
        raise f.fail("spec.indicator", "an inline indicator or an indicatorRef", None)

    def _target(self, f: Fields, o: dict, field: str) -> float:
        if ("target" in o) == ("targetPercent" in o):
            raise f.fail(field + ".target", "exactly one of target (0..1) or targetPercent (0..100)", o)
        if "targetPercent" in o:
            return f.percent(o, "targetPercent", field + ".targetPercent")
        target = f.number(o, "target", field + ".target", 0, 1)
        if target >= 1:
            raise f.fail(field + ".target", "a ratio below 1 such as 0.999 (1 leaves no error budget)", target)
        return target * 100

    def _budgeting(self, f: Fields, o: dict, field: str, method: str) -> Budgeting:
        if method == "Occurrences":
            for key in ("timeSliceTarget", "timeSliceWindow"):
                if key in o:
                    raise f.fail(f"{field}.{key}", "no time slices with budgetingMethod Occurrences", o[key])
            return Budgeting(method)
        window = slice_duration(f, o.get("timeSliceWindow"), field + ".timeSliceWindow")
        target = None
        if method == "Timeslices":
            target = f.number(o, "timeSliceTarget", field + ".timeSliceTarget", 0, 1)
        elif "timeSliceTarget" in o:
            raise f.fail(field + ".timeSliceTarget", "no timeSliceTarget with RatioTimeslices (the slices' "
                         "ratios are averaged, none is judged good or bad)", o["timeSliceTarget"])
        return Budgeting(method, window, target)

    def _check_slices(self, f: Fields, slo: SLO, b: Budgeting, field: str) -> None:
        from hpcwatch.slo.goformat import parse_duration, prom_duration

        if b.slice is None:
            return
        s = parse_duration(b.slice)
        bad = [w for w in slo.sli_windows() if w % s]
        if bad:
            raise f.fail(field + ".timeSliceWindow", "a slice that divides every alert window ("
                         + ", ".join(prom_duration(w) for w in slo.sli_windows()) + ")", b.slice)

    def _sli(self, f: Fields, sli_doc: dict, where: str, o: dict, ofield: str, b: Budgeting) -> EventsSLI | RawSLI:
        spec = f.mapping(sli_doc.get("spec"), where + ".spec")
        f.only(spec, where + ".spec", {"description", "thresholdMetric", "ratioMetric"})
        if ("thresholdMetric" in spec) == ("ratioMetric" in spec):
            raise f.fail(where + ".spec", "exactly one of ratioMetric or thresholdMetric", sorted(spec))
        if "thresholdMetric" in spec:
            value = o.get("value")
            if o.get("op") not in OPS or isinstance(value, bool) or not isinstance(value, (int, float)):
                raise f.fail(ofield + ".op", "op (lt, lte, gt, gte) and a numeric value: a thresholdMetric "
                             "objective says which values are good", {k: o.get(k) for k in ("op", "value")})
            q = self._query(f, spec["thresholdMetric"], where + ".spec.thresholdMetric")
            check_query(q, f, where + ".spec.thresholdMetric", windowed=False)
            return threshold_sli(q, o["op"], float(o["value"]), b)
        rm = f.mapping(spec["ratioMetric"], where + ".spec.ratioMetric")
        field = where + ".spec.ratioMetric"
        f.only(rm, field, {"counter", "good", "bad", "total", "rawType", "raw"})
        counter = f.boolean(rm, "counter", field + ".counter", default=None)
        if "raw" in rm:
            if {"good", "bad", "total"} & set(rm) or rm.get("rawType") not in ("success", "failure"):
                raise f.fail(field, "raw with rawType success or failure, and no good, bad or total", sorted(rm))
            raw = self._query(f, rm["raw"], field + ".raw")
            check_query(raw, f, field + ".raw", windowed=False)
            try:
                return ratio_sli(RatioQueries(raw=raw, raw_type=rm["rawType"]), b)
            except ValueError as exc:
                raise f.fail(field + ".raw", str(exc), raw) from None
        if "total" not in rm or ("good" in rm) == ("bad" in rm):
            raise f.fail(field, "total with exactly one of good or bad", sorted(rm))
        q = {k: windowed(f, self._query(f, rm[k], f"{field}.{k}"), f"{field}.{k}", counter)
             for k in ("good", "bad", "total") if k in rm}
        return ratio_sli(RatioQueries(**q), b)

    def _query(self, f: Fields, obj: object, field: str) -> str:
        m = f.mapping(obj, field)
        f.only(m, field, {"metricSource"})
        src = f.mapping(m.get("metricSource"), field + ".metricSource")
        f.only(src, field + ".metricSource", {"metricSourceRef", "type", "spec"})
        kind = src.get("type")
        if kind is None and src.get("metricSourceRef") is not None:
            ds, _ = self._ref(f, "DataSource", src["metricSourceRef"], field + ".metricSource.metricSourceRef")
            kind = (ds.get("spec") or {}).get("type") if isinstance(ds.get("spec"), dict) else None
        if str(kind or "").lower() != "prometheus":
            raise f.fail(field + ".metricSource.type", "Prometheus: hpcwatch writes Prometheus rules, so it can "
                         "only run PromQL queries", kind)
        spec = f.mapping(src.get("spec"), field + ".metricSource.spec")
        key = "promql" if "promql" in spec and "query" not in spec else "query"
        return f.string(spec, key, f"{field}.metricSource.spec.{key}")

    def _alerts(self, f: Fields, policies: object) -> list[BurnRateAlert]:
        if policies is None:
            return []
        if not isinstance(policies, list):
            raise f.fail("spec.alertPolicies", "a list of alert policies (names, alertPolicyRef or inline)",
                         policies)
        out = []
        for i, item in enumerate(policies):
            field = f"spec.alertPolicies[{i}]"
            if isinstance(item, str):
                doc, field = self._ref(f, "AlertPolicy", item, field)
            elif isinstance(item, dict) and "alertPolicyRef" in item:
                doc, field = self._ref(f, "AlertPolicy", item["alertPolicyRef"], field + ".alertPolicyRef")
            else:
                doc = self._inline(f, item, field, "AlertPolicy")
            out.extend(self._policy(f, doc, field))
        return out

    def _inline(self, f: Fields, obj: object, field: str, kind: str) -> dict:
        doc = f.mapping(obj, field)
        f.only(doc, field, _OBJECT)
        if doc.get("kind", kind) != kind:
            raise f.fail(field + ".kind", kind, doc.get("kind"))
        f.name(f.mapping(doc.get("metadata"), field + ".metadata"), "name", field + ".metadata.name")
        return doc

    def _policy(self, f: Fields, doc: dict, field: str) -> list[BurnRateAlert]:
        spec = f.mapping(doc.get("spec"), field + ".spec")
        f.only(spec, field + ".spec", {"description", "alertWhenNoData", "alertWhenResolved", "alertWhenBreaching",
                                       "conditions", "notificationTargets"})
        breaching = f.boolean(spec, "alertWhenBreaching", field + ".spec.alertWhenBreaching", default=True)
        no_data = f.boolean(spec, "alertWhenNoData", field + ".spec.alertWhenNoData")
        f.boolean(spec, "alertWhenResolved", field + ".spec.alertWhenResolved")  # Alertmanager's send_resolved
        targets = []
        for j, t in enumerate(spec.get("notificationTargets") or []):
            tf = f"{field}.spec.notificationTargets[{j}]"
            if isinstance(t, dict) and "targetRef" in t:
                targets.append(self._ref(f, "AlertNotificationTarget", t["targetRef"], tf + ".targetRef")[0]
                               ["metadata"]["name"])
            else:
                targets.append(self._inline(f, t, tf, "AlertNotificationTarget")["metadata"]["name"])
        conditions = f.items(spec.get("conditions"), field + ".spec.conditions", "alert condition")
        out = []
        for j, cond in enumerate(conditions):
            cf = f"{field}.spec.conditions[{j}]"
            if isinstance(cond, dict) and "conditionRef" in cond:
                cdoc, cf = self._ref(f, "AlertCondition", cond["conditionRef"], cf + ".conditionRef")
            else:
                cdoc = self._inline(f, cond, cf, "AlertCondition")
            out.extend(self._condition(f, cdoc, cf, breaching, no_data, targets))
        return out

    def _condition(self, f: Fields, doc: dict, field: str, breaching: bool, no_data: bool,
                   targets: list[str]) -> list[BurnRateAlert]:
        name = doc["metadata"]["name"]
        spec = f.mapping(doc.get("spec"), field + ".spec")
        f.only(spec, field + ".spec", {"description", "severity", "condition"})
        severity = f.string(spec, "severity", field + ".spec.severity")
        cond = f.mapping(spec.get("condition"), field + ".spec.condition")
        cfield = field + ".spec.condition"
        f.only(cond, cfield, {"kind", "op", "threshold", "lookbackWindow", "alertAfter"})
        if cond.get("kind", "burnrate") != "burnrate":
            raise f.fail(cfield + ".kind", "burnrate (the only kind OpenSLO v1 defines)", cond.get("kind"))
        if cond.get("op") not in OPS:
            raise f.fail(cfield + ".op", "lt, lte, gt or gte", cond.get("op"))
        threshold = f.number(cond, "threshold", cfield + ".threshold", 0, 1e9)
        window = self._duration(f, cond.get("lookbackWindow"), cfield + ".lookbackWindow")
        after = self._duration(f, cond.get("alertAfter"), cfield + ".alertAfter") if "alertAfter" in cond else 0
        ann = {"summary": f"{{{{$labels.{c.LABEL_SERVICE}}}}} {{{{$labels.{c.LABEL_SLO}}}}}: burn rate over "
               f"{cond['lookbackWindow']} {cond['op']} {threshold:g} (OpenSLO alert condition {name})"}
        if isinstance(spec.get("description"), str):
            ann["description"] = spec["description"]
        if targets:
            ann["notification_targets"] = ", ".join(targets)
        out = []
        if breaching:
            out.append(BurnRateAlert(name, severity, cond["op"], threshold, window, after, annotations=frozen_map(ann)))
        if no_data:
            out.append(BurnRateAlert(f"{name}-no-data", severity, cond["op"], threshold, window, after,
                                     annotations=frozen_map({**ann, "summary": ann["summary"] + ": no data"}),
                                     no_data=True))
        return out

    def _duration(self, f: Fields, value: object, field: str) -> int:
        try:
            n, unit = parse_shorthand(value)
        except ValueError:
            raise f.fail(field, "an OpenSLO duration such as 5m, 1h or 1d", value) from None
        return nominal_seconds(n, unit)


def _labelled(a: BurnRateAlert, service: str, name: str) -> BurnRateAlert:
    """The SLO's id on the alert rule itself: two SLOs sharing a policy stay two distinct rules."""
    import dataclasses

    return dataclasses.replace(a, labels=frozen_map({c.LABEL_ID: c.slo_id(service, name)}))
