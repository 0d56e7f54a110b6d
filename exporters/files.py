"""Small, defensive file readers for /proc and /sys: a missing, vanished or unreadable file is None, not an error."""

from __future__ import annotations

import logging
import os
import threading

_logged: set[tuple[str, str]] = set()
_logged_lock = threading.Lock()


def log_once(logger: logging.Logger, key: str, msg: str, *args: object, level: int = logging.WARNING) -> None:
    """Log `msg` the first time `key` is seen for this logger; later repeats go to debug."""
    k = (logger.name, key)
    with _logged_lock:
        first = k not in _logged
        _logged.add(k)
    logger.log(level if first else logging.DEBUG, msg, *args)


def read_text(path: str, limit: int = 8 << 20) -> str | None:
    """The file's text, or None if it is missing, vanished, unreadable or not a file."""
    # os.read in 64 KiB chunks: a buffered read(limit) allocates `limit` bytes up front on every call.
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        chunks = []
        size = 0
        while size < limit:
            chunk = os.read(fd, min(65536, limit - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError:  # EISDIR, a vanished /proc entry, EIO from a driver
        return None
    finally:
        os.close(fd)
    return b"".join(chunks).decode("utf-8", "replace")


def read_int(path: str) -> int | None:
    """The first token of the file as an int, or None when missing or not an integer."""
    text = read_text(path, 4096)
    if text is None:
        return None
    tok = text.strip().split(maxsplit=1)
    if not tok:
        return None
    try:
        return int(tok[0], 0) if tok[0].startswith("0x") else int(tok[0])
    except ValueError:
        return None


def list_dir(path: str) -> list[str]:
    """Sorted entries of a directory, or [] when it is missing or unreadable."""
    try:
        return sorted(os.listdir(path))
    except OSError:
        return []
