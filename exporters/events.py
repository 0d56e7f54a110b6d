"""In-process notifications between collectors and outputs: "a job finished and was counted".

The scheduler collectors publish each finished job exactly when their watermark counts it for
the first time; subscribers (OpenTelemetry traces) get each job once. A subscriber that raises
is logged and never disturbs the publisher.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("hpcwatch.events")

_lock = threading.Lock()
_finished_job_subscribers: list[Callable[[Any], None]] = []


def subscribe_finished_jobs(callback: Callable[[Any], None]) -> Callable[[], None]:
    """Register a callback; returns a function that unsubscribes it."""
    with _lock:
        _finished_job_subscribers.append(callback)

    def unsubscribe() -> None:
        with _lock:
            if callback in _finished_job_subscribers:
                _finished_job_subscribers.remove(callback)

    return unsubscribe


def publish_finished_job(job: Any) -> None:
    with _lock:
        subscribers = list(_finished_job_subscribers)
    for cb in subscribers:
        try:
            cb(job)
        except Exception as exc:  # noqa: BLE001 - an output's bug must not break counting
            log.warning("finished-job subscriber %r failed: %s", cb, exc)
