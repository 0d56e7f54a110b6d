"""One scrape: run the selected collectors (concurrently, each with a deadline) and add health families.

A collector that raises, overruns the deadline, or is still busy with an earlier overrun reports
`hpcwatch_collector_success 0`; everything else in the scrape is still served. So does a collector
that met a read error (exporters/files.py), though the families it did read are served.

Snapshot collectors run once per refresh, not once per scrape: when one of their sources has
refreshed, the source's thread runs the collector (on the same pool, under the same deadline) and
keeps what it yielded, rendered, as a `Prepared` body. Scrapes serve that body and never call the
collector. A collector whose run after a refresh failed, overran or met a read error has no body:
scrapes then run it as a live collector, and report it as they always did, until a refresh
prepares it again. `render_ready` assembles a scrape whose every collector is prepared without
running any collector code or waiting on anything, so the event loop serves it itself; `render`
is the general path (a worker thread) and gives the same bytes.
"""

from __future__ import annotations

import dataclasses
import functools
import logging
import threading
import time
from collections.abc import Collection, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout

from hpcwatch.exporters.exposition import OPENMETRICS, TEXT, FamilyBytes, render_family
from hpcwatch.exporters.files import reading
from hpcwatch.exporters.http1 import GzipPrefix
from hpcwatch.exporters.jobcap import not_exported_family
from hpcwatch.exporters.registry import Collector
from hpcwatch.exporters.selfmetrics import collect_parse_errors, collect_read_errors, error_changes
from hpcwatch.exporters.snapshot import SnapshotSource
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.scrape")

SourceState = tuple[str, "float | None", bool, "float | None"]  # SnapshotSource.state()
_LOOP_GZIP_LIMIT = 1 << 20   # a static block bigger than this is not gzipped on the event loop


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


@dataclasses.dataclass
class Prepared:
    """A snapshot collector's families as its sources' last refresh left them, rendered per format.

    Immutable once published, except that a format first asked for after the refresh is added."""

    families: list[Metric]
    took: float                                # wall time of the collect that made them
    sources: tuple[SourceState, ...]           # its sources' state when they were made
    rendered: dict[str, bytes] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Block:
    """The part of a scrape that prepared bodies fix until the next refresh, and its gzip prefix."""

    entries: tuple[Prepared, ...]
    static: bytes
    gzip: GzipPrefix | None = None


@dataclasses.dataclass(frozen=True)
class Ready:
    """A scrape served from prepared bodies: `static` then `tail` (the error counters as of now)."""

    static: bytes
    tail: bytes
    gzip: GzipPrefix | None   # `static` deflated once, when gzip was asked for


@dataclasses.dataclass(frozen=True)
class Ran:
    """One collector in one scrape: its families (None when it failed), success and wall time."""

    name: str
    families: list[Metric] | None
    ok: bool
    took: float
    prepared: Prepared | None = None


