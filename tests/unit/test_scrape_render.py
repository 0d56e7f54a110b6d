"""A scrape of a snapshot runs and renders nothing: a refresh runs the collector once and keeps its
rendered body (counted: bodies prepared vs scrapes served ready), which the event loop serves byte for
byte as the general path would; live collectors still render per scrape; a collector whose run after a
refresh fails has no body and is reported by the general path as before."""

import gzip
import threading

import pytest
from helpers import collector_success
from hpcwatch.exporters.exposition import OPENMETRICS, TEXT, render_text
from hpcwatch.exporters.files import fail_scrape
from hpcwatch.exporters.jobcap import JobCap
from hpcwatch.exporters.registry import Collector
from hpcwatch.exporters.scrape import ScrapeCollector
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily


class Queue(Collector):
    """A snapshot collector shaped like the scheduler ones: families from the last refresh."""

    name = "queue"
    kind = "snapshot"

    def __init__(self):
        super().__init__(None)
        self.refreshes = 0
        self.source = SnapshotSource("queue_src", self._refresh, interval=3600)
        self.families = FamilyCache()
        self.builds = 0

    def _refresh(self):
        self.refreshes += 1
        return {f"q{i}": i * self.refreshes for i in range(50)}

    def sources(self):
        return [self.source]

    def collect(self):
        snap = self.source.value
        yield from self.families.get((snap,), lambda: self._build(snap))

    def _build(self, snap):
        self.builds += 1
        g = GaugeMetricFamily("hpc_scheduler_test_jobs", "Jobs.", labels=["queue"])
        c = CounterMetricFamily("hpc_scheduler_test_finished", "Finished.", labels=["queue"])
        for q, n in snap.items():
            g.add_metric([q], n)
            c.add_metric([q], n * 2)
        return [g, c]


class Live(Collector):
    name = "live"

    def collect(self):
        yield GaugeMetricFamily("hpc_node_test_reads", "Reads.", value=1)  # a new object every scrape


def _without_durations(body: bytes) -> list[bytes]:
    return [line for line in body.splitlines() if not line.startswith(b"hpcwatch_collector_duration_seconds{")]


def test_snapshot_bytes_are_rendered_once_per_refresh():
    queue, live = Queue(), Live(None)
    assert queue.source.refresh_now()
    scrape = ScrapeCollector([queue, live])
    try:
        for fmt in (TEXT, OPENMETRICS):
            first = scrape.render(fmt)
            second = scrape.render(fmt)
            # Parts 0 and 1 are the queue's two families: the very same bytes objects, not re-rendered.
            assert first[0] is second[0] and first[1] is second[1]
            assert first[2] is not second[2]  # the live collector's family is new every scrape
        assert queue.builds == 1
        assert queue.source.refresh_now()
        third = scrape.render(TEXT)
        assert third[0] is not first[0] and b'hpc_scheduler_test_jobs{queue="q3"} 6.0' in third[0]
        assert queue.builds == 2
        # The body is byte for byte what rendering all of one scrape's families at once gives.
        body = b"".join(scrape.render(TEXT))
        assert _without_durations(body) == _without_durations(render_text(scrape.collect()))
    finally:
        scrape.close()


# --- bodies prepared at refresh, served without running the collector ----------------------------

class Counted(Collector):
    """A snapshot collector that counts its runs; its families are whatever the refresh put in `data`."""

    name = "counted"
    kind = "snapshot"

    def __init__(self, data=None, name=None):
        super().__init__(None)
        if name is not None:
            self.name = name
        self.data = data if data is not None else {"q0": 1.0}
        self.runs = 0
        self.fail_with: Exception | None = None
        self.block: threading.Event | None = None
        self.source = SnapshotSource(self.name + "_src", lambda: dict(self.data), interval=3600)
        self.cache = FamilyCache()

    def sources(self):
        return [self.source]

    def collect(self):
        self.runs += 1
        if self.block is not None:
            self.block.wait(30)
        if self.fail_with is not None:
            raise self.fail_with
        snap = self.source.value or {}
        return self.cache.get((self.source.value,), lambda: _queue_families(self.name, snap))


