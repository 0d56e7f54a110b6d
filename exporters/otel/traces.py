"""One trace per finished job: waiting on dependencies/holds, queueing, running.

Spans carry explicit start/end times from the scheduler's accounting, so a trace shows the job's
real life even though it is emitted after the job ended. Each job is emitted once: the scheduler
collector calls `emit` only for jobs its watermark counts for the first time.
"""

from __future__ import annotations

import logging
import threading
from typing import Protocol

from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor, SpanExporter
from opentelemetry.trace import Status, StatusCode

log = logging.getLogger("hpcwatch.otel.traces")

NS = 1_000_000_000


class JobRecord(Protocol):
    """What a finished job must offer (hpcwatch.exporters.scheduler's FinishedJob does)."""

    jobid: str
    cluster: str
    queue: str
    account: str
    user: str
    nnodes: int
    outcome: str
    cause: str
    exit_code: int | str | None
    submit: float | None
    eligible: float | None
    start: float | None
    end: float | None


def _ns(t: float) -> int:
    return int(round(t * NS))


def job_attributes(job: JobRecord) -> dict[str, object]:
    attrs: dict[str, object] = {
        "hpc.job.id": str(job.jobid),
        "hpc.cluster": job.cluster or "",
        "hpc.queue": job.queue or "",
        "hpc.account": job.account or "",
        "hpc.job.node_count": int(job.nnodes or 0),
        "hpc.job.outcome": job.outcome,
        "hpc.job.cause": job.cause,
        "enduser.id": job.user or "",
    }
    code, signal = _exit_code(job.exit_code)
    if code is not None:
        attrs["hpc.job.exit_code"] = code
    if signal:
        attrs["hpc.job.signal"] = signal
    return attrs


def _exit_code(raw: int | str | None) -> tuple[int | None, int | None]:
    """Slurm's "code:signal" (or a plain int) as (code, signal); unknown parts are None."""
    if raw is None or raw == "":
        return None, None
    if isinstance(raw, int):
        return raw, None
    code, _, sig = str(raw).partition(":")
    try:
        return int(code), (int(sig) if sig else None)
    except ValueError:
        return None, None


class JobTracer:
    """Turns finished jobs into spans and hands them to an exporter through a BatchSpanProcessor.

    The processor exports on its own thread with a bounded queue, so a slow or dead endpoint
    never blocks the scheduler refresh; drops and failures show in the counters below.
    """

    def __init__(self, exporter: SpanExporter, resource: Resource | None = None,
                 batch: bool = True) -> None:
        from opentelemetry.sdk.trace.export import SimpleSpanProcessor

        self.exporter = _CountingSpanExporter(exporter)
        self.provider = TracerProvider(resource=resource or Resource.create({"service.name": "hpcwatch"}))
        proc = BatchSpanProcessor(self.exporter, max_queue_size=8192) if batch else SimpleSpanProcessor(self.exporter)
        self.provider.add_span_processor(proc)
        self.tracer = self.provider.get_tracer("hpcwatch.jobs")
        self.jobs_emitted = 0

    def emit(self, job: JobRecord) -> bool:
        """Emit the job's trace; False (and nothing emitted) when it has no usable end time."""
        if job.end is None:
            return False
        submit = job.submit if job.submit is not None else (job.start or job.end)
        eligible = job.eligible if job.eligible is not None else submit
        start = job.start
        attrs = job_attributes(job)
        root = self.tracer.start_span(f"job {job.jobid}", start_time=_ns(submit), attributes=attrs)
        ctx = _context_of(root)
        if eligible > submit:
            self.tracer.start_span("waiting", context=ctx, start_time=_ns(submit),
                                   attributes={"hpc.job.id": str(job.jobid)}).end(_ns(eligible))
        if start is not None:
            self.tracer.start_span("queued", context=ctx, start_time=_ns(eligible),
                                   attributes={"hpc.job.id": str(job.jobid)}).end(_ns(max(start, eligible)))
            run = self.tracer.start_span("running", context=ctx, start_time=_ns(start), attributes=attrs)
            _set_status(run, job)
            run.end(_ns(job.end))
        else:
            self.tracer.start_span("queued", context=ctx, start_time=_ns(eligible),
                                   attributes={"hpc.job.id": str(job.jobid)}).end(_ns(job.end))
        _set_status(root, job)
        root.end(_ns(job.end))
        self.jobs_emitted += 1
        return True

    def flush(self, timeout_millis: int = 30_000) -> bool:
        return self.provider.force_flush(timeout_millis)

    def shutdown(self) -> None:
        self.provider.shutdown()


def _context_of(span):
    from opentelemetry import trace

    return trace.set_span_in_context(span)


def _set_status(span, job: JobRecord) -> None:
    if job.outcome == "success":
        span.set_status(Status(StatusCode.OK))
    else:
        span.set_status(Status(StatusCode.ERROR, f"{job.outcome} (cause: {job.cause})"))


class _CountingSpanExporter(SpanExporter):
    """Wraps the real exporter to count successes and failures for hpcwatch_otel_* self-metrics."""

    def __init__(self, inner: SpanExporter) -> None:
        self.inner = inner
        self.lock = threading.Lock()
        self.exported = 0
        self.failed = 0

    def export(self, spans):
        from opentelemetry.sdk.trace.export import SpanExportResult

        try:
            result = self.inner.export(spans)
        except Exception as exc:  # noqa: BLE001 - an exporter bug must not kill the batch thread
            log.warning("span export failed: %s", exc)
            result = SpanExportResult.FAILURE
        with self.lock:
            if result == SpanExportResult.SUCCESS:
                self.exported += len(spans)
            else:
                self.failed += len(spans)
        return result

    def shutdown(self):
        self.inner.shutdown()

    def force_flush(self, timeout_millis: int = 30000) -> bool:
        return self.inner.force_flush(timeout_millis)
