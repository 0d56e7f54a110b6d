"""Write generated files as an operator needs them: folders created, mode 0644, all or nothing.

Rules, dashboards and configs are read by other users (Prometheus, Grafana, Alertmanager run as
their own accounts), so they are written 0644 whatever the umask; `tempfile.mkstemp` alone would
leave them 0600. State files are not written here: they stay private (exporters/scheduler/ledger.py).
A path that cannot be written raises OutputError, which `hpcwatch` prints as `error: PATH: reason`.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping

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
    where = exc.filename if isinstance(exc.filename, str) and not os.path.basename(
        exc.filename).startswith(".hpcwatch-") else path
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
    """Write every file or none: each goes to a temporary file beside it, renamed once all are written."""
    temps: list[tuple[str, str]] = []
    try:
        for path, text in files.items():
            ensure_dir(os.path.dirname(os.path.abspath(path)))
            try:
                fd, tmp = tempfile.mkstemp(prefix=".hpcwatch-", suffix=".tmp", dir=os.path.dirname(
                    os.path.abspath(path)))
            except OSError as exc:
                raise _reason(exc, os.path.dirname(os.path.abspath(path))) from None
            temps.append((tmp, path))
            try:
                with os.fdopen(fd, "w", encoding="utf-8") as fh:
                    fh.write(text)
                os.chmod(tmp, mode)
            except OSError as exc:
                raise _reason(exc, path) from None
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _reason(exc, path) from None
    except BaseException:
        for tmp, _ in temps:
            _unlink(tmp)
        raise


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


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
