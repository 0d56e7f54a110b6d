"""The one reader of small /proc and /sys files, and what it does when a read fails.

A file that does not exist, vanished while we read it (ENOENT, ESRCH of an exited process,
ENODEV of a removed device) or says it is not supported (EOPNOTSUPP, EINVAL) is absent: None,
nothing logged. Any other OSError (EIO from a
driver, EISDIR, EACCES...) is a read error: the reader returns None as well, but the error is
counted in `hpcwatch_read_errors_total{source}`, logged once, and fails the collector's scrape
(`hpcwatch_collector_success 0`), so data never vanishes silently. Readers of files whose errors
are normal (an unconnected hwmon sensor answers EIO) pass `quiet=True`.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import errno
import logging
import os
import threading
from collections.abc import Iterator

from hpcwatch.exporters.selfmetrics import record_read_error

log = logging.getLogger("hpcwatch.files")

CHUNK = 1 << 16
ATTRIBUTE_SIZE = 4096  # sysfs attributes are at most a page
# errnos that mean "not there (any more)" or "not supported here", never a failure. EOPNOTSUPP and
# EINVAL are what a sysfs PMA counter of a device without a PMA answers (prometheus/procfs skips them too).
ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ESRCH, errno.ENODEV, errno.ENXIO, errno.EOPNOTSUPP,
                    errno.EINVAL})

_logged: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def log_once(logger: logging.Logger, key: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
    """Log `msg` the first time `key` is seen for this logger; later repeats go to debug."""
    k = (logger.name, key)
    with _logged_lock:
        first = k not in _logged
        _logged.add(k)
    logger.log(level if first else logging.DEBUG, msg, *args)


@dataclasses.dataclass
class ReadErrors:
    """Read errors met while one collector scraped (or refreshed); the first one says why it failed."""

    source: str
    errors: list[str] = dataclasses.field(default_factory=list)

    def first(self) -> str | None:
        return self.errors[0] if self.errors else None


_current: contextvars.ContextVar[ReadErrors | None] = contextvars.ContextVar("hpcwatch_read_errors", default=None)


@contextlib.contextmanager
def reading(source: str) -> Iterator[ReadErrors]:
    """Attribute read errors in this thread to `source` (a collector name) and collect them."""
    errors = ReadErrors(source)
    token = _current.set(errors)
    try:
        yield errors
    finally:
        _current.reset(token)


def fail_scrape(reason: str) -> None:
    """Fail the scrape in progress with `reason` without counting a new read error (e.g. a snapshot
    whose refresh met read errors, reported again on each scrape that serves it)."""
    current = _current.get()
    if current is not None:
        current.errors.append(reason)


def read_failed(path: str, exc: OSError) -> None:
    """Count, log once and attribute a read error of `path` (errno not in ABSENT)."""
    current = _current.get()
    source = current.source if current is not None else "unattributed"
    reason = f"cannot read {path}: {exc.strerror or exc}"
    record_read_error(source)
    log_once(log, f"{path}:{exc.errno}", "%s (source %s)", reason, source)
    if current is not None:
        current.errors.append(reason)


def _failed(path: str, exc: OSError, quiet: bool) -> None:
    if not quiet and exc.errno not in ABSENT:
        read_failed(path, exc)


def read_bytes(path: str, limit: int = 8 << 20, *, quiet: bool = False) -> bytes | None:
    """At most `limit` bytes of the file, or None when absent or unreadable (see the module docstring)."""
    # os.read in 64 KiB chunks: a buffered read(limit) allocates `limit` bytes up front on every call.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except ValueError:  # a NUL byte in the path: no such file
        return None
    except OSError as exc:
        _failed(path, exc, quiet)
        return None
    chunks = []
    size = 0
    try:
        while size < limit:
            chunk = os.read(fd, min(CHUNK, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        _failed(path, exc, quiet)
        return None
    finally:
        os.close(fd)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def read_text(path: str, limit: int = 8 << 20, *, quiet: bool = False) -> str | None:
    """The file's text (UTF-8, bad bytes replaced), or None when absent or unreadable."""
    data = read_bytes(path, limit, quiet=quiet)
    return None if data is None else data.decode("utf-8", "replace")


def read_int(path: str, *, quiet: bool = False) -> int | None:
    """The first token of the file as an int (0x-prefixed: hexadecimal), or None when absent or not one."""
    text = read_text(path, 4096, quiet=quiet)
    if text is None:
        return None
    tok = text.strip().split(maxsplit=1)
    if not tok:
        return None
    try:
        return int(tok[0], 0) if tok[0].startswith("0x") else int(tok[0])
    except ValueError:
        return None


def list_dir(path: str, *, quiet: bool = False) -> list[str]:
    """Sorted entries of a directory, or [] when it is absent or unreadable."""
    try:
        return sorted(os.listdir(path))
    except OSError as exc:
        _failed(path, exc, quiet)
        return []




class HeldFiles:
    """sysfs attribute files kept open between scrapes, up to a budget of descriptors, re-read with
    pread(fd, n, 0), which makes sysfs run the attribute's show() again.

    A file that fails to read (device removed: ENODEV; a directory) is closed and re-opened on the
    next read, so a driver reload costs one scrape of that device's data, never a stale value.
    """

    def __init__(self, budget: int) -> None:
        self.budget = max(0, budget)
        self._fds: dict[str, int] = {}

    def _miss(self, path: str) -> bytes | None:
        """Read a file not held yet: open it, read it, and hold it while the budget allows."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
        except OSError as exc:
            _failed(path, exc, False)
            return None
        held = len(self._fds) < self.budget
        if held:
            self._fds[path] = fd
        try:
            return os.pread(fd, ATTRIBUTE_SIZE, 0)  # a sysfs attribute is one show() of at most a page
        except OSError as exc:
            if held:
                del self._fds[path]
            _failed(path, exc, False)
            return None
        finally:
            if not held or path not in self._fds:
                os.close(fd)

    def _drop(self, path: str) -> None:
        os.close(self._fds.pop(path))

    def read_bytes(self, path: str) -> bytes | None:
        fd = self._fds.get(path)
        if fd is None:
            return self._miss(path)
        try:
            return os.pread(fd, ATTRIBUTE_SIZE, 0)
        except OSError as exc:
            self._drop(path)
            _failed(path, exc, False)
            return None

    def read(self, path: str) -> str | None:
        data = self.read_bytes(path)
        return None if data is None else data.decode("utf-8", "replace")

    def read_all(self, paths: list[str]) -> list[bytes | None]:
        """Each file's bytes (None: absent or unreadable), one pread per held file: a scrape's hot loop."""
        get = self._fds.get
        pread = os.pread
        out: list[bytes | None] = []
        append = out.append
        for path in paths:
            fd = get(path)
            if fd is None:
                append(self._miss(path))
                continue
            try:
                append(pread(fd, ATTRIBUTE_SIZE, 0))
            except OSError as exc:
                self._drop(path)
                _failed(path, exc, False)
                append(None)
        return out

    def forget(self, prefix: str) -> None:
        """Close every held file under `prefix` (a device that vanished or is re-listed)."""
        for path in [p for p in self._fds if p.startswith(prefix)]:
            os.close(self._fds.pop(path))

    def __len__(self) -> int:
        return len(self._fds)

    def close(self) -> None:
        self.forget("")
