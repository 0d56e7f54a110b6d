"""Count every finished job exactly once, across windows, overlaps and exporter restarts.

The ledger holds the accounting watermark (the end of the last window whose jobs are known to be
complete), the keys of runs counted within the overlap before it, the counter totals and the
queue-wait histogram, and the runs whose queue wait was already observed when they started. All
of it is saved atomically in one JSON state file after each refresh and before the new totals
are served, so a crash either loses nothing or repeats a window whose jobs the keys then skip.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import time
from collections.abc import Iterable

from hpcwatch.exporters.atomicfile import write_atomically
from hpcwatch.exporters.scheduler.model import FinishedJob, Histogram

log = logging.getLogger("hpcwatch.scheduler.ledger")

STATE_VERSION = 1


class StateFileError(RuntimeError):
    """The state file could not be written (the message names it and why)."""


class FinishedJobLedger:
    """Finished-job totals by (queue, outcome, cause), queue-wait histograms by queue, and the watermark."""

    def __init__(self, wait_buckets: tuple[float, ...], overlap: float = 600.0,
                 started_ttl: float = 14 * 86400.0, max_started: int = 1_000_000) -> None:
        self.wait_buckets = wait_buckets
        self.overlap = overlap
        self.started_ttl = started_ttl
        self.max_started = max_started
        self.watermark: float | None = None
        self.counted: dict[str, float] = {}      # run key -> end time (kept while inside the overlap)
        self.started: dict[str, float] = {}      # run key -> when its wait was observed at start
        self.finished: dict[tuple[str, str, str], int] = {}
        self.wait: dict[str, Histogram] = {}
        # Counted runs a durable consumer (the summary writer) has not taken yet: saved with the counts,
        # so a crash between counting and summarising hands them over again at the next start.
        self.outbox: dict[str, FinishedJob] | None = None   # None: no durable consumer

    # -- windows --
    def window(self, now: float) -> tuple[float, float]:
        """The accounting window to query next: [watermark - overlap, now]; starts at now on first use."""
        if self.watermark is None:
            self.watermark = now
        return self.watermark - self.overlap, now

    def advance(self, end: float) -> None:
        """Every job that ended up to `end` is now in accounting: move the watermark, forget old keys."""
        if self.watermark is None or end > self.watermark:
            self.watermark = end
        horizon = self.watermark - self.overlap
        self.counted = {k: e for k, e in self.counted.items() if e >= horizon}

    # -- counting --
    def count(self, jobs: Iterable[FinishedJob]) -> list[FinishedJob]:
        """Add the runs not counted before; return them. Runs whose wait was not seen at start add it now."""
        new = []
        for job in jobs:
            if job.key in self.counted:
                continue
            if self.watermark is not None and job.end is not None and job.end < self.watermark - self.overlap:
                # Before the overlap: it was inside an earlier window that we already counted in full.
                continue
            self.counted[job.key] = job.end if job.end is not None else time.time()
            k = (job.queue, job.outcome, job.cause)
            self.finished[k] = self.finished.get(k, 0) + job.count
            if self.outbox is not None:
                self.outbox[job.key] = job
            if self.started.pop(job.key, None) is None:
                wait = job.queue_wait
                if wait is not None:
                    self._hist(job.queue).observe(wait)
            new.append(job)
        return new

    def ack(self, keys: Iterable[str]) -> None:
        """The durable consumer is done with these runs: drop them from the outbox."""
        if self.outbox is not None:
            for key in keys:
                self.outbox.pop(key, None)

    def observe_start(self, key: str, queue: str, wait: float, now: float) -> bool:
        """Observe a run's queue wait when it is first seen running; False when already observed or counted."""
        if key in self.started or key in self.counted:
            return False
        self.started[key] = now
        self._hist(queue).observe(max(0.0, wait))
        return True

    def prune_started(self, now: float) -> None:
        """Forget start observations of runs that never showed up finished (requeued runs)."""
        cutoff = now - self.started_ttl
        if any(t < cutoff for t in self.started.values()) or len(self.started) > self.max_started:
            keep = sorted(((t, k) for k, t in self.started.items() if t >= cutoff), reverse=True)
            self.started = {k: t for t, k in keep[: self.max_started]}

    def _hist(self, queue: str) -> Histogram:
        h = self.wait.get(queue)
        if h is None:
            h = self.wait[queue] = Histogram(self.wait_buckets)
        return h

    def view(self) -> FinishedJobLedger:
        """A copy of the totals, histograms and watermark for the scrape path (no keys)."""
        v = FinishedJobLedger(self.wait_buckets, self.overlap)
        v.watermark = self.watermark
        v.finished = dict(self.finished)
        for q, h in self.wait.items():
            c = Histogram(h.edges)
            c.counts, c.total, c.sum = list(h.counts), h.total, h.sum
            v.wait[q] = c
        return v

    # -- persistence --
    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "overlap": self.overlap,
            "counted": self.counted,
            "started": self.started,
            "finished": [[q, o, c, n] for (q, o, c), n in sorted(self.finished.items())],
            "wait": {q: h.to_dict() for q, h in sorted(self.wait.items())},
            **({"outbox": [dataclasses.asdict(j) for j in self.outbox.values()]} if self.outbox else {}),
        }

    def load_dict(self, data: dict) -> None:
        """Restore from `to_dict()` output; raises ValueError/KeyError/TypeError on a malformed document."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
        wm = data["watermark"]
        self.watermark = None if wm is None else float(wm)
        self.counted = {str(k): float(v) for k, v in data["counted"].items()}
        self.started = {str(k): float(v) for k, v in data.get("started", {}).items()}
        self.finished = {}
        for q, o, c, n in data["finished"]:
            self.finished[(str(q), str(o), str(c))] = int(n)
        self.wait = {str(q): Histogram.from_dict(h, self.wait_buckets) for q, h in data.get("wait", {}).items()}
        if self.outbox is not None:
            self.outbox = {j["key"]: FinishedJob(**j) for j in data.get("outbox", [])}


class StateFile:
    """A JSON document saved atomically (temp file + fsync + rename); a corrupt one is moved aside."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict | None:
        """The saved document, or None when there is none yet (or it was corrupt and has been moved aside)."""
        try:
            with open(self.path, encoding="utf-8") as fh:
                text = fh.read()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateFileError(f"state file {self.path}: cannot read: {exc.strerror or exc}") from exc
        try:
            data = json.loads(text)
        except ValueError as exc:
            self.quarantine(f"not valid JSON ({exc})")
            return None
        if not isinstance(data, dict):
            self.quarantine("not a JSON object")
            return None
        return data

    def quarantine(self, why: str) -> str:
        """Move a bad state file aside (kept for inspection) and say so; returns the new name."""
        aside = f"{self.path}.corrupt-{int(time.time())}"
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s", self.path, why, exc)
            return self.path
        log.error("state file %s is unusable (%s); moved it to %s and starting from an empty state",
                  self.path, why, aside)
        return aside

    def save(self, data: dict) -> None:
        text = json.dumps(data, separators=(",", ":")).encode("utf-8")
        try:
            write_atomically(self.path, lambda fh: fh.write(text))
        except OSError as exc:
            raise StateFileError(f"state file {self.path}: cannot write: {exc.strerror or exc}") from exc


def load_ledger(ledger: FinishedJobLedger, state: StateFile) -> None:
    """Fill `ledger` from the state file; a malformed document is moved aside and the ledger starts empty."""
    data = state.load()
    if data is None:
        return
    try:
        ledger.load_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        state.quarantine(f"unexpected content: {type(exc).__name__}: {exc}")
        fresh = FinishedJobLedger(ledger.wait_buckets, ledger.overlap, ledger.started_ttl, ledger.max_started)
        fresh.outbox = {} if ledger.outbox is not None else None
        ledger.__dict__.update(fresh.__dict__)
