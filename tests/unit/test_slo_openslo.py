"""OpenSLO v1 as people write it: lists, multi-document files, references across files, list-valued
labels, every budgeting method, rolling and calendar windows, alert policies; refusals that say why."""

from __future__ import annotations

import os

import pytest
import yaml
from hpcwatch.slo import SpecError, load_specs
from hpcwatch.slo.generate import Options, alert_rules
from hpcwatch.slo.loader import load_documents
from hpcwatch.slo.output import Target, render_outputs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo", "openslo")
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
CASES = {"objects-list": ["objects-list.yaml"], "budgeting": ["budgeting.yaml"],
         "references": ["slis.yaml", "slos.yaml", "alerting.yaml"]}


def _load(names: list[str]):
    return load_specs([os.path.join(FIX, n) for n in names])


@pytest.mark.parametrize("case", sorted(CASES))
def test_expected_rules(case):
    slos = _load(CASES[case])
    text = render_outputs(slos, Target("-"), Options("test"))["-"]
    path = os.path.join(FIX, "expected", f"{case}.yml")
    if UPDATE:
        with open(path, "w") as fh:
            fh.write(text)
    with open(path) as fh:
        assert text == fh.read(), f"{case} differs from expected/{case}.yml (UPDATE_GOLDEN=1 to accept)"


def test_lists_and_references_across_files():
    slos = {s.name: s for s in _load(CASES["references"])}
    assert set(slos) == {"slurmctld-rpc", "login-sessions-fast", "login-sessions-usable", "wifi-satisfaction",
                         "annotator-lag"}
    rpc = slos["slurmctld-rpc"]
    # counter: true without {{.window}}: the counter's increase over each window, behind a DataSource ref.
    assert rpc.sli.total_query == "sum(increase(hpc_slurm_rpc_total[{{.window}}]))"
    assert rpc.sli.error_query.startswith("(sum(increase(hpc_slurm_rpc_total[{{.window}}]))) - (sum(increase(")
    assert dict(rpc.labels) == {"tier": "critical"} and rpc.period_s == 28 * 86400
    # counter: false: every sample counts its events.
    fast = slos["login-sessions-fast"].sli.error_query
    assert "sum_over_time(login_sessions_started{slow=\"true\"}[{{.window}}])" in fast
    assert slos["login-sessions-fast"].period_s == 30 * 86400  # a rolling 1M is 30 days
    assert [s.objective for s in (slos["login-sessions-fast"], slos["login-sessions-usable"])] == [99, 95]
    assert slos["wifi-satisfaction"].sli.error_ratio_query.startswith("1 - (sum(sum_over_time(")


def test_list_valued_labels_and_calendar():
    (slo,) = _load(CASES["objects-list"])
    assert dict(slo.labels) == {"cost_centre": "project1", "env": "prod", "team": "team-a,team-b"}
    assert slo.calendar is not None and slo.period_s == 7 * 86400 and slo.calendar.max_s == 7 * 86400
    # Timeslices: the fraction of 1m slices whose good ratio is below 0.95.
    assert "< bool 0.95)[{{.window}}:1m])" in slo.sli.error_ratio_query


def test_alert_policies_become_alerts():
    slo = next(s for s in _load(CASES["references"]) if s.name == "slurmctld-rpc")
    rules = {r["alert"]: r for r in alert_rules(slo)}
    assert set(rules) == {"fast-burn", "fast-burn-no-data", "slow-burn"}
    fast = rules["fast-burn"]["expr"]
    assert "slo:sli_error:ratio_rate1h" in fast and "> (14.4 * 0.005" in fast
    assert rules["fast-burn"]["for"] == "5m" and rules["fast-burn"]["labels"]["sloth_severity"] == "page"
    assert rules["fast-burn-no-data"]["expr"].startswith("absent(slo:sli_error:ratio_rate1h{")
    assert ">= (3 * 0.005" in rules["slow-burn"]["expr"] and rules["slow-burn"]["for"] == "30m"
    assert rules["slow-burn"]["annotations"]["notification_targets"] == "on-call-slack-notification"
    assert slo.page_alert is None and slo.ticket_alert is None  # no Sloth page/ticket for OpenSLO


