"""Pure parsers for LNet's global counters, in both places Lustre prints them.

- The stats file (`/proc/sys/lnet/stats` in 2.10, `/sys/kernel/debug/lnet/stats` from 2.12), one line of
  11 numbers in the same order in every release (lnet/lnet/router_proc.c `proc_lnet_stats`):
  `msgs_alloc msgs_max errors send_count recv_count route_count drop_count send_length recv_length
  route_length drop_length`.
- `lnetctl stats show` (YAML under `statistics:`): the same counters, and from 2.12 the LNet health
  counters (`rst_alloc`, `resend_count`, `response_timeout_count`, `local_*_count`, `remote_*_count`,
  `network_timeout_count`).
"""

from __future__ import annotations

import re
from collections.abc import Callable

ErrorCallback = Callable[[str], None]

STATS_FIELDS = ("msgs_alloc", "msgs_max", "errors", "send_count", "recv_count", "route_count", "drop_count",
                "send_length", "recv_length", "route_length", "drop_length")
_YAML_LINE = re.compile(r"^\s+(?P<key>[a-z_]+):\s+(?P<value>\d+)\s*$")


def parse_lnet_stats(text: str) -> dict[str, int] | None:
    """{counter: value} from the stats file's one line; None when it is not 11 non-negative integers."""
    tokens = text.split()
    if len(tokens) != len(STATS_FIELDS) or not all(t.isdigit() and t.isascii() for t in tokens):
        return None
    return dict(zip(STATS_FIELDS, map(int, tokens)))


def parse_lnetctl_stats(text: str, on_error: ErrorCallback | None = None) -> dict[str, int] | None:
    """{counter: value} under `statistics:` of `lnetctl stats show`; None when there is no such block."""
    out: dict[str, int] = {}
    inside = False
    for raw in text.splitlines():
        if not raw.strip():
            continue
        if not raw[0].isspace():
            inside = raw.strip() == "statistics:"
            continue
        if not inside:
            continue
        m = _YAML_LINE.match(raw)
        if m is None:
            if on_error is not None:
                on_error(f"unreadable lnetctl stats line: {raw.strip()[:80]!r}")
            continue
        out[m.group("key")] = int(m.group("value"))
    return out or None
