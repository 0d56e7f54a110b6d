"""Our fast text writer is byte-for-byte prometheus_client's generate_latest, for any families."""

import string

from hpcwatch.exporters.exposition import render_text
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
    SummaryMetricFamily,
)
from prometheus_client.exposition import generate_latest

NAMES = st.text(alphabet=string.ascii_lowercase + "_", min_size=1, max_size=12).map(lambda s: "hpc_" + s)
LABEL_NAMES = st.lists(st.text(alphabet=string.ascii_lowercase, min_size=1, max_size=6), max_size=3, unique=True)
VALUES = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-(10**18), 10**18))


class Fixed:
    def __init__(self, families):
        self.families = families

    def collect(self):
        return iter(self.families)


def _both(families):
    reg = CollectorRegistry(auto_describe=False)
    reg.register(Fixed(families))
    return render_text(families), generate_latest(reg)


@settings(max_examples=300, deadline=None)
@given(name=NAMES, doc=st.text(max_size=40), labels=LABEL_NAMES, data=st.data())
def test_gauges_and_counters_identical(name, doc, labels, data):
    g = GaugeMetricFamily(name, doc, labels=labels)
    c = CounterMetricFamily(name + "_c", doc, labels=labels)
    for _ in range(data.draw(st.integers(0, 4))):
        vals = [data.draw(st.text(max_size=30)) for _ in labels]
        g.add_metric(vals, data.draw(VALUES))
        c.add_metric(vals, data.draw(VALUES))
    ours, theirs = _both([g, c])
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
