"""Spec loading: typed errors naming file, SLO and field; the CLI exits 2 writing nothing; fuzzing."""

from __future__ import annotations

import os
import stat

import pytest
import yaml
from hpcwatch.slo import SpecError, load_specs
from hpcwatch.slo.goformat import go_float, go_float_f, label_filter, parse_duration, prom_duration
from hpcwatch.slo.loader import load_documents
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hpcwatch.cli import main

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "slo")
GOOD = """version: prometheus/v1
service: svc
slos:
  - name: avail
    objective: 99.5
    sli:
      events:
        error_query: sum(rate(x{code="500"}[{{.window}}]))
        total_query: sum(rate(x[{{.window}}]))
    alerting:
      name: Avail
"""


@pytest.mark.parametrize("x,want", [(14.4, "14.4"), (6.0, "6"), (0.0009999999999999432, "0.0009999999999999432"),
                                    (1.0000000000047748e-05, "1.0000000000047748e-05"), (1e6, "1e+06"),
                                    (123456.0, "123456"), (0.0001, "0.0001"), (0.9990000000000001,
                                                                                "0.9990000000000001")])
def test_go_float(x, want):
    assert go_float(x) == want


def test_go_formats():
    assert go_float_f(95.0) == "95" and go_float_f(99.9) == "99.9"
    assert [prom_duration(s) for s in (300, 86400 * 28, 86400 * 30, 36 * 3600)] == ["5m", "4w", "30d", "1d12h"]
    assert parse_duration("1d12h") == 129600
    assert label_filter({"b": 'q"x', "a": "1"}) == '{a="1", b="q\\"x"}'


def _err(tmp_path, text: str) -> SpecError:
    p = tmp_path / "spec.yaml"
    p.write_text(text)
    with pytest.raises(SpecError) as exc:
        load_specs([str(p)])
    return exc.value


@pytest.mark.parametrize("old,new,field,slo", [
    ("objective: 99.5", "objective: 101", "slos[0].objective", "avail"),
    ("objective: 99.5", "objective: '99'", "slos[0].objective", "avail"),
    ("      name: Avail\n", "      labels: {x: y}\n", "slos[0].alerting.name", "avail"),
    ("[{{.window}}]))\n        total", "[{{.Window}}]))\n        total", "slos[0].sli.events.error_query", "avail"),
    ("sum(rate(x[{{.window}}]))\n", "sum(rate(x[{{.window}}])\n", "slos[0].sli.events.total_query", "avail"),
    ("    objective", "    objetive: 1\n    objective", "slos[0].objetive", "avail"),
    ("service: svc", "service: ''", "service", None),
    # A fixed range makes every window the same 5m: Sloth refuses it, so do we.
    ("sum(rate(x[{{.window}}]))\n", "sum(rate(x[5m]))\n", "slos[0].sli.events.total_query", "avail"),
    # Parsed as PromQL here, not first by promtool after the rules shipped.
    ("sum(rate(x[{{.window}}]))\n", "sum(rat(x[{{.window}}]))\n", "slos[0].sli.events.total_query", "avail"),
    ("sum(rate(x[{{.window}}]))\n", "sum(x[{{.window}}])\n", "slos[0].sli.events.total_query", "avail"),
    ('sum(rate(x[{{.window}}]))\n', 'sum(rate(x{code="500"}[{{.window}}]))\n', "slos[0].sli.events.total_query",
     "avail"),
    ("objective: 99.5", "objective: 0.995", "slos[0].objective", "avail"),
])
def test_errors_name_file_slo_field(tmp_path, old, new, field, slo):
    err = _err(tmp_path, GOOD.replace(old, new, 1))
    assert err.file.endswith("spec.yaml") and err.field == field and err.slo == slo
    assert err.expected and str(err).startswith(err.file)


@pytest.mark.parametrize("old,new,words", [
    ("sum(rate(x[{{.window}}]))\n", "sum(rate(x[5m]))\n", "a query with {{.window}} where the SLI window goes"),
    ("sum(rate(x[{{.window}}]))\n", "sum(rat(x[{{.window}}]))\n", "valid PromQL (unknown function with name 'rat')"),
    ("sum(rate(x[{{.window}}]))\n", "sum(x[{{.window}}])\n", "valid PromQL (expected type vector in aggregation"),
    ('sum(rate(x[{{.window}}]))\n', 'sum(rate(x{code="500"}[{{.window}}]))\n',
     "a total query different from the error query"),
    ("objective: 99.5", "objective: 0.995", "0.995 reads as 0.995%: did you mean 99.5?"),
    ("objective: 99.5", "objective: 0.99", "did you mean 99?"),
])
def test_errors_say_what_was_expected(tmp_path, old, new, words):
    assert words in str(_err(tmp_path, GOOD.replace(old, new, 1)))


def test_catalogue_percent_hint(tmp_path):
    err = _err(tmp_path, "apiVersion: hpcwatch/v1\nkind: SLOCatalogue\nspec:\n  clusters: [a]\n  slos:\n"
                         "    - {sli: job-success, objective: 0.99}\n")
    assert err.field == "spec.slos[0].objective" and "did you mean 99?" in str(err)


def test_warnings_describe_what_was_passed(tmp_path):
    """A burn factor below 1 points at the AlertWindows file that set it, or at --windows when the
    windows were Google's; a window longer than the period says so."""
    from hpcwatch.slo import check_slos

    (tmp_path / "s.yaml").write_text(GOOD)
    google = check_slos(load_specs([str(tmp_path)], period="7d"))
    assert any("ticket slow burn-rate factor" in w and "for the 7d period" in w and "Google's windows" in w
               and "give --windows with an AlertWindows file for 7d" in w for w in google), google
    windows = os.path.join(FIX, "windows-7d.yaml")
    custom = check_slos(load_specs([str(tmp_path)], period="7d", windows=[windows]))
    assert any(f"{windows} sets 42% of the 7d budget in 3d; edit that AlertWindows file" in w for w in custom), custom
    assert not any("--windows" in w for w in custom)
    short = check_slos(load_specs([str(tmp_path)], period="1d"))
    assert any("ticket slow window 3d is longer than the 1d period" in w for w in short), short