class ScrapeCollector:
    """A prometheus_client collector that fans out to hpcwatch collectors; registered once per server.

    `prepare=False` runs snapshot collectors on every scrape too (the reference the tests compare with).
    """

    def __init__(self, collectors: Sequence[Collector], timeout: float = 10.0, max_workers: int = 8,
                 prepare: bool = True) -> None:
        self.collectors = list(collectors)
        self.timeout = timeout
        self._pool = ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(self.collectors) or 1)),
                                        thread_name_prefix="collect")
        self._overrun: dict[str, Future] = {}
        self._busy_lock = threading.Lock()
        self._last_error: dict[str, str] = {}
        self._bytes = {c.name: FamilyBytes() for c in self.collectors}
        self._health_bytes = FamilyBytes()
        self._errors_rendered: dict[str, tuple[int, bytes]] = {}
        self._memo: dict[str, tuple[tuple, list[Metric]]] = {}
        # Rendered at every refresh: both formats from the start (Prometheus asks for OpenMetrics, most
        # other scrapers for text), so even the first scrapes after start-up are answered on the loop.
        self._formats: set[str] = {TEXT, OPENMETRICS}
        self._prepared: dict[str, Prepared] = {}
        self._blocks: dict[tuple, Block] = {}
        self._gzip_wanted = False                 # once a client took gzip, refreshes gzip the blocks too
        self._subscriptions: list[tuple[SnapshotSource, functools.partial]] = []
        self.prepares = 0                         # bodies made after refreshes (tests compare with scrapes)
        self.ready_scrapes = 0                    # scrapes render_ready served
        if prepare:
            for c in self.collectors:
                if c.kind != "snapshot":
                    continue
                lock = threading.Lock()
                for source in c.sources():
                    callback = functools.partial(self._prepare, c, lock)
                    source.subscribe(callback)
                    self._subscriptions.append((source, callback))

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.collectors]

    @property
    def sources(self) -> list[SnapshotSource]:
        return [s for c in self.collectors for s in c.sources()]

    # ------------------------------------------------------------ running collectors
    def _run_one(self, collector: Collector) -> tuple[list[Metric], float, str | None]:
        start = time.perf_counter()
        with reading(collector.name) as errors:
            metrics = list(collector.collect())
        return metrics, time.perf_counter() - start, errors.first()

    def _start(self, collector: Collector) -> Future | None:
        """Submit a collect; None while an earlier one that overran its deadline still runs."""
        with self._busy_lock:
            # Only a collect that overran its deadline blocks new ones; concurrent scrapes run side by side.
            prev = self._overrun.get(collector.name)
            if prev is not None and not prev.done():
                return None
            self._overrun.pop(collector.name, None)
        return self._pool.submit(self._run_one, collector)

    def _finish(self, collector: Collector, fut: Future | None, t0: float, deadline: float) -> Ran:
        name = collector.name
        if fut is None:
            self._note_failure(name, "still busy with an earlier scrape that overran its deadline")
            return Ran(name, None, False, 0.0)
        try:
            metrics, took, read_error = fut.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            with self._busy_lock:
                self._overrun[name] = fut
            self._note_failure(name, f"did not finish within {self.timeout:g}s")
            return Ran(name, None, False, time.perf_counter() - t0)
        except Exception as exc:  # noqa: BLE001 - any collector bug is reported, never raised
            self._note_failure(name, f"{type(exc).__name__}: {exc}")
            log.debug("collector=%s traceback", name, exc_info=exc)
            return Ran(name, None, False, time.perf_counter() - t0)
        if read_error is not None:  # the families it could read are served; the failure is visible
            self._note_failure(name, read_error)
            return Ran(name, metrics, False, took)
        if self._last_error.pop(name, None) is not None:
            log.info("collector=%s recovered", name)
        return Ran(name, metrics, True, took)

    def _note_failure(self, name: str, reason: str) -> None:
        # Log a reason once until it changes, so a broken source does not flood the log every scrape.
        if self._last_error.get(name) != reason:
            self._last_error[name] = reason
            log.warning("collector=%s failed: %s", name, reason)

    def _prepare(self, collector: Collector, lock: threading.Lock) -> None:
        """After a refresh (on the source's thread): run the collector once and publish its body."""
        with lock:   # a collector with several sources: one prepare at a time, in refresh order
            states = tuple(s.state() for s in collector.sources())
            ran = self._finish(collector, self._start(collector), time.perf_counter(),
                               time.monotonic() + self.timeout)
            if ran.families is None or not ran.ok:
                self._prepared.pop(collector.name, None)   # scrapes run it, and report it, as a live one
                return
            entry = Prepared(ran.families, ran.took, states)
            for fmt in list(self._formats):
                entry.rendered[fmt] = b"".join(self._bytes[collector.name].render(entry.families, fmt))
            self._prepared[collector.name] = entry
            self.prepares += 1
            self._prepare_blocks()

    def _chosen(self, only: Collection[str] | None) -> list[Collector]:
        return self.collectors if only is None else [c for c in self.collectors if c.name in only]

    def run(self, only: Collection[str] | None = None) -> tuple[list[Ran], list[Metric]]:
        """One scrape of the chosen collectors: what each gave, and the health families."""
        chosen = self._chosen(only)
        started: list[tuple[Collector, Prepared | None, Future | None, float]] = []
        for c in chosen:
            entry = self._prepared.get(c.name)
            t0 = time.perf_counter()
            started.append((c, entry, None if entry is not None else self._start(c), t0))
        deadline = time.monotonic() + self.timeout
        runs: list[Ran] = []
        states: list[SourceState] = []
        for c, entry, fut, t0 in started:
            if entry is not None:
                runs.append(Ran(c.name, entry.families, True, entry.took, entry))
                states.extend(entry.sources)
            else:
                runs.append(self._finish(c, fut, t0, deadline))
                states.extend(s.state() for s in c.sources())
        return runs, self._health(chosen, runs, states)

    # ------------------------------------------------------------ health families
    def _memoized(self, name: str, key: tuple, build) -> list[Metric]:
        """The families `build()` made last time when `key` is unchanged (so their bytes are reused too)."""
        cached = self._memo.get(name)
        if cached is not None and cached[0] == key:
            return cached[1]
        families = list(build())
        self._memo[name] = (key, families)
        return families

    def _health(self, chosen: Sequence[Collector], runs: Sequence[Ran], states: Sequence[SourceState]) -> list[Metric]:
        """Health families that did not change since the last scrape are the same objects (bytes reused)."""
        return [*self._run_health(chosen, runs, states), *self._error_families()]

    def _run_health(self, chosen: Sequence[Collector], runs: Sequence[Ran],
                    states: Sequence[SourceState]) -> list[Metric]:
        """Success, duration, source and job-cap families: they only change when a collector or a source runs."""
        outcomes = tuple((r.name, 1 if r.ok else 0) for r in runs)
        took = tuple((r.name, r.took) for r in runs)
        key = tuple(states)
        health = [*self._memoized("success", outcomes, lambda: [_success_family(outcomes)]),
                  *self._memoized("duration", took, lambda: [_duration_family(took)]),
                  *self._memoized("sources", key, lambda: _source_families(key))]
        caps = [(c.name, c.job_cap) for c in chosen if c.job_cap is not None]
        if caps:   # a cap's count moves only when its collector runs (a scrape, or a snapshot's refresh)
            counts = tuple((name, cap.not_exported) for name, cap in caps)
            health.extend(self._memoized("jobs_not_exported", counts, lambda: [not_exported_family(caps)]))
        return health

    def _error_families(self) -> list[Metric]:
        """The parse and read error counters: the same objects until an error is recorded."""
        return self._memoized("errors", (error_changes(),), lambda: [*collect_parse_errors(), *collect_read_errors()])

    def _error_bytes(self, fmt: str) -> bytes:
        """The error counters' bytes, rendered again only when an error was recorded."""
        changes = error_changes()
        cached = self._errors_rendered.get(fmt)
        if cached is None or cached[0] != changes:
            cached = self._errors_rendered[fmt] = (
                changes, b"".join(render_family(f, fmt) for f in self._error_families()))
        return cached[1]

    # ------------------------------------------------------------ scrape outputs
    def gather(self, only: Collection[str] | None = None) -> tuple[list[tuple[str, list[Metric]]], list[Metric]]:
        """Run the chosen collectors: ([(collector, its families)], health families)."""
        runs, health = self.run(only)
        return [(r.name, r.families) for r in runs if r.families is not None], health

    def collect(self, only: Collection[str] | None = None) -> Iterator[Metric]:
        """Every family of one scrape (the prometheus_client collector interface; OTLP and tests)."""
        results, health = self.gather(only)
        for _, metrics in results:
            yield from metrics
        yield from health

    def render(self, fmt: str, only: Collection[str] | None = None) -> list[bytes]:
        """One scrape as exposition bytes, in parts to join (the general path: it may run collectors)."""
        self._formats.add(fmt)
        runs, health = self.run(only)
        parts: list[bytes] = []
        for r in runs:
            if r.families is None:
                continue
            if r.prepared is not None:
                rendered = r.prepared.rendered.get(fmt)
                if rendered is None:   # a format first asked for since the refresh: rendered once
                    rendered = r.prepared.rendered[fmt] = b"".join(self._bytes[r.name].render(r.families, fmt))
                parts.append(rendered)
            else:
                parts.extend(self._bytes[r.name].render(r.families, fmt))
        parts.extend(self._health_bytes.render(health, fmt))
        return parts

    def render_ready(self, fmt: str, only: Collection[str] | None = None, gzip: bool = False) -> Ready | None:
        """`render`'s bytes when every chosen collector has a prepared body in `fmt`, else None.

        Runs no collector code and waits on no lock a collector or a refresh holds, so the event loop
        may call it. The prepared bodies with their success, duration and source families are one
        `static` block, joined (and gzipped) once per refresh; each scrape adds only the parse and
        read error counters. With `gzip`, None also when the block has no gzip prefix yet and is too
        big to compress here."""
        chosen = self.collectors if only is None else self._chosen(only)
        entries = []
        for c in chosen:
            entry = self._prepared.get(c.name)
            if entry is None or fmt not in entry.rendered:
                return None
            entries.append(entry)
        if gzip:
            self._gzip_wanted = True
        block = self._block(fmt, chosen, entries, gzip, _LOOP_GZIP_LIMIT)
        if block is None:
            return None
        self.ready_scrapes += 1
        return Ready(block.static, self._error_bytes(fmt), block.gzip)

    def _block(self, fmt: str, chosen: Sequence[Collector], entries: list[Prepared], gzip: bool,
               gzip_limit: int | None) -> Block | None:
        """The static block of these prepared entries, made now unless it is current."""
        key = (fmt, tuple(c.name for c in chosen))
        block = self._blocks.get(key)
        if block is None or len(block.entries) != len(entries) or \
                any(a is not b for a, b in zip(block.entries, entries)):
            runs = [Ran(c.name, e.families, True, e.took, e) for c, e in zip(chosen, entries)]
            states = [s for e in entries for s in e.sources]
            static = b"".join([*(e.rendered[fmt] for e in entries),
                               *(render_family(f, fmt) for f in self._run_health(chosen, runs, states))])
            block = Block(tuple(entries), static)
            if len(self._blocks) > 64:   # selections come from query strings: keep the cache bounded
                self._blocks.clear()
            self._blocks[key] = block
        if gzip and block.gzip is None:
            if gzip_limit is not None and len(block.static) > gzip_limit:
                return None
            block.gzip = GzipPrefix(block.static)
        return block

    def _prepare_blocks(self) -> None:
        """After a prepare (on the source's thread): the whole agent's static blocks, so scrapes only look up."""
        entries = [self._prepared.get(c.name) for c in self.collectors]
        for fmt in list(self._formats):
            if all(e is not None and fmt in e.rendered for e in entries):
                self._block(fmt, self.collectors, entries, self._gzip_wanted, None)  # type: ignore[arg-type]

    def close(self) -> None:
        for source, callback in self._subscriptions:
            source.unsubscribe(callback)
        self._pool.shutdown(wait=False, cancel_futures=True)