def _queue_families(name, snap):
    g = GaugeMetricFamily(f"hpc_scheduler_{name}_jobs", "Jobs.", labels=["queue"])
    c = CounterMetricFamily(f"hpc_scheduler_{name}_finished", "Finished.", labels=["queue"])
    for q, n in snap.items():
        g.add_metric([q], n)
        c.add_metric([q], abs(n))
    return [g, c]


def _reference(collectors, fmt, only=None):
    """The general path without prepared bodies: every collector runs in this scrape (as before)."""
    scrape = ScrapeCollector(collectors, prepare=False)
    try:
        return b"".join(scrape.render(fmt, only))
    finally:
        scrape.close()


def test_a_refresh_prepares_the_body_once_and_scrapes_never_run_the_collector():
    a, b = Counted(name="a"), Counted(name="b")
    scrape = ScrapeCollector([a, b])
    try:
        assert scrape.render_ready(TEXT) is None   # nothing refreshed yet: the general path runs them
        assert a.source.refresh_now() and b.source.refresh_now()
        assert (scrape.prepares, a.runs, b.runs) == (2, 1, 1)
        bodies = {scrape.render_ready(TEXT).static for _ in range(50)}
        assert len(bodies) == 1 and scrape.ready_scrapes == 50
        b"".join(scrape.render(TEXT))                        # the general path serves the same bodies
        list(scrape.collect())                               # and so does collect() (OTLP)
        assert (a.runs, b.runs) == (1, 1)
        a.data = {"q0": 2.0}
        assert a.source.refresh_now()
        assert (scrape.prepares, a.runs, b.runs) == (3, 2, 1)
        assert b'hpc_scheduler_a_jobs{queue="q0"} 2.0' in scrape.render_ready(TEXT).static
    finally:
        scrape.close()


def test_both_formats_are_ready_after_the_first_refresh():
    c = Counted()
    scrape = ScrapeCollector([c])
    try:
        assert c.source.refresh_now()
        # Prometheus asks for OpenMetrics, most other scrapers for text: neither waits on the general path.
        ready = {fmt: scrape.render_ready(fmt) for fmt in (TEXT, OPENMETRICS)}
        assert all(r is not None for r in ready.values()) and scrape.ready_scrapes == 2
        for fmt, r in ready.items():   # the bytes the general path gives for that format
            assert r.static + r.tail == b"".join(scrape.render(fmt))
        assert c.runs == 1
    finally:
        scrape.close()


def test_a_live_collector_in_the_selection_sends_the_scrape_to_the_general_path():
    c, live = Counted(), Live(None)
    scrape = ScrapeCollector([c, live])
    try:
        assert c.source.refresh_now()
        assert scrape.render_ready(TEXT) is None
        assert scrape.render_ready(TEXT, ["counted"]) is not None   # collect[]=counted
        assert scrape.render_ready(TEXT, ["live"]) is None
    finally:
        scrape.close()


