"""/proc/loadavg: the 1, 5 and 15 minute load averages."""

from __future__ import annotations

import math


def parse_loadavg(text: str) -> tuple[float, float, float] | None:
    """(load1, load5, load15), or None when the text does not start with three numbers."""
    fields = text.split(None, 3)
    if len(fields) < 3:
        return None
    try:
        loads = (float(fields[0]), float(fields[1]), float(fields[2]))
    except ValueError:
        return None
    # float() accepts "nan" and "inf"; the kernel never writes them, so such text is not a loadavg.
    if not all(math.isfinite(v) for v in loads):
        return None
    return loads
