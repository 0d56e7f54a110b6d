"""The summary writer inside the cluster agent: its options, its set-up, one run per scheduler refresh,
and its health families.

The scheduler collector that counts finished jobs owns the outbox (saved with its counts); after
each refresh's counts are saved it hands the outbox to `run()`, and acks what comes back. Running in
the refresh thread keeps one writer per dataset and bounds the work: at most `summary-limit` jobs,
one sacct call and a few Prometheus queries (each with a timeout) per refresh.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.registry import Option
from hpcwatch.exporters.scheduler.model import FinishedJob
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

if TYPE_CHECKING:  # the writer's modules (DuckDB, Arrow) load only where summaries are configured
    from hpcwatch.accounting.writer import DetailReader, SummaryWriter

log = logging.getLogger("hpcwatch.accounting")

OPTIONS = (
    Option("summary-dataset", "", "directory of the per-job summary dataset (Parquet, one record per finished "
           "job); empty: no summaries"),
    Option("summary-prometheus", "", "Prometheus base URL the summaries read per-node and per-GPU usage, energy "
           "and filesystem bytes from (empty: what sacct knows)"),
    Option("summary-prices", "", "price table (YAML) the cost of each job is computed with (empty: no cost)"),
    Option("summary-delay", 60.0, "how long after a job's end it is summarised, so the node agents' last "
           "samples have reached Prometheus", type=opt.duration),
    Option("summary-limit", 1000, "most jobs summarised per refresh; the rest wait in the outbox",
           type=opt.positive_count),
    Option("summary-batch", 100, "jobs per Prometheus query", type=opt.positive_count),
    Option("summary-timeout", 20.0, "how long each Prometheus query may take", type=opt.duration),
)


class SummaryAgent:
    """The writer of one scheduler collector, and what it reports about itself."""

    def __init__(self, collector: str, writer: SummaryWriter) -> None:
        self.collector = collector
        self.writer = writer
        self.pending = 0
        self.lock = threading.Lock()

    @classmethod
    def from_options(cls, collector: str, options: Mapping[str, Any], details: DetailReader | None
                     ) -> SummaryAgent | None:
        """The agent the options ask for, or None without a dataset; ValueError for a bad price table."""
        dataset = options["summary-dataset"]
        if not dataset:
            return None
        from hpcwatch.accounting.prices import PriceTableError, load_price_table
        from hpcwatch.accounting.store import SummaryStore
        from hpcwatch.accounting.writer import SummaryWriter
        from hpcwatch.slo.history.prom import PrometheusClient

        prices = None
        if options["summary-prices"]:
            try:
                prices = load_price_table(options["summary-prices"])
            except PriceTableError as exc:
                raise ValueError(f"--collector.{collector}.summary-prices: {exc}") from None
        url = options["summary-prometheus"]
        client = PrometheusClient(url, options["summary-timeout"]) if url else None
        writer = SummaryWriter(SummaryStore(dataset), details, client, prices, limit=options["summary-limit"],
                               batch_size=options["summary-batch"], delay=options["summary-delay"])
        return cls(collector, writer)

    def run(self, outbox: Sequence[FinishedJob]) -> list[str]:
        """Summarise the due jobs of the outbox; returns the run keys to ack (none when the append failed)."""

        from hpcwatch.accounting.store import StoreError

        with self.lock:
            try:
                done = self.writer.write(outbox)
            except StoreError as exc:
                log.warning("collector=%s summaries not written, kept for the next refresh: %s", self.collector, exc)
                done = []
            self.pending = len(outbox) - len(done)
            return done

    def families(self) -> Iterator[Metric]:
        s = self.writer.stats
        c = [self.collector]
        for name, doc, value in (
            ("hpcwatch_job_records_written", "Job summaries appended to the dataset.", s.written),
            ("hpcwatch_job_records_duplicate", "Jobs handed over again (after a restart) that the dataset already "
             "held, so not written twice.", s.duplicates),
            ("hpcwatch_job_record_write_failures", "Refreshes whose append to the dataset failed (the jobs wait in "
             "the outbox).", s.failures),
            ("hpcwatch_job_record_query_errors", "Prometheus queries of the summary writer that failed.",
             s.enrich_errors),
        ):
            fam = CounterMetricFamily(name, doc, labels=["collector"])
            fam.add_metric(c, value)
            yield fam
        pending = GaugeMetricFamily("hpcwatch_job_records_pending", "Finished jobs counted but not summarised yet "
                                    "(waiting for summary-delay, the per-refresh limit or a failed append).",
                                    labels=["collector"])
        pending.add_metric(c, self.pending)
        yield pending
        if s.last_success is not None:
            last = GaugeMetricFamily("hpcwatch_job_records_last_write_timestamp_seconds", "When the summary writer "
                                     "last appended to the dataset.", labels=["collector"])
            last.add_metric(c, s.last_success)
            yield last

