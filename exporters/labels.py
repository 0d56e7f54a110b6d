"""The label-value policy every collector follows, in one place.

Label values that come from users or devices (job names, accounts, paths, sysfs strings) are data:
control characters are replaced and the length is capped, and the exposition library escapes the
rest (quotes, backslashes, UTF-8 stay as they are). Two other shapes exist for good reasons and have
their own names: `first_line` for a sysfs attribute, and `identifier` for node_exporter-compatible
names built from device names (hwmon `chip`).
"""

from __future__ import annotations

import functools
import re

LIMIT = 128  # characters; longer values are cut (real partition, account and device names are far shorter)
OTHER = "__other__"  # the label value of everything past a cap (per-user, per-account, per-job series)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_NOT_IDENT = re.compile(r"[^a-z0-9:_]")


@functools.lru_cache(maxsize=8192)  # the same partitions, reasons and users repeat on every line
def value(text: object, limit: int = LIMIT) -> str:
    """Any value as a label value: str() of it, control characters replaced by `?`, at most `limit` long."""
    s = str(text) if text is not None else ""
    if len(s) > limit:
        s = s[:limit]
    return _CONTROL.sub("?", s)


def first_line(text: str | None, limit: int = LIMIT) -> str:
    """A file's text as a label value: its first line, stripped, then `value()` (sysfs strings end in \\n)."""
    if not text:
        return ""
    return value(text.strip().split("\n", 1)[0], limit)


def identifier(text: str) -> str:
    """node_exporter's cleanMetricName: lower-case, every character but [a-z0-9:_] to `_`, `_` trimmed."""
    return _NOT_IDENT.sub("_", text.lower()).strip("_")
