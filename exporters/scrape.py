"""One scrape: run the selected collectors (concurrently, each with a deadline) and add health families.

A collector that raises, overruns the deadline, or is still busy with an earlier overrun reports
`hpcwatch_collector_success 0`; everything else in the scrape is still served. So does a collector
that met a read error (exporters/files.py), though the families it did read are served. `render` is the
HTTP path: each collector's families go through its own `FamilyBytes`, so a snapshot collector
that yields the same family objects until its next refresh is rendered once per refresh.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from hpcwatch.exporters.exposition import FamilyBytes
from hpcwatch.exporters.files import reading
from hpcwatch.exporters.jobcap import not_exported_family
from hpcwatch.exporters.registry import Collector
from hpcwatch.exporters.selfmetrics import collect_parse_errors, collect_read_errors
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.scrape")


class SelectionError(ValueError):
    """collect[]/exclude[] named something this agent cannot serve (answered with HTTP 400)."""


def select(enabled: Sequence[str], known: Collection[str], collect: Sequence[str],
           exclude: Sequence[str]) -> list[str] | None:
    """node_exporter's collect[]/exclude[] rules: the collectors to run, None for all of them.

    collect[] names collectors to run, each of which must be enabled here ("missing collector" when
    no such collector exists, "disabled collector" when it is not running on this agent); exclude[]
    runs every enabled collector except those named, and names nothing else may ignore; both in one
    request is an error.
    """
    if not collect and not exclude:
        return None
    if collect and exclude:
        raise SelectionError("Combined collect and exclude queries are not allowed.")
    if exclude:
        return [c for c in enabled if c not in exclude]
    for name in collect:
        if name not in enabled:
            problem = "disabled collector" if name in known else "missing collector"
            raise SelectionError(f"Couldn't create filtered metrics handler: {problem}: {name}")
    return [c for c in enabled if c in collect]


class ScrapeCollector:
    """A prometheus_client collector that fans out to hpcwatch collectors; registered once per server."""

    def __init__(self, collectors: Sequence[Collector], timeout: float = 10.0, max_workers: int = 8) -> None:
        self.collectors = list(collectors)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(self.collectors) or 1)),
                                        thread_name_prefix="collect")
        self._overrun: dict[str, Future] = {}
        self._busy_lock = threading.Lock()
        self._last_error: dict[str, str] = {}
        self._bytes = {c.name: FamilyBytes() for c in self.collectors}
        self._health_bytes = FamilyBytes()
        self._memo: dict[str, tuple[tuple, list[Metric]]] = {}

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.collectors]

    @property
    def sources(self) -> list[SnapshotSource]:
        return [s for c in self.collectors for s in c.sources()]

    def _run_one(self, collector: Collector) -> tuple[list[Metric], float, str | None]:
        start = time.perf_counter()
        with reading(collector.name) as errors:
            metrics = list(collector.collect())
        return metrics, time.perf_counter() - start, errors.first()

    def _note_failure(self, name: str, reason: str) -> None:
        # Log a reason once until it changes, so a broken source does not flood the log every scrape.
        if self._last_error.get(name) != reason:
            self._last_error[name] = reason
            log.warning("collector=%s failed: %s", name, reason)

    def _memoized(self, name: str, key: tuple, build) -> list[Metric]:
        """The families `build()` made last time when `key` is unchanged (so their bytes are reused too)."""
        cached = self._memo.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        families = list(build())
        self._memo[name] = (key, families)
        return families

    def _chosen(self, only: Collection[str] | None) -> list[Collector]:
        return self.collectors if only is None else [c for c in self.collectors if c.name in only]

    def gather(self, only: Collection[str] | None = None) -> tuple[list[tuple[str, list[Metric]]], list[Metric]]:
        """Run the chosen collectors: ([(collector, its families)], health families)."""
        chosen = self._chosen(only)
        outcomes: list[tuple[str, int]] = []
        duration = GaugeMetricFamily("hpcwatch_collector_duration_seconds",
                                     "Wall time the collector took in this scrape.", labels=["collector"])
        started: list[tuple[Collector, Future | None, float]] = []
        for c in chosen:
            t0 = time.perf_counter()
            with self._busy_lock:
                # Only a collect that overran its deadline blocks new ones; concurrent scrapes run side by side.
                prev = self._overrun.get(c.name)
                if prev is not None and not prev.done():
                    started.append((c, None, t0))
                    continue
                self._overrun.pop(c.name, None)
            started.append((c, self._pool.submit(self._run_one, c), t0))
        deadline = time.monotonic() + self.timeout
        results: list[tuple[str, list[Metric]]] = []
        for c, fut, t0 in started:
            if fut is None:
                self._note_failure(c.name, "still busy with an earlier scrape that overran its deadline")
                outcomes.append((c.name, 0))
                duration.add_metric([c.name], 0.0)
                continue
            try:
                metrics, took, read_error = fut.result(timeout=max(0.0, deadline - time.monotonic()))
            except FutureTimeout:
                with self._busy_lock:
                    self._overrun[c.name] = fut
                self._note_failure(c.name, f"did not finish within {self.timeout:g}s")
                outcomes.append((c.name, 0))
                duration.add_metric([c.name], time.perf_counter() - t0)
                continue
            except Exception as exc:  # noqa: BLE001 - any collector bug is reported, never raised
                self._note_failure(c.name, f"{type(exc).__name__}: {exc}")
                log.debug("collector=%s traceback", c.name, exc_info=exc)
                outcomes.append((c.name, 0))
                duration.add_metric([c.name], time.perf_counter() - t0)
                continue
            if read_error is not None:  # the families it could read are served; the failure is visible
                self._note_failure(c.name, read_error)
            elif self._last_error.pop(c.name, None) is not None:
                log.info("collector=%s recovered", c.name)
            outcomes.append((c.name, 0 if read_error else 1))
            duration.add_metric([c.name], took)
            results.append((c.name, metrics))
        # Health families that did not change since the last scrape are the same objects (bytes reused).
        key = tuple(outcomes)
        health = [*self._memoized("success", key, lambda: [_success_family(outcomes)]), duration]
        sources = [s for c in chosen for s in c.sources()]
        key = tuple((s.name, s.last_success, s.ok, s.last_duration) for s in sources)
        health.extend(self._memoized("sources", key, lambda: _source_families(sources)))
        errors = list(collect_parse_errors())
        health.extend(self._memoized("parse_errors", tuple(errors[0].samples), lambda: errors))
        reads = list(collect_read_errors())
        health.extend(self._memoized("read_errors", tuple(reads[0].samples), lambda: reads))
        caps = [(name, cap) for name, cap in ((c.name, c.job_cap) for c in chosen) if cap is not None]
        if caps:
            key = tuple((name, cap.not_exported) for name, cap in caps)
            health.extend(self._memoized("jobs_not_exported", key, lambda: [not_exported_family(caps)]))
        return results, health

    def collect(self, only: Collection[str] | None = None) -> Iterator[Metric]:
        """Every family of one scrape (the prometheus_client collector interface; OTLP and tests)."""
        results, health = self.gather(only)
        for _, metrics in results:
            yield from metrics
        yield from health

    def render(self, fmt: str, only: Collection[str] | None = None) -> list[bytes]:
        """One scrape as exposition bytes, in parts to join: families reused by identity cost nothing."""
        results, health = self.gather(only)
        parts: list[bytes] = []
        for name, metrics in results:
            parts.extend(self._bytes[name].render(metrics, fmt))
        parts.extend(self._health_bytes.render(health, fmt))
        return parts

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def _success_family(outcomes: list[tuple[str, int]]) -> Metric:
    success = GaugeMetricFamily("hpcwatch_collector_success",
                                "1 when the collector's last scrape succeeded, 0 when it raised or timed out.",
                                labels=["collector"])
    for name, ok in outcomes:
        success.add_metric([name], ok)
    return success


def _source_families(sources: Sequence[SnapshotSource]) -> Iterator[Metric]:
    if not sources:
        return
    last = GaugeMetricFamily("hpcwatch_source_last_success_timestamp_seconds",
                             "Unix time of the source's last successful refresh.", labels=["source"])
    up = GaugeMetricFamily("hpcwatch_source_up",
                           "1 when the source's most recent refresh succeeded.", labels=["source"])
    dur = GaugeMetricFamily("hpcwatch_source_refresh_duration_seconds",
                            "Wall time of the source's most recent refresh.", labels=["source"])
    for s in sources:
        ts = s.last_success
        if ts is not None:
            last.add_metric([s.name], ts)
        up.add_metric([s.name], 1 if s.ok else 0)
        if s.last_duration is not None:
            dur.add_metric([s.name], s.last_duration)
    yield last
    yield up
    yield dur
