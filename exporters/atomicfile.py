"""Replace a file atomically: write a temporary file beside it, fsync, rename over it, fsync the directory.

A reader (or a restart after a crash) sees the old file or the new one, never half of one. The
temporary name starts with a dot and ends in `.partial`, so globs for the real files never match it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from typing import IO


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call `write(fh)` on a temporary file in path's directory, then rename it to `path`; raises OSError."""
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix="." + os.path.basename(path) + ".", suffix=".partial", dir=directory)
    try:
        with os.fdopen(fd, "wb") as fh:
            write(fh)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
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
