"""/proc/vmstat: the fields node_exporter exports by default (OOM kills, paging, swapping, faults)."""

from __future__ import annotations

import re

# node_exporter's --collector.vmstat.fields default.
DEFAULT_FIELDS = r"^(oom_kill|pgpg|pswp|pg.*fault).*"


def parse_vmstat(text: str, wanted: re.Pattern[str]) -> tuple[dict[str, int], int]:
    """({field: value} for fields matching `wanted`, number of matching lines that were unreadable)."""
    out: dict[str, int] = {}
    errors = 0
    for line in text.splitlines():
        key, _, val = line.partition(" ")
        if key and wanted.match(key):
            try:
                out[key] = int(val)
            except ValueError:
                errors += 1
    return out, errors
