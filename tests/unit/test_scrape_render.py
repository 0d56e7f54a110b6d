"""A scrape of a snapshot renders nothing: the collector's families are built once per refresh
(FamilyCache) and their bytes reused (FamilyBytes); live collectors still render per scrape; the body is
what rendering every family at once gives."""

from hpcwatch.exporters.exposition import OPENMETRICS, TEXT, render_text
from hpcwatch.exporters.registry import Collector
from hpcwatch.exporters.scrape import ScrapeCollector
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
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
