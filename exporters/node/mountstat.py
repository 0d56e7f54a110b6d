"""Deadline-guarded stat calls: a hung mount (dead NFS server, stuck FUSE daemon) never blocks a scrape.

Each call runs on a daemon worker thread. A call that is not back by the deadline marks its path
hung: the path is skipped, without a new call, until the stuck call returns. Workers are reused,
and a new one is started only when none is idle, so a stuck call holds exactly one thread.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from queue import SimpleQueue
from typing import Any

log = logging.getLogger("hpcwatch.collector.node")


class StatOutcome:
    """What one batch of stat calls gave: results (value or the exception raised) and hung paths."""

    __slots__ = ("results", "still_hung", "timed_out")

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.timed_out: list[str] = []   # overran the deadline in this batch
        self.still_hung: list[str] = []  # hung since an earlier batch, not called again


class _Batch:
    __slots__ = ("closed", "pending", "results")

    def __init__(self) -> None:
        self.results: dict[str, Any] = {}
        self.pending = 0
        self.closed = False


class MountStatter:
    """Runs `stat(path)` for many paths at once on worker threads, waiting at most `timeout` seconds."""

    def __init__(self, stat: Callable[[str], Any] = os.statvfs, timeout: float = 1.0) -> None:
        self.stat = stat
        self.timeout = timeout
        self._cond = threading.Condition()
        self._jobs: SimpleQueue[tuple[_Batch, str] | None] = SimpleQueue()
        self._idle = 0
        self._threads = 0
        self._hung: set[str] = set()
        self._closed = False

    @property
    def workers(self) -> int:
        """Worker threads started so far (idle, busy or stuck)."""
        with self._cond:
            return self._threads

    @property
    def hung(self) -> frozenset[str]:
        with self._cond:
            return frozenset(self._hung)

    def stat_all(self, paths: Sequence[str]) -> StatOutcome:
        """Stat every path concurrently; paths still hung from before are not called again."""
        outcome = StatOutcome()
        batch = _Batch()
        submitted = []
        with self._cond:
            if self._closed:
                raise RuntimeError("MountStatter is closed")
            for path in paths:
                if path in self._hung:
                    outcome.still_hung.append(path)
                    continue
                submitted.append(path)
                batch.pending += 1
                if self._idle:
                    self._idle -= 1
                else:
                    self._start_worker()
                self._jobs.put((batch, path))
            if submitted:
                self._cond.wait_for(lambda: batch.pending == 0, timeout=self.timeout)
            batch.closed = True
            outcome.results = batch.results
            for path in submitted:
                if path not in batch.results:
                    self._hung.add(path)
                    outcome.timed_out.append(path)
        return outcome

    def _start_worker(self) -> None:
        self._threads += 1
        threading.Thread(target=self._work, name=f"node-statvfs-{self._threads}", daemon=True).start()

    def _work(self) -> None:
        while True:
            job = self._jobs.get()
            if job is None:
                return
            batch, path = job
            try:
                result: Any = self.stat(path)
            except Exception as exc:  # noqa: BLE001 - handed back to the caller as the result
                result = exc
            with self._cond:
                self._idle += 1
                if batch.closed:
                    # A call that overran its batch: the path answers again and may be called next scrape.
                    if path in self._hung:
                        self._hung.discard(path)
                        log.info("mount %s answers stat again after hanging", path)
                else:
                    batch.results[path] = result
                    batch.pending -= 1
                    if batch.pending == 0:
                        self._cond.notify_all()

    def close(self) -> None:
        """Stop idle workers; hung ones are daemon threads and die with the process."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, 0
        for _ in range(idle):
            self._jobs.put(None)
