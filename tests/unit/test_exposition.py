"""Our fast text writer is byte-for-byte prometheus_client's generate_latest, for any families; OpenMetrics
rendered family by family joins to the library's output; reused family bytes equal a fresh render;
content negotiation picks what promhttp would."""

import string

import pytest
from hpcwatch.exporters.exposition import (
    OPENMETRICS,
    OPENMETRICS_EOF,
    TEXT,
    FamilyBytes,
    negotiate,
    render_family,
    render_openmetrics_family,
    render_text,
)
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeHistogramMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as openmetrics_latest

NAMES = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).map(lambda s: "hpc_" + s)
LABEL_NAMES = st.lists(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6), max_size=3, unique=True)
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**18), 10**18))


class Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def _families(data, name, doc, labels):
    g = GaugeMetricFamily(name, doc, labels=labels)
    c = CounterMetricFamily(name + "_c", doc, labels=labels)
    for _ in range(data.draw(st.integers(0, 4))):
        vals = [data.draw(st.text(max_size=30)) for _ in labels]
        g.add_metric(vals, data.draw(VALUES))
        c.add_metric(vals, data.draw(VALUES))
    return [g, c]



def _both(families):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Fixed(families))
    return render_text(families), generate_latest(reg)


@settings(max_examples=300, deadline=None)
@given(name=NAMES, doc=st.text(max_size=40), labels=LABEL_NAMES, data=st.data())
def test_gauges_and_counters_identical(name, doc, labels, data):
    ours, theirs = _both(_families(data, name, doc, labels))
    assert ours == theirs


def test_histogram_summary_info_and_created_identical():
    h = HistogramMetricFamily("hpc_scheduler_queue_wait_seconds", "Wait.", labels=["queue"])
    h.add_metric(['q"1\\\n'], [("60", 3), ("300", 5), ("+Inf", 6)], sum_value=1234567.5)
    s = SummaryMetricFamily("hpc_x_seconds", "S.", count_value=3, sum_value=1.5)
    i = InfoMetricFamily("hpc_job", "Identity.", value={"jobid": "1", "user": "é"})
    c = CounterMetricFamily("hpc_y", "Y.", value=2, created=1700000000.0)
    t = GaugeMetricFamily("hpc_z", "Z.", value=3e6)
    ours, theirs = _both([h, s, i, c, t])
    assert ours == theirs


def test_counter_named_without_total_keeps_its_name():
    # A textfile counter (`# TYPE jobs_started counter`) is served under the name its author gave it.
    from prometheus_client.metrics_core import Metric
    from prometheus_client.samples import Sample

    c = Metric("jobs_started", "Jobs started.", "counter")
    c.samples.append(Sample("jobs_started", {}, 3.0, None, None))
    assert render_text([c]) == b"# HELP jobs_started Jobs started.\n# TYPE jobs_started counter\njobs_started 3.0\n"



@settings(max_examples=200, deadline=None)
@given(name=NAMES, doc=st.text(max_size=40), labels=LABEL_NAMES, data=st.data())
def test_openmetrics_per_family_joins_to_the_library_output(name, doc, labels, data):
    families = _families(data, name, doc, labels)
    ours = b"".join(render_openmetrics_family(f) for f in families) + OPENMETRICS_EOF
    assert ours == openmetrics_latest(Fixed(families))


@settings(max_examples=200, deadline=None)
@given(name=NAMES, doc=st.text(max_size=40), labels=LABEL_NAMES, data=st.data(),
       fmt=st.sampled_from([TEXT, OPENMETRICS]))
def test_family_bytes_reuse_is_byte_identical(name, doc, labels, data, fmt):
    """Rendering family by family, reusing the bytes of unchanged objects, is rendering them all at once."""
    snapshot = _families(data, name, doc, labels)
    cache = FamilyBytes()
    first = cache.render(snapshot, fmt)
    again = cache.render(snapshot, fmt)
    assert all(a is b for a, b in zip(first, again))  # the same objects: not rendered again
    whole = render_text(snapshot) if fmt == TEXT else openmetrics_latest(Fixed(snapshot))[: -len(OPENMETRICS_EOF)]
    assert b"".join(again) == whole
    fresh = _families(data, name + "_n", doc, labels)  # a refresh: new objects are rendered, old ones dropped
    assert b"".join(cache.render(fresh, fmt)) == b"".join(render_family(f, fmt) for f in fresh)


