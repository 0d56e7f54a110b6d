"""OpenSLO time: duration shorthands (`1M`, `1w`, `28d`) and calendar-aligned periods as PromQL.

Prometheus has no time zones or calendars, so a calendar period becomes an index that grows by one at
each boundary, computed from `time()`: the zone's UTC offset is its standard offset plus one
`(time() >= bool T)` step per daylight-saving transition (read from the IANA database for 30 years
from the calendar's start), and month-based periods count months with PromQL's `year()`/`month()`.
"""

from __future__ import annotations

import datetime as dt
import re
import zoneinfo

from hpcwatch.slo.goformat import go_float
from hpcwatch.slo.model import Calendar

DAY = 86400
# OpenSLO leaves month, quarter and year lengths to implementations: nominal lengths for a rolling
# window and for the burn-rate maths of a calendar one; calendars themselves follow the calendar.
_FIXED = {"s": 1, "m": 60, "h": 3600, "d": DAY, "w": 7 * DAY}
_NOMINAL = {"M": 30 * DAY, "Q": 90 * DAY, "Y": 365 * DAY}
_MONTHS = {"M": 1, "Q": 3, "Y": 12}
_LONGEST = {"M": 31 * DAY, "Q": 92 * DAY, "Y": 366 * DAY}
_SHORTHAND = re.compile(r"^([1-9][0-9]*)([smhdwMQY])$")
HORIZON_YEARS = 30


def parse_shorthand(text: object) -> tuple[int, str]:
    """'1M' -> (1, 'M'); ValueError unless it is OpenSLO's `<positive int><m|h|d|w|M|Q|Y>`."""
    m = _SHORTHAND.match(text.strip()) if isinstance(text, str) else None
    if not m:
        raise ValueError(f"{text!r} is not an OpenSLO duration such as 5m, 1h, 28d, 1w, 1M, 1Q or 1Y")
    return int(m.group(1)), m.group(2)


def nominal_seconds(n: int, unit: str) -> int:
    """Seconds of a rolling window: exact for s..w, 30/90/365 days per month/quarter/year."""
    return n * (_FIXED.get(unit) or _NOMINAL[unit])


def _offset_expr(zone: zoneinfo.ZoneInfo, start: dt.datetime) -> str:
    """The zone's UTC offset at `time()`, in seconds, as a PromQL scalar expression."""
    first = start.replace(tzinfo=zone)
    parts = [go_float(first.utcoffset().total_seconds())]
    prev = first.utcoffset()
    # Walk hour by hour around each possible transition would be slow; step a day, then bisect.
    t = int(first.timestamp())
    end = t + HORIZON_YEARS * 366 * DAY
    while t < end:
        nxt = t + DAY
        if dt.datetime.fromtimestamp(nxt, zone).utcoffset() != prev:
            lo, hi = t, nxt
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if dt.datetime.fromtimestamp(mid, zone).utcoffset() == prev:
                    lo = mid
                else:
                    hi = mid
            new = dt.datetime.fromtimestamp(hi, zone).utcoffset()
            delta = int((new - prev).total_seconds())
            parts.append(f"{'+' if delta > 0 else '-'} {abs(delta)} * (time() >= bool {hi})")
            prev = new
        t = nxt
    return " ".join(parts)


def calendar(n: int, unit: str, start_time: str, time_zone: str) -> Calendar:
    """A calendar period of `n` `unit`s starting at `start_time` (local, `YYYY-MM-DD HH:MM:SS`) in
    `time_zone`; ValueError for what cannot be represented."""
    try:
        zone = zoneinfo.ZoneInfo(time_zone)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"{time_zone!r} is not an IANA time zone such as UTC or America/New_York") from None
    try:
        start = dt.datetime.strptime(str(start_time).strip(), "%Y-%m-%d %H:%M:%S")
    except ValueError:
        raise ValueError(f"{start_time!r} is not a start time like 2022-01-01 12:00:00") from None
    offset = _offset_expr(zone, start)
    local = f"time() + ({offset})"
    if unit in _FIXED:
        length = n * _FIXED[unit]
        anchor = int(start.replace(tzinfo=dt.UTC).timestamp())
        since = f"({local} - {anchor})"
        return Calendar(f"{n}{unit}", f"floor(vector({since} / {length}))",
                        f"vector(({since} % {length}) / {length})", length)
    if start.day > 28:
        raise ValueError(f"a {n}{unit} calendar starting on day {start.day}: months do not all have that "
                         "day, so the period boundary would move; start on day 1 to 28")
    shift = (start.day - 1) * DAY + start.hour * 3600 + start.minute * 60 + start.second
    shifted = f"vector({local} - {shift})"
    months = f"(year({shifted}) - {start.year}) * 12 + month({shifted}) - {start.month}"
    per = n * _MONTHS[unit]
    # Whole months gone in this period plus the fraction of the current month (its own length).
    into_month = (f"((day_of_month({shifted}) - 1) * 86400 + hour({shifted}) * 3600 + minute({shifted}) * 60)"
                  f" / (days_in_month({shifted}) * 86400)")
    elapsed = f"((({months}) % {per}) + {into_month}) / {per}"
    return Calendar(f"{n}{unit}", f"floor(({months}) / {per})", elapsed, n * _LONGEST[unit])
