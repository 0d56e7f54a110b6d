"""Snapshot sources: a background loop refreshes an expensive source; scrapes read the last good snapshot.

Any number of concurrent scrapes cost the source exactly one refresh per interval. A refresh that
raises or times out keeps the previous snapshot and is logged; `last_success` makes staleness visible
through `hpcwatch_source_last_success_timestamp_seconds{source}`. After every refresh (good or
failed) the source calls its subscribers on the refreshing thread: the scrape side
(scrape.ScrapeCollector) then runs the collector once and keeps the rendered body, so scrapes of a
snapshot never run collector code. `FamilyCache` builds a collector's families once per snapshot.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Generic, TypeVar

from prometheus_client.metrics_core import Metric

T = TypeVar("T")

log = logging.getLogger("hpcwatch.snapshot")


class SnapshotSource(Generic[T]):
    """Runs `refresh()` every `interval` seconds on its own thread and keeps the last good result."""

    def __init__(self, name: str, refresh: Callable[[], T], interval: float) -> None:
        if interval <= 0:
            raise ValueError(f"source {name}: refresh interval must be > 0 seconds, got {interval}")
        self.name = name
        self.interval = float(interval)
        self._refresh = refresh
        self._lock = threading.Lock()
        self._value: T | None = None
        self._last_success: float | None = None
        self._last_error: str | None = None
        self._last_duration: float | None = None
        self._refreshes = 0
        self._failures = 0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._subscribers: list[Callable[[], None]] = []

    # -- reading (scrape path: never blocks on the source) --
    @property
    def value(self) -> T | None:
        with self._lock:
            return self._value

    @property
    def last_success(self) -> float | None:
        with self._lock:
            return self._last_success

    @property
    def last_error(self) -> str | None:
        with self._lock:
            return self._last_error

    @property
    def last_duration(self) -> float | None:
        with self._lock:
            return self._last_duration

    @property
    def ok(self) -> bool:
        """True when the most recent refresh succeeded."""
        with self._lock:
            return self._last_error is None and self._last_success is not None

    def state(self) -> tuple[str, float | None, bool, float | None]:
        """(name, last success, ok, last duration), read together: what the source health families say."""
        with self._lock:
            return (self.name, self._last_success, self._last_error is None and self._last_success is not None,
                    self._last_duration)

    @property
    def refreshes(self) -> int:
        with self._lock:
            return self._refreshes

    @property
    def failures(self) -> int:
        with self._lock:
            return self._failures

    # -- refreshing --
    def subscribe(self, callback: Callable[[], None]) -> None:
        """Call `callback()` on the refreshing thread after every refresh, good or failed."""
        self._subscribers.append(callback)

    def unsubscribe(self, callback: Callable[[], None]) -> None:
        try:
            self._subscribers.remove(callback)
        except ValueError:
            pass

    def refresh_now(self) -> bool:
        """Run one refresh in the caller's thread, then tell the subscribers; True when it succeeded."""
        ok = self._refresh_once()
        for callback in list(self._subscribers):
            try:
                callback()
            except Exception:  # noqa: BLE001 - a subscriber's bug must not stop the refresh loop
                log.exception("source=%s: a refresh subscriber failed", self.name)
        return ok

    def _refresh_once(self) -> bool:
        start = time.monotonic()
        try:
            value = self._refresh()
        except Exception as exc:  # a misbehaving source must never kill the loop
            elapsed = time.monotonic() - start
            with self._lock:
                self._refreshes += 1
                self._failures += 1
                self._last_duration = elapsed
                first = self._last_error is None
                self._last_error = f"{type(exc).__name__}: {exc}"
            # Log the first failure of a streak at warning, repeats at debug, so logs do not flood.
            (log.warning if first else log.debug)("source=%s refresh failed: %s", self.name, exc)
            return False
        elapsed = time.monotonic() - start
        with self._lock:
            recovered = self._last_error is not None
            self._value = value
            self._last_success = time.time()
            self._last_error = None
            self._last_duration = elapsed
            self._refreshes += 1
        if recovered:
            log.info("source=%s recovered", self.name)
        return True

    def _loop(self) -> None:
        while not self._stop.is_set():
            began = time.monotonic()
            self.refresh_now()
            self._stop.wait(max(0.0, self.interval - (time.monotonic() - began)))

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name=f"source-{self.name}", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)


class FamilyCache:
    """Families built from snapshot values once, rebuilt only when one of the values is a new object."""

    def __init__(self) -> None:
        self._entry: tuple[tuple[object, ...], list[Metric]] = ((), [])
        self._lock = threading.Lock()

    def get(self, key: tuple[object, ...], build: Callable[[], Iterable[Metric]]) -> list[Metric]:
        """The families for `key` (snapshot objects, compared by identity: ids could be reused)."""
        with self._lock:
            cached_key, families = self._entry
            if len(cached_key) == len(key) and all(a is b for a, b in zip(cached_key, key)):
                return families
        families = list(build())
        with self._lock:
            self._entry = (key, families)
        return families