def _success_family(outcomes: Sequence[tuple[str, int]]) -> Metric:
    success = GaugeMetricFamily("hpcwatch_collector_success",
                                "1 when the collector's last scrape succeeded, 0 when it raised or timed out.",
                                labels=["collector"])
    for name, ok in outcomes:
        success.add_metric([name], ok)
    return success


def _duration_family(took: Sequence[tuple[str, float]]) -> Metric:
    duration = GaugeMetricFamily("hpcwatch_collector_duration_seconds",
                                 "Wall time of the collector's run this scrape serves: the run in this scrape, "
                                 "or for a snapshot collector the run after its last refresh.", labels=["collector"])
    for name, seconds in took:
        duration.add_metric([name], seconds)
    return duration


def _source_families(states: Sequence[SourceState]) -> Iterator[Metric]:
    if not states:
        return
    last = GaugeMetricFamily("hpcwatch_source_last_success_timestamp_seconds",
                             "Unix time of the source's last successful refresh.", labels=["source"])
    up = GaugeMetricFamily("hpcwatch_source_up",
                           "1 when the source's most recent refresh succeeded.", labels=["source"])
    dur = GaugeMetricFamily("hpcwatch_source_refresh_duration_seconds",
                            "Wall time of the source's most recent refresh.", labels=["source"])
    for name, last_success, ok, last_duration in states:
        if last_success is not None:
            last.add_metric([name], last_success)
        up.add_metric([name], 1 if ok else 0)
        if last_duration is not None:
            dur.add_metric([name], last_duration)
    yield last
    yield up
    yield dur
