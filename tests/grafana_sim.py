"""What Grafana 10 does to a Prometheus panel query before Prometheus sees it, for the dashboard tests.

- Template variables: each query variable's values come from its own query on the Prometheus under
  test (`label_values(selector, label)` is `/api/v1/label/<label>/values?match[]=selector` over the
  dashboard's time range), with the variables before it already chosen; a value is formatted as the
  Prometheus data source formats it: escaped for a regex when the variable is multi-value or has
  All (several values become `(a|b)`), otherwise only backslashes and quotes are escaped.
- `$__interval` = the dashboard's range / max data points, rounded on Grafana's ladder and never
  below the data source's scrape interval (`timeInterval`); `$__rate_interval` = max($__interval +
  scrape interval, 4 x scrape interval); `$__range` = the range in seconds. A range query steps by
  $__interval.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any

# Grafana's interval ladder (ms): an interval below the bound rounds to the value.
_LADDER = ((10, 1), (15, 10), (35, 20), (75, 50), (150, 100), (350, 200), (750, 500), (1500, 1000),
           (3500, 2000), (7500, 5000), (12500, 10000), (17500, 15000), (25000, 20000), (45000, 30000),
           (90000, 60000), (210000, 120000), (450000, 300000), (750000, 600000), (1050000, 900000),
           (1500000, 1200000), (2700000, 1800000), (5400000, 3600000), (9000000, 7200000),
           (16200000, 10800000), (32400000, 21600000), (86400000, 43200000), (604800000, 86400000),
           (1814400000, 604800000), (3628800000, 2592000000))
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, "y": 31536000}
MAX_DATA_POINTS = 1000  # about the pixel width of a half-screen panel, what Grafana asks for by default
_VAR = re.compile(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)|\[\[(\w+)\]\]")
_LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)")


def seconds(text: str) -> int:
    """`30s`, `5m`, `6h`, `now-6h` -> seconds."""
    m = re.fullmatch(r"(?:now-)?(\d+)([smhdwy])", text)
    if not m:
        raise ValueError(f"not a Grafana duration: {text!r}")
    return int(m.group(1)) * _UNITS[m.group(2)]


def round_interval(ms: float) -> int:
    for bound, value in _LADDER:
        if ms < bound:
            return value
    return 31536000000


@dataclasses.dataclass(frozen=True)
class TimeMacros:
    """$__interval, $__rate_interval and $__range for one dashboard's default time range."""

    range_s: int
    interval_s: int
    rate_interval_s: int

    @classmethod
    def for_range(cls, time_from: str, scrape_interval: str) -> TimeMacros:
        range_s, scrape_s = seconds(time_from), seconds(scrape_interval)
        interval_s = max(round_interval(range_s * 1000 / MAX_DATA_POINTS) // 1000, scrape_s)
        return cls(range_s, interval_s, max(interval_s + scrape_s, 4 * scrape_s))

    def expand(self, expr: str) -> str:
        return (expr.replace("$__rate_interval", f"{self.rate_interval_s}s")
                .replace("$__interval", f"{self.interval_s}s").replace("$__range", f"{self.range_s}s"))


def regular_escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace("'", "\\\\'")


def regex_escape(value: str) -> str:
    value = value.replace("\\", "\\\\\\\\")
    return re.sub(r"[$^*{}\[\]'+?.()|]", lambda m: "\\\\" + m.group(0), value)


def format_value(variable: Mapping[str, Any], values: Sequence[str]) -> str:
    """One selection of a variable as Grafana writes it into a Prometheus query."""
    if not variable.get("multi") and not variable.get("includeAll"):
        return regular_escape(values[0])
    escaped = [regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(expr: str, chosen: Mapping[str, str]) -> str:
    """Replace `$var`, `${var}` and `[[var]]` by their formatted selections (Grafana's own `$__` macros stay)."""
    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(3)
        return chosen[name] if name in chosen else m.group(0)
    return _VAR.sub(sub, expr)


@dataclasses.dataclass(frozen=True)
class Selection:
    """One choice of every variable of a dashboard: {name: formatted value} and a readable label."""

    formatted: Mapping[str, str]
    label: str


def selections(dashboard: Mapping[str, Any], label_values: Callable[[str, str], list[str]],
               empty: list[str]) -> Iterator[Selection]:
    """Every combination of real values, each variable queried with the ones before it chosen: each
    value alone, and for a multi-value variable with several values also all of them at once.
    A variable whose query returns nothing is recorded in `empty` (and yields no selection)."""
    variables = [v for v in dashboard["templating"]["list"] if v["type"] == "query"]

    def walk(i: int, chosen: dict[str, str], label: list[str]) -> Iterator[Selection]:
        if i == len(variables):
            yield Selection(dict(chosen), ", ".join(label) or "(no variables)")
            return
        v = variables[i]
        m = _LABEL_VALUES.fullmatch(v["query"] if isinstance(v["query"], str) else v["query"]["query"])
        if not m:
            raise ValueError(f"{dashboard['uid']}: variable {v['name']} is not label_values(): {v['query']!r}")
        values = label_values(interpolate(m.group(1), chosen), m.group(2))
        if not values:
            empty.append(f"{dashboard['uid']}: variable {v['name']} lists nothing with {', '.join(label) or '-'}")
            return
        picks = [[x] for x in values] + ([values] if v.get("multi") and len(values) > 1 else [])
        for pick in picks:
            yield from walk(i + 1, {**chosen, v["name"]: format_value(v, pick)},
                            [*label, f"{v['name']}={'|'.join(pick)}"])

    yield from walk(0, {}, [])