def test_catalogue_rejects_threshold_off_bucket(tmp_path):
    err = _err(tmp_path, "apiVersion: hpcwatch/v1\nkind: SLOCatalogue\nspec:\n  clusters: [a]\n  slos:\n"
                         "    - {sli: queue-wait, objective: 95, threshold: 45m}\n")
    assert err.field == "spec.slos[0].threshold" and "3600" in err.expected


def test_openslo_v1_unknown_indicator_ref(tmp_path):
    err = _err(tmp_path, "apiVersion: openslo/v1\nkind: SLO\nmetadata: {name: s}\nspec:\n  service: x\n"
                         "  indicatorRef: nope\n  timeWindow: [{duration: 30d, isRolling: true}]\n"
                         "  objectives: [{target: 0.99}]\n")
    assert err.slo == "s" and err.field == "spec.indicatorRef"


def test_duplicate_slo_ids_across_files(tmp_path):
    (tmp_path / "a.yaml").write_text(GOOD)
    (tmp_path / "b.yaml").write_text(GOOD)
    with pytest.raises(SpecError, match="not already used"):
        load_specs([str(tmp_path)])


def test_cli_error_exits_2_and_writes_nothing(tmp_path, capsys):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.yaml").write_text(GOOD)
    (tmp_path / "in" / "b.yaml").write_text(GOOD.replace("service: svc", "service: other")
                                            .replace("99.5", "-1"))
    out = tmp_path / "out"
    out.mkdir()
    rc = main(["slo", "generate", "-i", str(tmp_path / "in"), "-o", str(out) + "/", "--tests", str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert rc == 2 and "b.yaml: slo 'avail': field 'slos[0].objective'" in err
    assert os.listdir(out) == [] and not (tmp_path / "t").exists()


def test_cli_generate_dir_and_validate(tmp_path, capsys):
    out = tmp_path / "rules"
    rc = main(["slo", "generate", "-i", os.path.join(FIX, "inputs"), "-o", str(out) + "/",
               "--windows", os.path.join(FIX, "windows-7d.yaml"), "--extra-labels", "site=x"])
    assert rc == 0
    # The shipped prometheus.yml loads rules/*.yml, as a Prometheus running as another user: .yml, 0644.
    inputs = os.listdir(os.path.join(FIX, "inputs"))
    assert sorted(os.listdir(out)) == sorted(f.replace(".yaml", ".yml") for f in inputs)
    assert all(stat.S_IMODE(os.stat(out / f).st_mode) == 0o644 for f in os.listdir(out))
    assert 'site: x' in (out / "sloth-k8s.yml").read_text()
    assert main(["slo", "validate", "-i", os.path.join(FIX, "inputs")]) == 0
    assert "SLOs valid" in capsys.readouterr().out


_scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=True), st.text(max_size=30))
_keys = st.sampled_from(["version", "apiVersion", "kind", "service", "slos", "spec", "metadata", "name",
                         "objective", "sli", "events", "raw", "error_query", "total_query", "alerting",
                         "labels", "clusters", "threshold", "queues", "objectives", "indicator",
                         "timeWindow", "ratioMetric", "page_alert", "min_events", "plugins", "slo_plugins",
                         "sloPlugins", "chain", "id", "config", "budgetingMethod", "alertPolicies", "calendar",
                         "timeZone", "startTime", "duration", "isRolling", "counter", "good", "bad", "total",
                         "thresholdMetric", "metricSource", "conditions", "condition", "timeSliceWindow"])
_values = st.recursive(_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(_keys, inner,
                                                                                             max_size=6),
                       max_leaves=25)
_versions = st.sampled_from(["prometheus/v1", "sloth.slok.dev/v1", "openslo/v1alpha", "openslo/v1",
                             "hpcwatch/v1"])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(version=_versions, body=st.dictionaries(_keys, _values, max_size=8))
def test_fuzz_structured_specs_raise_only_spec_error(version, body):
    doc = dict(body)
    doc["version" if version == "prometheus/v1" else "apiVersion"] = version
    try:
        load_documents([("fuzz.yaml", doc)])
    except SpecError:
        pass


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_any_yaml_text_raises_only_spec_error(tmp_path_factory, text):
    path = tmp_path_factory.mktemp("fz") / "s.yaml"
    path.write_bytes(text.encode("utf-8", "replace"))
    try:
        load_specs([str(path)])
    except SpecError:
        pass


def test_fuzz_seed_specs_survive_yaml_round_trip():
    for name in os.listdir(os.path.join(FIX, "inputs")):
        with open(os.path.join(FIX, "inputs", name)) as fh:
            docs = list(yaml.safe_load_all(fh))
        assert load_documents([(name, d) for d in docs if d])


@settings(max_examples=500, deadline=None)
@given(st.text(alphabet=st.sampled_from(list('sum(rate(x[5m]))by{}"=~!@ offset+-*/^%<>,:_\n\\`\'') + ["\x00", "∑"]),
               max_size=60))
def test_fuzz_promql_check_returns_a_reason_or_none(text):
    """The PromQL parser (a Rust binding) never takes the loader down: any text gives None or a reason."""
    from hpcwatch.slo.validate import promql_error

    reason = promql_error(text)
    assert reason is None or (isinstance(reason, str) and reason)
