"""Value types of collector options: each parses the flag's text into the typed value, or raises
ValueError saying what was expected. argparse runs them, so a bad value stops start-up naming the flag.

Durations follow Prometheus (`30s`, `5m`, `1h30m`, `1d`, `500ms`); a bare number is seconds.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from typing import Any

_DURATION = re.compile(r"(?:(\d+)y)?(?:(\d+)w)?(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?(?:(\d+)ms)?")
_DECIMAL_DURATION = re.compile(r"(\d+\.\d*|\.\d+)(ms|s|m|h|d|w|y)")  # 1.5m: one unit with a fraction
_UNITS = ((31536000.0, "y"), (604800.0, "w"), (86400.0, "d"), (3600.0, "h"), (60.0, "m"), (1.0, "s"),
          (0.001, "ms"))
_TRUE = frozenset({"1", "true", "yes", "on"})
_FALSE = frozenset({"0", "false", "no", "off"})


def duration(text: str) -> float:
    """`1h30m` -> 5400.0, `500ms` -> 0.5, `2.5` -> 2.5 (bare seconds), `1.5m` -> 90.0; never negative,
    nan or inf."""
    s = str(text).strip()
    try:
        value = float(s)
    except ValueError:
        m = _DURATION.fullmatch(s)
        d = _DECIMAL_DURATION.fullmatch(s)
        if d is not None:
            value = float(d.group(1)) * dict((u, f) for f, u in _UNITS)[d.group(2)]
        elif not s or m is None:
            raise ValueError(f"{text!r} is not a duration: use seconds or a Prometheus duration "
                             "such as 30s, 5m, 1h30m, 1d") from None
        else:
            value = sum(int(n) * unit for n, (unit, _) in zip(m.groups(), _UNITS) if n)
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{text!r} is not a duration: must be zero or more seconds")
    return value


def positive_duration(text: str) -> float:
    """A duration above zero (a timeout or an interval that must run)."""
    try:
        value = duration(text)
    except ValueError:
        value = 0.0
    if value <= 0:
        raise ValueError(f"{text!r}: expected a positive duration such as 10s, 2m or 0.5")
    return value


def format_duration(seconds: float) -> str:
    """30.0 -> `30s`, 5400.0 -> `1h30m`, 0.5 -> `500ms`: the shortest Prometheus duration (for help)."""
    if seconds == 0:
        return "0s"
    ms = round(seconds * 1000)
    if abs(ms - seconds * 1000) > 1e-6 or ms < 0:
        return f"{seconds:g}s"
    parts = []
    for unit, suffix in _UNITS:
        n, ms = divmod(ms, round(unit * 1000))
        if n:
            parts.append(f"{n}{suffix}")
    return "".join(parts)


def boolean(text: str) -> bool:
    """`true`/`false` (also 1/0, yes/no, on/off) -> bool; used where a switch is given as text (tests, code)."""
    s = str(text).strip().lower()
    if s in _TRUE:
        return True
    if s in _FALSE:
        return False
    raise ValueError(f"{text!r} is not a boolean: use true or false")


def _bounded_int(lowest: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(str(text).strip())
        except ValueError:
            raise ValueError(f"{text!r} is not a whole number") from None
        if value < lowest:
            raise ValueError(f"{value} is too small: at least {lowest}")
        return value
    parse.__name__ = f"integer_from_{lowest}"
    return parse


count = _bounded_int(0)
"""A whole number, zero or more."""
positive_count = _bounded_int(1)
"""A whole number, one or more."""


def regexp(text: str) -> re.Pattern[str] | None:
    """A Python regular expression (searched, not anchored); empty text means none."""
    if not text:
        return None
    try:
        return re.compile(text)
    except re.error as exc:
        raise ValueError(f"{text!r} is not a valid regular expression: {exc}") from None


def names(text: str) -> tuple[str, ...]:
    """A comma-separated list of names, blanks dropped: `a, b,` -> ("a", "b")."""
    return tuple(p.strip() for p in str(text).split(",") if p.strip())


def buckets(text: str) -> tuple[float, ...]:
    """Histogram bucket edges: positive, distinct seconds or durations, comma-separated (sorted here)."""
    try:
        edges = tuple(sorted(duration(x) for x in names(text)))
    except ValueError:
        raise ValueError(f"{text!r} is not a comma-separated list of seconds or durations") from None
    if not edges or any(e <= 0 for e in edges) or any(b == a for a, b in itertools.pairwise(edges)):
        raise ValueError(f"{text!r}: bucket edges must be positive and distinct")
    return edges


def auto(parse: Callable[[str], Any]) -> Callable[[str], Any]:
    """`parse`, or None for the word `auto` (the collector then picks the value itself)."""
    def parse_or_auto(text: str) -> Any:
        return None if str(text).strip().lower() == "auto" else parse(text)
    parse_or_auto.__name__ = getattr(parse, "__name__", "value")
    return parse_or_auto


def show_auto(value: object) -> str:
    """How an `auto(...)` option's value reads in --help: `auto` for None, durations as durations."""
    if value is None:
        return "auto"
    return format_duration(value) if isinstance(value, float) else show(value)


def show(value: object) -> str:
    """A typed option value as its flag text (for --help and the docs)."""
    if isinstance(value, bool):
        return "on" if value else "off"
    if value is None:
        return ""
    if isinstance(value, re.Pattern):
        return value.pattern
    if isinstance(value, tuple):
        return ",".join(show(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)