def test_budgeting_methods():
    slos = {s.name: s for s in _load(CASES["budgeting"])}
    assert "avg_over_time(((max(search_latency_milliseconds)) >= bool 500)[{{.window}}:1m])" == \
        slos["search-slo"].sli.error_ratio_query
    ratio = slos["main-page"].sli.error_ratio_query
    assert ratio.startswith("avg_over_time(((") and ratio.endswith(")[{{.window}}:1m])") and "< bool" not in ratio
    sla = slos["service-availability-sla"]
    assert sla.calendar.duration == "1M" and sla.calendar.max_s == 31 * 86400 and sla.objective == 99


def _doc(**spec) -> dict:
    base = {"service": "svc", "budgetingMethod": "Occurrences",
            "timeWindow": [{"duration": "30d", "isRolling": True}],
            "indicator": {"metadata": {"name": "i"}, "spec": {"ratioMetric": {
                "counter": True, "good": _src("sum(good_total)"), "total": _src("sum(all_total)")}}},
            "objectives": [{"target": 0.99}]}
    base.update(spec)
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": {"name": "s"}, "spec": base}


def _src(query: str, kind: str = "Prometheus") -> dict:
    return {"metricSource": {"type": kind, "spec": {"query": query}}}


def _ratio(**rm) -> dict:
    return {"metadata": {"name": "i"}, "spec": {"ratioMetric": rm}}


@pytest.mark.parametrize("spec,field,words", [
    ({"indicator": _ratio(counter=True, good=_src("x", "Datadog"), total=_src("y"))},
     "spec.indicator.spec.ratioMetric.good.metricSource.type", "only run PromQL"),
    ({"objectives": [{"target": 0.99, "indicatorRef": "other"}]}, "spec.objectives[0].indicator", "composite"),
    ({"objectives": [{"targetPercent": 0.99}]}, "spec.objectives[0].targetPercent", "did you mean 99?"),
    ({"objectives": [{"target": 99}]}, "spec.objectives[0].target", "(0, 1]"),
    ({"indicator": _ratio(good=_src("sum(g)"), total=_src("sum(t)"))},
     "spec.indicator.spec.ratioMetric.good", "counter: true"),
    ({"indicator": _ratio(counter=True, good=_src("sum(rate(g[5m]))"), total=_src("sum(t)"))},
     "spec.indicator.spec.ratioMetric.good", "no fixed range"),
    ({"indicator": _ratio(counter=True, good=_src("sum(g"), total=_src("sum(t)"))},
     "spec.indicator.spec.ratioMetric.good", "valid PromQL"),
    ({"timeWindow": [{"duration": "1M", "calendar": {"startTime": "2022-01-31 00:00:00", "timeZone": "UTC"}}]},
     "spec.timeWindow[0].calendar", "start on day 1 to 28"),
    ({"timeWindow": [{"duration": "1M", "calendar": {"startTime": "2022-01-01 00:00:00", "timeZone": "Mars/Base"}}]},
     "spec.timeWindow[0].calendar", "IANA time zone"),
    ({"timeWindow": [{"duration": "30 days", "isRolling": True}]}, "spec.timeWindow[0].duration", "OpenSLO duration"),
    ({"budgetingMethod": "Timeslices", "objectives": [{"target": 0.99, "timeSliceTarget": 0.9,
                                                       "timeSliceWindow": "7m"}]},
     "spec.objectives[0].timeSliceWindow", "divides every alert window"),
    ({"budgetingMethod": "RatioTimeslices", "objectives": [{"target": 0.99, "timeSliceTarget": 0.9,
                                                            "timeSliceWindow": "1m"}]},
     "spec.objectives[0].timeSliceTarget", "no timeSliceTarget"),
    ({"budgetingMethod": "Occurrences", "objectives": [{"target": 0.99, "timeSliceWindow": "1m"}]},
     "spec.objectives[0].timeSliceWindow", "no time slices"),
    ({"indicator": {"metadata": {"name": "i"}, "spec": {"thresholdMetric": _src("max(latency)")}}},
     "spec.objectives[0].op", "thresholdMetric objective"),
    ({"alertPolicies": [{"kind": "AlertPolicy", "metadata": {"name": "p"}, "spec": {"conditions": [
        {"kind": "AlertCondition", "metadata": {"name": "c"}, "spec": {"severity": "page", "condition": {
            "kind": "anomaly", "op": "gt", "threshold": 2, "lookbackWindow": "1h"}}}]}}]},
     "spec.alertPolicies[0].spec.conditions[0].spec.condition.kind", "burnrate"),
    ({"alertPolicies": ["missing-policy"]}, "spec.alertPolicies[0]", "AlertPolicy in the inputs"),
])
def test_refusals_say_what_and_why(spec, field, words):
    with pytest.raises(SpecError) as exc:
        load_documents([("o.yaml", _doc(**spec))])
    assert exc.value.field == field and exc.value.slo == "s" and words in str(exc.value), str(exc.value)


