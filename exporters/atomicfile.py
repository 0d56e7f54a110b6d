"""Replace files atomically: each is written to a temporary file beside it, fsynced, renamed over it,
and its directory fsynced. The one temp-and-rename implementation: state files (ledger, alert
episodes, the accounting store) and generated outputs (hpcwatch/outputs.py) all go through it.

A reader (or a restart after a crash) sees the old file or the new one, never half of one. The
temporary name starts with a dot and ends in `.partial`, so globs for the real files never match it.
Files keep mkstemp's 0600 unless a mode is given (state stays private; outputs ask for 0644).
An OSError raised here names the file a person can act on (the target, or the folder that could not
be created or written), never the temporary name.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable, Mapping
from typing import IO

Writer = Callable[[IO[bytes]], None]
TEMP_SUFFIX = ".partial"


def _naming(exc: OSError, path: str) -> OSError:
    """`exc` with `path` as its filename (errno and subclass kept), unless it already names a real file."""
    named = exc.filename if isinstance(exc.filename, str) and not _is_temp(exc.filename) else path
    if named == exc.filename:
        return exc
    return OSError(exc.errno, exc.strerror or str(exc), named)


def _is_temp(name: str) -> bool:
    base = os.path.basename(name)
    return base.startswith(".") and base.endswith(TEMP_SUFFIX)


def write_many(files: Mapping[str, Writer], mode: int | None = None) -> None:
    """Write every file or none: call each `write(fh)` on a temporary file beside its path (folders are
    created), fsync, chmod to `mode` when given, then rename them all into place; raises OSError."""
    temps: list[tuple[str, str]] = []
    try:
        for path, write in files.items():
            directory = os.path.dirname(os.path.abspath(path))
            try:
                os.makedirs(directory, exist_ok=True)
                fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=TEMP_SUFFIX,
                                           dir=directory)
            except OSError as exc:
                raise _naming(exc, directory) from None
            temps.append((tmp, path))
            try:
                with os.fdopen(fd, "wb") as fh:
                    write(fh)
                    fh.flush()
                    os.fsync(fh.fileno())
                if mode is not None:
                    os.chmod(tmp, mode)
            except OSError as exc:
                raise _naming(exc, path) from None
        for tmp, path in temps:
            try:
                os.replace(tmp, path)
            except OSError as exc:
                raise _naming(exc, path) from None
    except BaseException:
        for tmp, _ in temps:
            _unlink(tmp)
        raise
    for directory in sorted({os.path.dirname(os.path.abspath(p)) for p in files}):
        _fsync_dir(directory)


def write_atomically(path: str, write: Writer, mode: int | None = None) -> None:
    """One file: `write(fh)` on a temporary file beside `path`, renamed over it; raises OSError."""
    write_many({path: write}, mode)


def _fsync_dir(directory: str) -> None:
    """Make the renames durable; best effort (some filesystems refuse a directory fsync)."""
    try:
        dfd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dfd)
    except OSError:
        pass
    finally:
        os.close(dfd)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass
