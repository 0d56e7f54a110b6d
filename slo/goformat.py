"""Numbers, durations and label sets printed exactly as Sloth's Go code prints them.

Sloth renders floats with Go's `%v`/`%g` (shortest round-trip digits; exponent form below 1e-4 and
from 1e6 on, as strconv does for the shortest precision), durations with
prometheus/common's `model.Duration.String()` (28d is `4w`) and label filters with `LabelSet.String()`.
Matching these byte for byte is what keeps our rule files diff-clean against Sloth's.
"""

from __future__ import annotations

import functools
import math
from decimal import Decimal

_MS = {"y": 365 * 86400_000, "w": 7 * 86400_000, "d": 86400_000, "h": 3600_000, "m": 60_000, "s": 1000,
       "ms": 1}


def _digits(x: float) -> tuple[str, int]:
    """Shortest round-trip decimal digits of |x| and the decimal point position (Go's digs.d, digs.dp)."""
    _, digits, exp = Decimal(repr(abs(x))).as_tuple()
    text = "".join(map(str, digits)).rstrip("0") or "0"
    dp = len(digits) + exp
    if text == "0":
        dp = 1
    return text, dp


def go_float(x: float) -> str:
    """strconv.FormatFloat(x, 'g', -1, 64), which is what fmt's %v and %g print for a float64."""
    x = float(x)
    if math.isnan(x):
        return "NaN"
    if x in (float("inf"), float("-inf")):
        return "+Inf" if x > 0 else "-Inf"
    if x == 0:
        return "0"
    sign = "-" if x < 0 else ""
    digs, dp = _digits(x)
    exp = dp - 1
    # strconv/ftoa.go, 'g' with the shortest precision: %e when exp < -4 || exp >= 6.
    if exp < -4 or exp >= 6:
        mant = digs[0] + ("." + digs[1:] if len(digs) > 1 else "")
        return f"{sign}{mant}e{'-' if exp < 0 else '+'}{abs(exp):02d}"
    return sign + _fixed(digs, dp)


def _fixed(digs: str, dp: int) -> str:
    if dp <= 0:
        return "0." + "0" * (-dp) + digs
    if dp >= len(digs):
        return digs + "0" * (dp - len(digs))
    return digs[:dp] + "." + digs[dp:]


def go_float_f(x: float) -> str:
    """strconv.FormatFloat(x, 'f', -1, 64): shortest digits, never an exponent (Sloth's sloth_objective)."""
    x = float(x)
    if x == 0:
        return "0"
    digs, dp = _digits(x)
    return ("-" if x < 0 else "") + _fixed(digs, dp)


@functools.lru_cache(maxsize=4096)
def prom_duration(seconds: int) -> str:
    """prometheus/common model.Duration(d).String(): years and weeks only when exact (28d -> 4w)."""
    ms = int(seconds) * 1000
    if ms == 0:
        return "0s"
    out = []
    for unit, mult in _MS.items():
        if unit in ("y", "w") and ms % mult != 0:
            continue
        v = ms // mult
        if v > 0:
            out.append(f"{v}{unit}")
            ms -= v * mult
    return "".join(out)


def parse_duration(text: str) -> int:
    """Prometheus duration ('5m', '1d12h', '4w') to whole seconds; ValueError when it is not one."""
    import re

    if not isinstance(text, str) or not text:
        raise ValueError("empty duration")
    m = re.fullmatch(r"((\d+)y)?((\d+)w)?((\d+)d)?((\d+)h)?((\d+)m)?((\d+)s)?((\d+)ms)?", text.strip())
    if not m or not any(m.groups()):
        raise ValueError(f"{text!r} is not a duration like 5m, 1h, 30d")
    units = (("y", 2), ("w", 4), ("d", 6), ("h", 8), ("m", 10), ("s", 12))
    total_ms = sum(int(m.group(i)) * _MS[u] for u, i in units if m.group(i))
    if m.group(14):
        total_ms += int(m.group(14))
    if total_ms % 1000:
        raise ValueError(f"{text!r}: durations below a second are not supported")
    return total_ms // 1000


def go_hours(seconds: int) -> float:
    """time.Duration.Hours(): whole hours plus the remainder, in that float order."""
    ns = int(seconds) * 1_000_000_000
    hour, rem = divmod(ns, 3_600_000_000_000)
    return float(hour) + float(rem) / (60 * 60 * 1e9)


@functools.lru_cache(maxsize=65536)
def go_quote(value: str) -> str:
    """strconv.Quote for label values (what %q prints)."""
    out = ['"']
    for ch in value:
        code = ord(ch)
        if ch == '"':
            out.append('\\"')
        elif ch == "\\":
            out.append("\\\\")
        elif ch in "\a\b\f\n\r\t\v":
            out.append({"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t",
                        "\v": "\\v"}[ch])
        elif code < 0x20 or code == 0x7F:
            out.append(f"\\x{code:02x}")
        elif not ch.isprintable():
            out.append(f"\\u{code:04x}" if code <= 0xFFFF else f"\\U{code:08x}")
        else:
            out.append(ch)
    out.append('"')
    return "".join(out)


def label_filter(labels: dict[str, str]) -> str:
    """prometheus/common LabelSet.String(): `{a="x", b="y"}`, pairs sorted as strings."""
    pairs = sorted(f"{k}={go_quote(v)}" for k, v in labels.items())
    return "{" + ", ".join(pairs) + "}"