@pytest.mark.parametrize("failure", ["raises", "read_error", "overruns"])
def test_a_run_after_a_refresh_that_fails_leaves_no_body_and_scrapes_report_it(failure):
    c = Counted()
    scrape = ScrapeCollector([c], timeout=0.2)
    try:
        assert c.source.refresh_now() and scrape.render_ready(TEXT) is not None
        if failure == "raises":
            c.fail_with = OSError("cannot read the snapshot")
        elif failure == "read_error":
            c.fail_with = None
            real = c.collect

            def collect():
                fail_scrape("EIO on /proc/x")
                return real()

            c.collect = collect
        else:
            c.block = threading.Event()
        assert c.source.refresh_now()
        assert scrape.render_ready(TEXT) is None          # no body: the loop does not answer it
        text = b"".join(scrape.render(TEXT)).decode()     # the general path runs it and reports it
        assert collector_success(text) == {"counted": 0}
        if c.block is not None:
            c.block.set()
    finally:
        scrape.close()


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_the_body_served_ready_is_the_general_paths_byte_for_byte(data):
    """render_ready (the loop's path) against render() without prepared bodies (every collector runs in the
    scrape, as the server did before), for any snapshot, both formats, any selection; only the measured
    durations differ between the two, so they are compared apart."""
    queues = st.dictionaries(st.text(max_size=20), st.one_of(st.floats(allow_nan=False), st.integers(-10**9, 10**9)),
                             max_size=6)
    collectors = [Counted(data.draw(queues), name=f"c{i}") for i in range(data.draw(st.integers(1, 3)))]
    ready_side = ScrapeCollector(collectors)
    try:
        for c in collectors:
            assert c.source.refresh_now()
        for fmt in (TEXT, OPENMETRICS):
            b"".join(ready_side.render(fmt))   # asks for the format once (as a first scrape does)
            only = data.draw(st.one_of(st.none(), st.lists(st.sampled_from([c.name for c in collectors]),
                                                           min_size=1, unique=True)))
            ready = ready_side.render_ready(fmt, only)
            assert ready is not None
            body = ready.static + ready.tail
            assert body == b"".join(ready_side.render(fmt, only))   # the general path with prepared bodies
            want = _reference(collectors, fmt, only)
            assert _without_durations(body) == _without_durations(want)
            names = [c.name for c in collectors if only is None or c.name in only]
            assert _durations(body) == names and _durations(want) == names
    finally:
        ready_side.close()


def _durations(body: bytes) -> list[str]:
    prefix = b'hpcwatch_collector_duration_seconds{collector="'
    return [line[len(prefix):].split(b'"')[0].decode() for line in body.splitlines() if line.startswith(prefix)]


def test_the_gzip_prefix_is_made_once_per_refresh():
    c = Counted()
    scrape = ScrapeCollector([c])
    try:
        assert c.source.refresh_now()
        first = scrape.render_ready(TEXT, gzip=True)
        assert first.gzip is not None and scrape.render_ready(TEXT, gzip=True).gzip is first.gzip
        assert gzip.decompress(first.gzip.member(first.tail)) == first.static + first.tail
        assert c.source.refresh_now()                 # the refresh makes the next one itself
        second = scrape._blocks[(TEXT, ("counted",))]
        assert second.gzip is not None and second.gzip is not first.gzip
    finally:
        scrape.close()


class PerJob(Collector):
    """A snapshot collector with per-job series under a job cap (the energy collector's shape)."""

    name = "perjob"
    kind = "snapshot"

    def __init__(self, jobs):
        super().__init__(None)
        self.jobs = jobs
        self.job_cap = JobCap(1)
        self.source = SnapshotSource("perjob_src", lambda: list(self.jobs), interval=3600)

    def sources(self):
        return [self.source]

    def collect(self):
        g = GaugeMetricFamily("hpc_job_test_joules", "Energy.", labels=["jobid"])
        for jobid in self.source.value or []:
            g.add_metric([jobid], 1.0)
        return self.job_cap.apply([g])


def test_a_snapshot_collectors_job_cap_count_is_served_ready_as_of_its_last_refresh():
    c = PerJob(["3", "1", "2"])
    scrape = ScrapeCollector([c])
    try:
        assert c.source.refresh_now()
        ready = scrape.render_ready(TEXT)
        body = ready.static + ready.tail
        assert body == b"".join(scrape.render(TEXT))   # the general path gives the same bytes
        assert b'hpcwatch_jobs_not_exported{collector="perjob"} 2.0' in body
        assert b'jobid="1"' in body and b'jobid="2"' not in body
        c.jobs = ["1"]
        assert c.source.refresh_now()
        assert b'hpcwatch_jobs_not_exported{collector="perjob"} 0.0' in scrape.render_ready(TEXT).static
    finally:
        scrape.close()