def test_histogram_summary_info_and_created_identical_in_openmetrics():
    h = HistogramMetricFamily("hpc_scheduler_queue_wait_seconds", "Wait.", labels=["queue"])
    h.add_metric(['q"1\\\n'], [("60", 3), ("300", 5), ("+Inf", 6)], sum_value=1234567.5)
    gh = GaugeHistogramMetricFamily("hpc_scheduler_pending_wait_seconds", "Pending.", labels=["queue"])
    gh.add_metric(["q"], [("60", 1), ("+Inf", 2)], gsum_value=90.0)
    s = SummaryMetricFamily("hpc_x_seconds", "S.", count_value=3, sum_value=1.5)
    i = InfoMetricFamily("hpc_job", "Identity.", value={"jobid": "1", "user": "é"})
    c = CounterMetricFamily("hpc_y", "Y.", value=2, created=1700000000.0)
    families = [h, gh, s, i, c]
    ours = b"".join(render_openmetrics_family(f) for f in families) + OPENMETRICS_EOF
    assert ours == openmetrics_latest(Fixed(families))


@pytest.mark.parametrize(("accept", "want"), [
    # Prometheus 2.x default scrape_protocols
    ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
     "text/plain;version=0.0.4;q=0.5,*/*;q=0.1", "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    # Prometheus 2.4x before 1.0.0 was offered
    ("application/openmetrics-text; version=0.0.1,text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
     "application/openmetrics-text; version=0.0.1; charset=utf-8"),
    # Prometheus 3 with scrape_protocols: [PrometheusText1.0.0, PrometheusText0.0.4]
    ("text/plain;version=1.0.0;escaping=allow-utf-8,text/plain;version=0.0.4;q=0.9,*/*;q=0.1",
     "text/plain; version=0.0.4; charset=utf-8"),
    ("text/plain;version=0.0.4;q=0.9,application/openmetrics-text;version=1.0.0;q=0.5",
     "text/plain; version=0.0.4; charset=utf-8"),
    ("*/*", "text/plain; version=0.0.4; charset=utf-8"),   # curl
    ("", "text/plain; version=0.0.4; charset=utf-8"),      # urllib, wget
    ("application/vnd.google.protobuf;proto=io.prometheus.client.MetricFamily;encoding=delimited",
     "text/plain; version=0.0.4; charset=utf-8"),          # protobuf is not offered
    ("application/openmetrics-text;version=2.0.0,text/plain;q=0.1", "text/plain; version=0.0.4; charset=utf-8"),
    ("application/openmetrics-text;q=0,text/plain;q=0.2", "text/plain; version=0.0.4; charset=utf-8"),
])
def test_negotiate_follows_the_accept_header(accept, want):
    assert negotiate(accept)[1] == want


def test_a_family_the_openmetrics_encoder_refuses_is_left_out_not_the_scrape(caplog):
    from prometheus_client.samples import Exemplar, Sample

    odd = GaugeMetricFamily("hpc_odd", "Exemplar on a gauge, which OpenMetrics forbids.")
    odd.samples.append(Sample("hpc_odd", {}, 1, None, Exemplar({"trace_id": "1"}, 1)))
    assert render_openmetrics_family(odd) == b""
    assert "hpc_odd left out of OpenMetrics scrapes" in caplog.text
    assert render_openmetrics_family(GaugeMetricFamily("hpc_fine", "Fine.", value=1)).startswith(b"# HELP hpc_fine")


def test_families_openmetrics_cannot_state_are_served_as_unknown_with_the_same_series():
    from prometheus_client.metrics_core import Metric
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
    from prometheus_client.samples import Sample

    counter = Metric("jobs_started", "Jobs started (a textfile counter without _total).", "counter")
    counter.samples.append(Sample("jobs_started", {}, 3.0, None, None))
    no_sum = HistogramMetricFamily("hpc_lustre_brw_pages_per_rpc", "Pages per RPC.", labels=["target"])
    no_sum.add_metric(["OST0000"], [("1", 2), ("+Inf", 3)], None)    # buckets and a count, no sum
    families = [counter, no_sum, GaugeMetricFamily("hpc_fine", "Fine.", value=1)]
    text = (b"".join(render_openmetrics_family(f) for f in families) + OPENMETRICS_EOF).decode()
    parsed = list(parse_openmetrics(text))                              # the strict parser accepts it
    series = sorted((s.name, tuple(sorted(s.labels.items())), s.value) for f in parsed for s in f.samples)
    want = sorted((s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples)
    assert series == want                                               # the same series as the text format
    assert {f.name: f.type for f in parsed}["jobs_started"] == "unknown"
