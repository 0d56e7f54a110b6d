"""OpenTelemetry outputs: exact span and metric content, a real OTLP/HTTP round trip decoded with
opentelemetry-proto, and export failures that never block scrapes."""

from __future__ import annotations

import dataclasses
import os
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from helpers import values
from hpcwatch.exporters.events import publish_finished_job, subscribe_finished_jobs
from hpcwatch.exporters.otel.health import OTelSelfCollector
from hpcwatch.exporters.otel.metrics import OTLPMetricsPusher, convert_families
from hpcwatch.exporters.otel.traces import JobTracer
from hpcwatch.exporters.registry import Collector
from hpcwatch.exporters.serve import Exporter
from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.metrics.export import Gauge, Histogram, Sum
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

VENV_BIN = os.path.dirname(sys.executable)
T0 = 1_700_000_000.0


@dataclasses.dataclass
class Job:
    jobid: str = "4242"
    cluster: str = "hpcw"
    queue: str = "debug"
    account: str = "physics"
    user: str = "alice"
    nnodes: int = 2
    outcome: str = "node_fail"
    cause: str = "system"
    exit_code: int | str | None = "0:9"
    submit: float | None = T0
    eligible: float | None = T0 + 30
    start: float | None = T0 + 90
    end: float | None = T0 + 600


def test_job_trace_spans_exact():
    mem = InMemorySpanExporter()
    tracer = JobTracer(mem, batch=False)
    assert tracer.emit(Job())
    spans = {s.name: s for s in mem.get_finished_spans()}
    assert set(spans) == {"job 4242", "waiting", "queued", "running"}
    root = spans["job 4242"]
    assert root.parent is None
    for child in ("waiting", "queued", "running"):
        assert spans[child].parent.span_id == root.context.span_id
        assert spans[child].context.trace_id == root.context.trace_id
    ns = 1_000_000_000
    assert (spans["waiting"].start_time, spans["waiting"].end_time) == (int(T0 * ns), int((T0 + 30) * ns))
    assert (spans["queued"].start_time, spans["queued"].end_time) == (int((T0 + 30) * ns), int((T0 + 90) * ns))
    assert (spans["running"].start_time, spans["running"].end_time) == (int((T0 + 90) * ns), int((T0 + 600) * ns))
    assert dict(root.attributes) == {
        "hpc.job.id": "4242", "hpc.cluster": "hpcw", "hpc.queue": "debug", "hpc.account": "physics",
        "hpc.job.node_count": 2, "hpc.job.outcome": "node_fail", "hpc.job.cause": "system",
        "enduser.id": "alice", "hpc.job.exit_code": 0, "hpc.job.signal": 9}
    assert root.status.status_code == StatusCode.ERROR
    assert "node_fail" in root.status.description


def test_successful_job_without_wait_and_never_started_job():
    mem = InMemorySpanExporter()
    tracer = JobTracer(mem, batch=False)
    tracer.emit(Job(jobid="1", outcome="success", cause="none", eligible=T0))
    tracer.emit(Job(jobid="2", outcome="cancelled", cause="user", start=None))
    assert not tracer.emit(Job(jobid="3", end=None))
    by_trace: dict[int, dict[str, object]] = {}
    for s in mem.get_finished_spans():
        by_trace.setdefault(s.context.trace_id, {})[s.name] = s
    names = sorted(sorted(v) for v in by_trace.values())
    assert names == [["job 1", "queued", "running"], ["job 2", "queued", "waiting"]]
    ok = next(v for v in by_trace.values() if "job 1" in v)
    assert ok["job 1"].status.status_code == StatusCode.OK
    assert tracer.jobs_emitted == 2


def test_finished_job_events_reach_the_tracer_once_and_a_bad_subscriber_is_contained():
    mem = InMemorySpanExporter()
    tracer = JobTracer(mem, batch=False)
    unsub_bad = subscribe_finished_jobs(lambda job: 1 / 0)
    unsub = subscribe_finished_jobs(tracer.emit)
    try:
        publish_finished_job(Job(jobid="77"))
    finally:
        unsub()
        unsub_bad()
    publish_finished_job(Job(jobid="78"))  # after unsubscribing: not traced
    assert sorted(s.name for s in mem.get_finished_spans() if s.name.startswith("job")) == ["job 77"]


def _families():
    cpu = CounterMetricFamily("node_cpu_seconds", "CPU seconds.", labels=["cpu", "mode"])
    cpu.add_metric(["0", "user"], 12.5)
    temp = GaugeMetricFamily("hpc_fabric_port_rate_bytes", "Port rate.", labels=["device"])
    temp.add_metric(["mlx5_0"], 25e9)
    wait = HistogramMetricFamily("hpc_scheduler_queue_wait_seconds", "Queue wait.", labels=["queue"])
    wait.add_metric(["debug"], [("60", 3), ("300", 5), ("+Inf", 6)], sum_value=900)
    return [cpu, temp, wait]


def test_convert_families_exact():
    metrics = {m.name: m for m in convert_families(_families(), 1, 2)}
    cpu = metrics["system.cpu.time"]  # semantic conventions where they define the metric
    assert isinstance(cpu.data, Sum) and cpu.data.is_monotonic and cpu.unit == "s"
    assert dict(cpu.data.data_points[0].attributes) == {"cpu.logical_number": "0", "cpu.mode": "user"}
    assert cpu.data.data_points[0].value == 12.5
    rate = metrics["hpc_fabric_port_rate_bytes"]  # our names elsewhere
    assert isinstance(rate.data, Gauge) and rate.unit == "By"
    wait = metrics["hpc_scheduler_queue_wait_seconds"]
    assert isinstance(wait.data, Histogram)
    point = wait.data.data_points[0]
    assert (point.count, point.sum, list(point.explicit_bounds), list(point.bucket_counts)) == (6, 900, [60, 300],
                                                                                             [3, 2, 1])
    assert dict(point.attributes) == {"queue": "debug"}


