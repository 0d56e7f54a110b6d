"""Pure parser for Lustre's `health_check` (all OBD devices of this host, client or server).

The file has had three shapes:
- sysfs `/sys/fs/lustre/health_check` (2.10+): one word, `healthy` or `NOT HEALTHY`; 2.12+ prints
  `LBUG` alone after an assertion failure (2.10 prints `NOT HEALTHY` then).
- procfs `/proc/fs/lustre/health_check` (before 2.10): `LBUG` and `device <name> reported unhealthy`
  lines, then the verdict.
- debugfs `/sys/kernel/debug/lustre/health_check` (2.15+): only the `device ... reported unhealthy`
  lines, empty when every device is well.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Callable

ErrorCallback = Callable[[str], None]

_DEVICE = re.compile(r"^device (?P<name>\S+) reported unhealthy$")


@dataclasses.dataclass(frozen=True)
class HealthCheck:
    """What health_check said: the verdict (None where the file prints none), LBUG, unhealthy devices."""

    healthy: bool | None
    lbug: bool
    unhealthy_devices: tuple[str, ...]


def parse_health_check(text: str, on_error: ErrorCallback | None = None) -> HealthCheck:
    """Any of the three shapes; lines that fit none are reported and skipped."""
    verdict: bool | None = None
    lbug = False
    devices: list[str] = []
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            continue
        if line == "healthy":
            verdict = True
        elif line == "NOT HEALTHY":
            verdict = False
        elif line == "LBUG":
            lbug = True
        elif (m := _DEVICE.match(line)) is not None:
            devices.append(m.group("name"))
        elif on_error is not None:
            on_error(f"unreadable health_check line: {line[:80]!r}")
    if lbug or devices:
        verdict = False
    return HealthCheck(verdict, lbug, tuple(dict.fromkeys(devices)))
