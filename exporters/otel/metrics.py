"""OTLP metrics: the collectors' families converted to the OpenTelemetry data model and pushed.

The same families the Prometheus endpoint serves are converted (gauges to Gauge, counters to
monotonic cumulative Sum, histograms to explicit-bucket Histogram) and handed to the SDK's OTLP
exporter on a background thread. OpenTelemetry semantic-convention names are used where the
conventions define the metric (`SEMCONV`), our own names elsewhere. The Python SDK (1.45) has no
MetricProducer hook for foreign metrics, so we build `MetricsData` ourselves and call the
exporter directly; the exporter, its retries and its `OTEL_*` configuration are the SDK's.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import threading
import time
from collections.abc import Callable, Iterable

from opentelemetry.sdk.metrics.export import (
    AggregationTemporality,
    Gauge,
    Histogram,
    HistogramDataPoint,
    Metric,
    MetricExporter,
    MetricExportResult,
    MetricsData,
    NumberDataPoint,
    ResourceMetrics,
    ScopeMetrics,
    Sum,
)
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.util.instrumentation import InstrumentationScope
from prometheus_client.metrics_core import Metric as PromFamily

from hpcwatch.version import __version__

log = logging.getLogger("hpcwatch.otel.metrics")

UNITS = (("_seconds", "s"), ("_bytes", "By"), ("_ratio", "1"), ("_celsius", "Cel"), ("_joules", "J"),
         ("_hertz", "Hz"), ("_watts", "W"))


@dataclasses.dataclass(frozen=True)
class SemConv:
    """How one of our families maps onto an OpenTelemetry semantic-convention metric."""

    name: str
    unit: str
    attributes: dict[str, str]  # our label -> semconv attribute
    values: dict[str, dict[str, str]] = dataclasses.field(default_factory=dict)  # attr -> value map


# Families whose meaning the OpenTelemetry system/hardware conventions define.
SEMCONV: dict[str, SemConv] = {
    "node_cpu_seconds": SemConv("system.cpu.time", "s", {"cpu": "cpu.logical_number", "mode": "cpu.mode"}),
    "node_network_receive_bytes": SemConv("system.network.io", "By", {"device": "network.interface.name"}),
    "node_network_transmit_bytes": SemConv("system.network.io", "By", {"device": "network.interface.name"}),
    "node_context_switches": SemConv("system.cpu.context_switches", "{switch}", {}),
    "node_filesystem_size_bytes": SemConv("system.filesystem.limit", "By",
                                          {"device": "system.device", "mountpoint": "system.filesystem.mountpoint",
                                           "fstype": "system.filesystem.type"}),
    "hpc_gpu_utilization_ratio": SemConv("hw.gpu.utilization", "1", {"gpu": "hw.id", "uuid": "hw.serial_number"}),
    "hpc_gpu_temperature_celsius": SemConv("hw.temperature", "Cel", {"gpu": "hw.id", "uuid": "hw.serial_number"}),
}
# Direction is an attribute in the conventions, a name suffix in ours.
_DIRECTION = {"node_network_receive_bytes": "receive", "node_network_transmit_bytes": "transmit"}


def unit_of(name: str) -> str:
    base = name[:-6] if name.endswith("_total") else name
    for suffix, unit in UNITS:
        if base.endswith(suffix):
            return unit
    return "1"


def _attrs(labels: dict[str, str], conv: SemConv | None, family: str) -> dict[str, str]:
    if conv is None:
        return dict(labels)
    out = {conv.attributes.get(k, k): v for k, v in labels.items()}
    if family in _DIRECTION:
        out["network.io.direction"] = _DIRECTION[family]
    return out


def convert_families(families: Iterable[PromFamily], start_ns: int, now_ns: int) -> list[Metric]:
    """Pure: prometheus_client families -> OpenTelemetry SDK Metric objects (no I/O)."""
    merged: dict[str, Metric] = {}
    for fam in families:
        conv = SEMCONV.get(fam.name)
        name = conv.name if conv else fam.name
        unit = conv.unit if conv else unit_of(fam.name)
        if fam.type == "counter":
            points = [NumberDataPoint(_attrs(s.labels, conv, fam.name), start_ns, now_ns, s.value)
                      for s in fam.samples if s.name.endswith("_total")]
            data = Sum(points, AggregationTemporality.CUMULATIVE, is_monotonic=True)
        elif fam.type == "histogram":
            data = Histogram(_histogram_points(fam, start_ns, now_ns), AggregationTemporality.CUMULATIVE)
        else:  # gauge, info, stateset, unknown, summary: each sample a gauge point
            points = [NumberDataPoint(_attrs(s.labels, conv, fam.name), start_ns, now_ns, s.value)
                      for s in fam.samples if not math.isnan(s.value)]
            data = Gauge(points)
        if name in merged:  # two of our families map onto one semconv metric (rx/tx)
            old = merged[name]
            old.data.data_points.extend(data.data_points)  # type: ignore[attr-defined]
            continue
        merged[name] = Metric(name=name, description=fam.documentation, unit=unit, data=data)
    return list(merged.values())


def _histogram_points(fam: PromFamily, start_ns: int, now_ns: int) -> list[HistogramDataPoint]:
    series: dict[tuple, dict] = {}
    for s in fam.samples:
        labels = {k: v for k, v in s.labels.items() if k != "le"}
        key = tuple(sorted(labels.items()))
        entry = series.setdefault(key, {"labels": labels, "buckets": [], "sum": 0.0, "count": 0})
        if s.name.endswith("_bucket"):
            entry["buckets"].append((float(s.labels["le"]), s.value))
        elif s.name.endswith("_sum"):
            entry["sum"] = s.value
        elif s.name.endswith("_count"):
            entry["count"] = int(s.value)
    points = []
    for entry in series.values():
        buckets = sorted(entry["buckets"])
        bounds = [le for le, _ in buckets if not math.isinf(le)]
        counts, prev = [], 0.0
        for _, cum in buckets:
            counts.append(int(cum - prev))
            prev = cum
        if not buckets or not math.isinf(buckets[-1][0]):
            counts.append(int(entry["count"] - prev))
        points.append(HistogramDataPoint(entry["labels"], start_ns, now_ns, entry["count"], entry["sum"],
                                         counts, bounds, None, None))
    return points


def metrics_data(metrics: list[Metric], resource: Resource) -> MetricsData:
    scope = InstrumentationScope("hpcwatch", __version__)
    return MetricsData([ResourceMetrics(resource, [ScopeMetrics(scope, metrics, "")], "")])


class OTLPMetricsPusher:
    """Every `interval` seconds: collect families, convert, export. Never on the scrape path."""

    def __init__(self, collect: Callable[[], Iterable[PromFamily]], exporter: MetricExporter,
                 interval: float = 60.0, resource: Resource | None = None, timeout_ms: float = 10_000) -> None:
        self.collect = collect
        self.exporter = exporter
        self.interval = interval
        self.timeout_ms = timeout_ms
        self.resource = resource or Resource.create({"service.name": "hpcwatch"})
        self.start_ns = time.time_ns()
        self.exports_ok = 0
        self.exports_failed = 0
        self.last_success: float | None = None
        self.last_duration: float | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def push_once(self) -> bool:
        began = time.monotonic()
        try:
            metrics = convert_families(self.collect(), self.start_ns, time.time_ns())
            result = self.exporter.export(metrics_data(metrics, self.resource), timeout_millis=self.timeout_ms)
        except Exception as exc:  # noqa: BLE001 - a bad endpoint must never kill the loop
            log.warning("OTLP metrics export failed: %s", exc)
            result = MetricExportResult.FAILURE
        self.last_duration = time.monotonic() - began
        if result == MetricExportResult.SUCCESS:
            self.exports_ok += 1
            self.last_success = time.time()
            return True
        self.exports_failed += 1
        return False

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.push_once()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="otlp-metrics", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        try:
            self.exporter.shutdown()
        except Exception:  # noqa: BLE001
            pass
