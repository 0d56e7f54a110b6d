"""Process-wide self-metrics shared by collectors: parse errors per source (a counter that only grows)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily

_lock = threading.Lock()
_parse_errors: dict[str, int] = {}


def record_parse_error(source: str, count: int = 1) -> None:
    """Count records a parser skipped for `source` (e.g. "lustre_job_stats")."""
    if count <= 0:
        return
    with _lock:
        _parse_errors[source] = _parse_errors.get(source, 0) + count


def parse_errors(source: str) -> int:
    with _lock:
        return _parse_errors.get(source, 0)


def collect_parse_errors() -> Iterator[CounterMetricFamily]:
    with _lock:
        items = sorted(_parse_errors.items())
    fam = CounterMetricFamily(
        "hpcwatch_parse_errors",
        "Records a parser could not read and skipped, by source.",
        labels=["source"],
    )
    for source, n in items:
        fam.add_metric([source], n)
    yield fam
