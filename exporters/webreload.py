"""Reload of `--web.config.file` and the certificates it names, without a restart.

A light thread hashes the config file and every file the current config was read from (certificate,
key, client CA) every `interval` seconds, and on request (SIGHUP). When anything changed, the config
is read again; a good one is handed to `apply` (the server swaps its SSLContext and users), a broken
one is refused with one error log line naming the file and the field, and the previous config keeps
serving. A refused config is retried on every poll, so a certificate written before its key (or a
file named before it exists) is picked up once it is whole.
"""

from __future__ import annotations

import hashlib
import logging
import threading
import time
from collections.abc import Callable, Iterable

from hpcwatch.exporters.webconfig import WebConfig, WebConfigError, load_web_config

log = logging.getLogger("hpcwatch.webconfig")


def fingerprint(paths: Iterable[str]) -> tuple[tuple[str, str], ...]:
    """(path, sha256 of its bytes or the read error) per file: contents, not mtimes, so same-second writes count."""
    out = []
    for p in paths:
        try:
            with open(p, "rb") as fh:
                out.append((p, hashlib.sha256(fh.read()).hexdigest()))
        except OSError as exc:
            out.append((p, f"error:{exc.errno}"))
    return tuple(out)


class WebConfigWatcher:
    """Polls the web config's files and re-reads them when they change; `request()` forces a read (SIGHUP)."""

    def __init__(self, path: str, current: WebConfig, apply: Callable[[WebConfig], None],
                 interval: float = 10.0) -> None:
        self.path = path
        self.apply = apply
        self.interval = interval
        self._files = current.files or (path,)
        self._seen = fingerprint(self._files)
        self._last_error: str | None = None
        self.last_ok = True
        self.last_success = time.time()
        self.reloads = 0
        self._forced = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="web-config", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._forced.set()
        if self._thread is not None:
            self._thread.join(5)

    def request(self) -> None:
        """Read the config again now, changed or not (safe to call from a signal handler)."""
        self._forced.set()

    def _loop(self) -> None:
        while not self._stop.is_set():
            forced = self._forced.wait(self.interval if self.interval > 0 else None)
            if self._stop.is_set():
                return
            self._forced.clear()
            try:
                self.check(forced=forced)
            except Exception:  # noqa: BLE001 - the watcher must outlive any surprise
                log.exception("web config reload of %s failed", self.path)

    def check(self, forced: bool = False) -> bool:
        """Re-read when forced, when a file changed, or while the last read was refused; True when applied."""
        seen = fingerprint(self._files)
        if not forced and seen == self._seen and self.last_ok:
            return False
        self._seen = seen
        try:
            cfg = load_web_config(self.path)
        except WebConfigError as exc:
            self.last_ok = False
            if forced or str(exc) != self._last_error:
                log.error("web config not reloaded, the previous one is still served: %s", exc)
            self._last_error = str(exc)
            return False
        self.apply(cfg)
        self._files = cfg.files or (self.path,)
        self._seen = fingerprint(self._files)
        self._last_error = None
        self.last_ok = True
        self.last_success = time.time()
        self.reloads += 1
        log.info("web config reloaded from %s (%s)", self.path,
                 "TLS" if cfg.ssl_context is not None else "plain HTTP")
        return True
