"""Write generated files as an operator needs them: folders created, mode 0644, all or nothing.

Rules, dashboards and configs are read by other users (Prometheus, Grafana, Alertmanager run as
their own accounts), so they are written 0644 whatever the umask; `tempfile.mkstemp` alone would
leave them 0600. State files are not written here: they stay private (exporters/scheduler/ledger.py).
A path that cannot be written raises OutputError, which `hpcwatch` prints as `error: PATH: reason`.
The temp-and-rename itself is hpcwatch.exporters.atomicfile's (fsync included): this module adds the
mode, folder checks and the errors a person can act on.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from hpcwatch.exporters.atomicfile import write_many

PUBLIC = 0o644


class OutputError(OSError):
    """An output path that cannot be written; str() is `PATH: reason`."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(reason)
        self.path, self.reason = path, reason

    def __str__(self) -> str:
        return f"{self.path}: {self.reason}"


def _blocking_file(path: str) -> str | None:
    """The nearest existing ancestor of `path` (or itself) when it is not a folder."""
    p = os.path.abspath(path)
    while not os.path.lexists(p) and os.path.dirname(p) != p:
        p = os.path.dirname(p)
    return p if os.path.lexists(p) and not os.path.isdir(p) else None


def describe(exc: OSError) -> str | None:
    """`PATH: reason` for an OSError about a path (any command's), None when it names no path."""
    if isinstance(exc, OutputError):
        return str(exc)
    if not isinstance(exc.filename, str):
        return None
    return str(_reason(exc, exc.filename))


def _reason(exc: OSError, path: str) -> OutputError:
    """The failing path and a reason a person can act on (makedirs over a file says only "File exists")."""
    if isinstance(exc, FileExistsError | NotADirectoryError):
        blocker = _blocking_file(path)
        if blocker:
            return OutputError(blocker, "not a directory")
    where = exc.filename if isinstance(exc.filename, str) else path  # atomicfile never names its temp file
    return OutputError(where, exc.strerror or str(exc))


def ensure_dir(path: str) -> None:
    """Create a folder and its parents; OutputError when that is impossible."""
    try:
        os.makedirs(path, exist_ok=True)
    except OSError as exc:
        raise _reason(exc, path) from None
    if not os.path.isdir(path):
        raise OutputError(path, "not a directory")


def write_files(files: Mapping[str, str], mode: int = PUBLIC) -> None:
    """Write every file or none (UTF-8, `mode`): each to a temporary file beside it, renamed once all are
    written; OutputError naming the path (or the file blocking its folder) when one cannot be."""
    for path in files:
        ensure_dir(os.path.dirname(os.path.abspath(path)))
    try:
        write_many({path: (lambda fh, text=text: fh.write(text.encode("utf-8"))) for path, text in files.items()},
                   mode)
    except OSError as exc:
        raise _reason(exc, exc.filename) from None  # write_many names the file or folder, never its temp


def write_text(path: str, text: str, mode: int = PUBLIC) -> None:
    """One file, atomically, 0644 by default."""
    write_files({path: text}, mode)


def remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        raise _reason(exc, path) from None
