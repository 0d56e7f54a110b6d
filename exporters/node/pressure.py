"""/proc/pressure/{cpu,io,memory,irq} (PSI): stall time totals and the 10 s average, for `some` and `full`."""

from __future__ import annotations

from typing import NamedTuple

RESOURCES = ("cpu", "io", "memory", "irq")


class PressureLine(NamedTuple):
    """One `some` or `full` line: total stall time in seconds and avg10 as a 0..1 ratio."""

    kind: str
    stalled_seconds: float
    avg10_ratio: float


def parse_pressure(text: str) -> tuple[list[PressureLine], int]:
    """(lines that carry a total, number of lines skipped as unreadable). Never raises."""
    out: list[PressureLine] = []
    errors = 0
    for line in text.splitlines():
        parts = line.split()
        if not parts:
            continue
        kind = parts[0]
        total = avg10 = None
        for tok in parts[1:]:
            key, _, val = tok.partition("=")
            if key == "total" and val.isdigit() and val.isascii():
                total = int(val)
            elif key == "avg10":
                avg10 = _percent(val)
        if kind not in ("some", "full") or total is None or avg10 is None:
            errors += 1
            continue
        out.append(PressureLine(kind, total / 1e6, avg10 / 100.0))
    return out, errors


def _percent(val: str) -> float | None:
    try:
        f = float(val)
    except ValueError:
        return None
    return f if 0.0 <= f <= 100.0 else None
