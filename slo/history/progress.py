"""A one-line progress bar on stderr, drawn only on a terminal or when asked (--progress)."""

from __future__ import annotations

import sys
import time


class Progress:
    """`Progress(total, label)`; `advance(n)`; `done()`. Redraws at most 10 times a second."""

    def __init__(self, enabled: bool, stream=None) -> None:
        self.enabled = enabled
        self.stream = stream or sys.stderr
        self.total = 0
        self.n = 0
        self.label = ""
        self._last = 0.0

    @classmethod
    def auto(cls, forced: bool | None) -> Progress:
        on = forced if forced is not None else bool(getattr(sys.stderr, "isatty", lambda: False)())
        return cls(on)

    def stage(self, label: str, total: int) -> None:
        self.finish_line()
        self.label, self.total, self.n = label, max(1, total), 0
        self._draw(force=True)

    def advance(self, n: int = 1) -> None:
        self.n += n
        self._draw()

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last < 0.1 and self.n < self.total:
            return
        self._last = now
        frac = min(1.0, self.n / self.total)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label[:40]:<40} [{bar:<30}] {frac * 100:5.1f}%")
        self.stream.flush()

    def finish_line(self) -> None:
        if self.enabled and self.label:
            self.n = self.total
            self._draw(force=True)
            self.stream.write("\n")
            self.stream.flush()
            self.label = ""

    def done(self) -> None:
        self.finish_line()
