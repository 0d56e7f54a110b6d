"""Count every finished job exactly once, across windows, overlaps and exporter restarts.

The ledger holds the accounting watermark (the end of the last window whose jobs are known to be
complete), the keys of runs counted within the overlap before it, the counter totals and the
queue-wait histogram, and the runs whose queue wait was already observed when they started. All
of it is saved atomically in one JSON state file after each refresh and before the new totals
are served, so a crash either loses nothing or repeats a window whose jobs the keys then skip.

A ledger without usable state (first start, lost or corrupt file) begins counting at start-up:
`origin` is that moment, jobs that ended before it are never counted, and runs that started
before it never add a queue-wait observation, so counters begin at 0 and nothing the previous
process served is counted again. The overlap only de-duplicates: it never reaches past `origin`.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import math
import os
import time
from collections.abc import Iterable

from hpcwatch.exporters.atomicfile import write_atomically
from hpcwatch.exporters.scheduler.model import DEFAULT_TURNAROUND_BUCKETS, FinishedJob, Histogram

log = logging.getLogger("hpcwatch.scheduler.ledger")

STATE_VERSION = 1


class StateFileError(RuntimeError):
    """The state file could not be read or written (the message names it and why)."""


class StateUnusable(ValueError):
    """The state file exists but holds no usable state; it has been moved aside (the message says where)."""


class FinishedJobLedger:
    """Finished-job totals by (queue, outcome, cause), queue-wait and turnaround histograms by queue, and
    the watermark."""

    def __init__(self, wait_buckets: tuple[float, ...], overlap: float = 600.0,
                 started_ttl: float = 14 * 86400.0, max_started: int = 1_000_000,
                 turnaround_buckets: tuple[float, ...] = DEFAULT_TURNAROUND_BUCKETS) -> None:
        self.wait_buckets = wait_buckets
        self.turnaround_buckets = turnaround_buckets
        self.overlap = overlap
        self.started_ttl = started_ttl
        self.max_started = max_started
        self.watermark: float | None = None
        self.origin: float | None = None           # when counting began; None: a state file from before origins
        self.counted: dict[str, float] = {}      # run key -> end time (kept while inside the overlap)
        self.started: dict[str, float] = {}      # run key -> when its wait was observed at start
        self.finished: dict[tuple[str, str, str], int] = {}
        self.wait: dict[str, Histogram] = {}
        self.turnaround: dict[str, Histogram] = {}   # submit -> end of successful runs, observed when counted
        # Counted runs a durable consumer (the summary writer) has not taken yet: saved with the counts,
        # so a crash between counting and summarising hands them over again at the next start.
        self.outbox: dict[str, FinishedJob] | None = None   # None: no durable consumer

    # -- windows --
    def start(self, now: float) -> None:
        """Begin counting at `now` (no usable state): only jobs that end from now on will count."""
        self.origin = self.watermark = now

    def window(self, now: float) -> tuple[float, float]:
        """The accounting window to query next: [watermark - overlap, now]; starts at now on first use."""
        if self.watermark is None:
            self.start(now)
        return self.watermark - self.overlap, now

    def _before_origin(self, t: float | None) -> bool:
        # Accounting prints whole seconds (sacct End 12:00:05 for a job that ended at 12:00:05.9): a job
        # that ends in the same second counting began must count, so origin is compared by its second.
        return t is not None and self.origin is not None and t < math.floor(self.origin)

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
            if self._before_origin(job.end):
                continue  # ended before counting began: another process (or nobody) counted it
            self.counted[job.key] = job.end if job.end is not None else time.time()
            k = (job.queue, job.outcome, job.cause)
            self.finished[k] = self.finished.get(k, 0) + job.count
            if self.outbox is not None:
                self.outbox[job.key] = job
            if self.started.pop(job.key, None) is None and not self._before_origin(job.start):
                wait = job.queue_wait
                if wait is not None:
                    self._hist(job.queue).observe(wait)
            if job.outcome == "success" and job.submit is not None and job.end is not None:
                self._hist(job.queue, self.turnaround).observe(max(0.0, job.end - job.submit), job.count)
            new.append(job)
        return new

    def ack(self, keys: Iterable[str]) -> None:
        """The durable consumer is done with these runs: drop them from the outbox."""
        if self.outbox is not None:
            for key in keys:
                self.outbox.pop(key, None)

    def observe_start(self, key: str, queue: str, wait: float, now: float, started: float | None = None) -> bool:
        """Observe a run's queue wait when it is first seen running; False when already observed or
        counted, or when it started (at `started`) before counting began."""
        if key in self.started or key in self.counted:
            return False
        self.started[key] = now
        if self._before_origin(started):
            return False
        self._hist(queue).observe(max(0.0, wait))
        return True

    def prune_started(self, now: float) -> None:
        """Forget start observations of runs that never showed up finished (requeued runs)."""
        cutoff = now - self.started_ttl
        if any(t < cutoff for t in self.started.values()) or len(self.started) > self.max_started:
            keep = sorted(((t, k) for k, t in self.started.items() if t >= cutoff), reverse=True)
            self.started = {k: t for t, k in keep[: self.max_started]}

    def _hist(self, queue: str, hists: dict[str, Histogram] | None = None) -> Histogram:
        """The queue's histogram in `hists` (default: queue wait), created empty on first use."""
        hists = self.wait if hists is None else hists
        h = hists.get(queue)
        if h is None:
            h = hists[queue] = Histogram(self.turnaround_buckets if hists is self.turnaround else self.wait_buckets)
        return h

    def view(self) -> FinishedJobLedger:
        """A copy of the totals, histograms and watermark for the scrape path (no keys)."""
        v = FinishedJobLedger(self.wait_buckets, self.overlap, turnaround_buckets=self.turnaround_buckets)
        v.watermark = self.watermark
        v.origin = self.origin
        v.finished = dict(self.finished)
        for mine, theirs in ((self.wait, v.wait), (self.turnaround, v.turnaround)):
            for q, h in mine.items():
                c = Histogram(h.edges)
                c.counts, c.total, c.sum = list(h.counts), h.total, h.sum
                theirs[q] = c
        return v

    # -- persistence --
    def to_dict(self) -> dict:
        return {
            "version": STATE_VERSION,
            "watermark": self.watermark,
            "origin": self.origin,
            "overlap": self.overlap,
            "counted": self.counted,
            "started": self.started,
            "finished": [[q, o, c, n] for (q, o, c), n in sorted(self.finished.items())],
            "wait": {q: h.to_dict() for q, h in sorted(self.wait.items())},
            "turnaround": {q: h.to_dict() for q, h in sorted(self.turnaround.items())},
            **({"outbox": [dataclasses.asdict(j) for j in self.outbox.values()]} if self.outbox else {}),
        }

    def load_dict(self, data: dict) -> None:
        """Restore from `to_dict()` output; raises ValueError/KeyError/TypeError on a malformed document."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"state version {data.get('version')!r}, expected {STATE_VERSION}")
        wm = data["watermark"]
        self.watermark = None if wm is None else float(wm)
        origin = data.get("origin")
        self.origin = None if origin is None else float(origin)
        self.counted = {str(k): float(v) for k, v in data["counted"].items()}
        self.started = {str(k): float(v) for k, v in data.get("started", {}).items()}
        self.finished = {}
        for q, o, c, n in data["finished"]:
            self.finished[(str(q), str(o), str(c))] = int(n)
        self.wait = {str(q): Histogram.from_dict(h, self.wait_buckets) for q, h in data.get("wait", {}).items()}
        # A state file from before the turnaround histogram holds none: it starts empty.
        self.turnaround = {str(q): Histogram.from_dict(h, self.turnaround_buckets)
                           for q, h in data.get("turnaround", {}).items()}
        if self.outbox is not None:
            self.outbox = {j["key"]: FinishedJob(**j) for j in data.get("outbox", [])}


class StateFile:
    """A JSON document saved atomically (temp file + fsync + rename); a corrupt one is moved aside."""

    def __init__(self, path: str) -> None:
        self.path = path

    def load(self) -> dict | None:
        """The saved document, or None when there is none yet; StateUnusable when it was corrupt (moved aside)."""
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
            raise StateUnusable(self.quarantine(f"not valid JSON ({exc})")) from None
        if not isinstance(data, dict):
            raise StateUnusable(self.quarantine("not a JSON object"))
        return data

    def quarantine(self, why: str) -> str:
        """Move a bad state file aside (kept for inspection) and say so; returns what happened, for the log."""
        aside = f"{self.path}.corrupt-{int(time.time())}"
        try:
            os.replace(self.path, aside)
        except OSError as exc:
            log.error("state file %s is unusable (%s) and could not be moved aside: %s", self.path, why, exc)
            return f"unusable ({why}), left in place"
        log.error("state file %s is unusable (%s); moved it to %s", self.path, why, aside)
        return f"unusable ({why}), moved to {aside}"

    def save(self, data: dict) -> None:
        self.write(self.encode(data))

    @staticmethod
    def encode(data: dict) -> bytes:
        """The document's bytes (taken while the data cannot change; written later by `write`)."""
        return json.dumps(data, separators=(",", ":")).encode("utf-8")

    def write(self, text: bytes) -> None:
        try:
            write_atomically(self.path, lambda fh: fh.write(text))
        except OSError as exc:
            raise StateFileError(f"state file {self.path}: cannot write: {exc.strerror or exc}") from exc


def load_ledger(ledger: FinishedJobLedger, state: StateFile) -> str | None:
    """Fill `ledger` from the state file. None when it did; otherwise why there is no usable state
    (none yet, or malformed and moved aside), and the ledger is left empty for `start()`.
    Raises StateFileError when the file exists but cannot be read (the next refresh tries again)."""
    try:
        data = state.load()
    except StateUnusable as exc:
        return str(exc)
    if data is None:
        return "no state file yet"
    try:
        ledger.load_dict(data)
    except (ValueError, KeyError, TypeError, AttributeError) as exc:
        why = state.quarantine(f"unexpected content: {type(exc).__name__}: {exc}")
        fresh = FinishedJobLedger(ledger.wait_buckets, ledger.overlap, ledger.started_ttl, ledger.max_started)
        fresh.outbox = {} if ledger.outbox is not None else None
        ledger.__dict__.update(fresh.__dict__)
        return why
    return None