def test_unknown_kind_and_v1alpha_windows():
    with pytest.raises(SpecError, match="an OpenSLO v1 kind"):
        load_documents([("o.yaml", {"apiVersion": "openslo/v1", "kind": "Dashboard", "metadata": {"name": "d"}})])
    doc = {"apiVersion": "openslo/v1alpha", "kind": "SLO", "metadata": {"name": "a"},
           "spec": {"service": "s", "timeWindows": [{"count": 1, "unit": "Week", "isRolling": True}],
                    "objectives": [{"target": 0.99, "ratioMetrics": {
                        "good": {"source": "prometheus", "queryType": "promql", "query": "sum(rate(g[{{.window}}]))"},
                        "total": {"source": "prometheus", "queryType": "promql",
                                  "query": "sum(rate(t[{{.window}}]))"}}}]}}
    (slo,) = load_documents([("a.yaml", doc)])
    assert slo.period_s == 7 * 86400
    doc["spec"]["timeWindows"] = [{"count": 1, "unit": "Month", "calendar": {"startTime": "2022-01-01 00:00:00",
                                                                             "timeZone": "UTC"}}]
    (slo,) = load_documents([("a.yaml", doc)])
    assert slo.calendar is not None and slo.period_s == 30 * 86400


def test_every_fixture_object_is_used():
    """Each fixture file parses as YAML lists or documents of OpenSLO objects."""
    for name in os.listdir(FIX):
        if name.endswith(".yaml"):
            with open(os.path.join(FIX, name)) as fh:
                docs = [d for d in yaml.safe_load_all(fh) if d]
            items = [x for d in docs for x in (d if isinstance(d, list) else [d])]
            assert items and all(x["apiVersion"] == "openslo/v1" for x in items)


_any = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(-5, 5), st.floats(allow_nan=True),
                              st.sampled_from(["", "1M", "5m", "gt", "Prometheus", "sum(x)", "x[{{.window}}]",
                                               "2022-01-01 00:00:00", "UTC", "burnrate", "Timeslices"])),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=3), max_leaves=8)
_paths = st.sampled_from([("timeWindow",), ("budgetingMethod",), ("objectives",), ("indicator",),
                          ("indicator", "spec"), ("indicator", "spec", "ratioMetric"),
                          ("indicator", "spec", "ratioMetric", "counter"), ("indicator", "spec", "ratioMetric", "good"),
                          ("alertPolicies",), ("service",)])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(path=_paths, value=_any, method=st.sampled_from(["Occurrences", "Timeslices", "RatioTimeslices"]))
def test_fuzz_openslo_documents_raise_only_spec_error(path, value, method):
    """A valid document with any one part replaced by anything: a model or a SpecError, nothing else."""
    objective = {"target": 0.99, **({"timeSliceWindow": 1} if method != "Occurrences" else {}),
                 **({"timeSliceTarget": 0.9} if method == "Timeslices" else {})}
    doc = _doc(budgetingMethod=method, objectives=[objective])
    load_documents([("ok.yaml", doc)])
    node = doc["spec"]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    try:
        load_documents([("f.yaml", doc)])
    except SpecError:
        pass


def test_v1alpha_refusals_point_at_v1():
    base = {"apiVersion": "openslo/v1alpha", "kind": "SLO", "metadata": {"name": "a"}}
    with pytest.raises(SpecError, match="expected openslo/v1 for a document with spec.timeWindow"):
        load_documents([("a.yaml", {**base, "spec": {"service": "s", "timeWindow": [{"duration": "1w"}]}})])
    with pytest.raises(SpecError, match="write threshold SLOs as openslo/v1"):
        load_documents([("a.yaml", {**base, "spec": {"service": "s", "indicator": {"thresholdMetric": {}}}})])
