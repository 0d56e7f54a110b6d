"""Self-metrics of the OpenTelemetry outputs, served with every scrape (`hpcwatch_otel_*`)."""

from __future__ import annotations

from collections.abc import Iterator

from hpcwatch.exporters.otel.metrics import OTLPMetricsPusher
from hpcwatch.exporters.otel.traces import JobTracer
from hpcwatch.exporters.registry import Collector, CollectorContext
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric


class OTelSelfCollector(Collector):
    """Counts what the OTLP outputs exported and failed to export; added when --otel.* is on."""

    name = "otel"
    help = "self-metrics of the OpenTelemetry outputs"

    def __init__(self, tracer: JobTracer | None, pusher: OTLPMetricsPusher | None) -> None:
        super().__init__(CollectorContext())
        self.tracer = tracer
        self.pusher = pusher

    def collect(self) -> Iterator[Metric]:
        exports = CounterMetricFamily("hpcwatch_otel_exported_items",
                                      "Spans or metric batches the OTLP exporters handed over, by signal and result.",
                                      labels=["signal", "result"])
        if self.tracer is not None:
            exp = self.tracer.exporter
            with exp.lock:
                exports.add_metric(["traces", "success"], exp.exported)
                exports.add_metric(["traces", "failure"], exp.failed)
            jobs = CounterMetricFamily("hpcwatch_otel_job_traces", "Finished jobs turned into traces.")
            jobs.add_metric([], self.tracer.jobs_emitted)
            yield jobs
        if self.pusher is not None:
            exports.add_metric(["metrics", "success"], self.pusher.exports_ok)
            exports.add_metric(["metrics", "failure"], self.pusher.exports_failed)
            if self.pusher.last_success is not None:
                yield GaugeMetricFamily("hpcwatch_otel_metrics_last_success_timestamp_seconds",
                                        "Unix time of the last successful OTLP metrics export.",
                                        value=self.pusher.last_success)
        yield exports