# --- a real OTLP/HTTP receiver on loopback -------------------------------------------------------

class Receiver:
    def __init__(self, delay: float = 0.0):
        self.requests: list[tuple[str, bytes]] = []
        self.delay = delay
        outer = self

        class H(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802
                body = self.rfile.read(int(self.headers["Content-Length"]))
                time.sleep(outer.delay)
                outer.requests.append((self.path, body))
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *a):
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def decoded(self, path, cls):
        out = []
        for p, body in self.requests:
            if p == path:
                msg = cls()
                msg.ParseFromString(body)
                out.append(msg)
        return out

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


def test_otlp_http_round_trip_traces_and_metrics(receiver):
    tracer = JobTracer(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{receiver.port}/v1/traces"))
    tracer.emit(Job())
    assert tracer.flush()
    reqs = receiver.decoded("/v1/traces", ExportTraceServiceRequest)
    spans = [s for r in reqs for rs in r.resource_spans for ss in rs.scope_spans for s in ss.spans]
    assert sorted(s.name for s in spans) == ["job 4242", "queued", "running", "waiting"]
    root = next(s for s in spans if s.name == "job 4242")
    attrs = {a.key: a.value for a in root.attributes}
    assert attrs["hpc.job.outcome"].string_value == "node_fail"
    assert attrs["hpc.job.node_count"].int_value == 2
    assert root.start_time_unix_nano == int(T0 * 1e9)
    tracer.shutdown()

    pusher = OTLPMetricsPusher(_families, OTLPMetricExporter(endpoint=f"http://127.0.0.1:{receiver.port}/v1/metrics"))
    assert pusher.push_once()
    reqs = receiver.decoded("/v1/metrics", ExportMetricsServiceRequest)
    metrics = {m.name: m for r in reqs for rm in r.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert metrics["system.cpu.time"].sum.data_points[0].as_double == 12.5
    assert metrics["system.cpu.time"].sum.is_monotonic
    hist = metrics["hpc_scheduler_queue_wait_seconds"].histogram.data_points[0]
    assert list(hist.bucket_counts) == [3, 2, 1] and list(hist.explicit_bounds) == [60.0, 300.0]
    assert pusher.exports_ok == 1 and pusher.last_success is not None


def _closed_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Quick(Collector):
    name = "quick"

    def collect(self):
        yield GaugeMetricFamily("hpc_node_quick", "A quick gauge.", value=1)


def test_export_failures_never_block_scrapes_and_are_counted():
    slow = Receiver(delay=3.0)
    try:
        tracer = JobTracer(OTLPSpanExporter(endpoint=f"http://127.0.0.1:{_closed_port()}/v1/traces", timeout=1))
        pusher = OTLPMetricsPusher(_families, OTLPMetricExporter(
            endpoint=f"http://127.0.0.1:{slow.port}/v1/metrics", timeout=10), interval=0.2)
        self_metrics = OTelSelfCollector(tracer, pusher)
        exp = Exporter([Quick(None), self_metrics], ("127.0.0.1", 0))
        exp.start()
        pusher.start()
        try:
            t0 = time.monotonic()
            for i in range(20):
                tracer.emit(Job(jobid=str(i)))  # returns at once though the endpoint is down
            assert time.monotonic() - t0 < 1.0
            time.sleep(0.5)  # the pusher is now stuck in a 3 s export to the slow receiver
            t1 = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{exp.port}/metrics", timeout=5) as r:
                text = r.read().decode()
            assert time.monotonic() - t1 < 1.0  # the scrape did not wait for the export
            assert values(text, "hpc_node_quick") == [1]
            tracer.flush(5000)
            with urllib.request.urlopen(f"http://127.0.0.1:{exp.port}/metrics", timeout=5) as r:
                text = r.read().decode()
            assert values(text, "hpcwatch_otel_exported_items_total", signal="traces", result="failure")[0] > 0
            assert values(text, "hpcwatch_otel_job_traces_total") == [20]
        finally:
            pusher.stop()
            tracer.shutdown()
            exp.stop()
    finally:
        slow.close()


def test_serve_pushes_metrics_over_otlp(receiver):
    port = _closed_port()
    env = dict(os.environ, OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{receiver.port}")
    proc = subprocess.Popen([f"{VENV_BIN}/hpcwatch", "serve", "--collector.disable-defaults", "--collector.node",
                             "--otel.metrics", "--otel.metrics.interval=0.5", f"--web.listen-address=127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while not receiver.decoded("/v1/metrics", ExportMetricsServiceRequest):
            assert time.monotonic() < deadline and proc.poll() is None, "no OTLP metrics arrived"
            time.sleep(0.2)
    finally:
        proc.terminate()
        proc.communicate(timeout=15)
    req = receiver.decoded("/v1/metrics", ExportMetricsServiceRequest)[0]
    names = {m.name for rm in req.resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    assert "hpcwatch_collector_success" in names or "hpcwatch_otel_exported_items" in names
