"""Pure parsers for per-target Lustre server files: recovery_status and the kbytes*/files* counters."""

from __future__ import annotations

import dataclasses
import re

# States printed by target_recovery_status (lustre/ldlm/ldlm_lib.c); others are kept as read.
RECOVERY_STATES = ("COMPLETE", "RECOVERING", "INACTIVE", "WAITING", "WAITING_FOR_CLIENTS")

_CLIENTS = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")


@dataclasses.dataclass(frozen=True)
class RecoveryStatus:
    """A target's recovery state and, where printed, how many clients completed / were expected."""

    status: str
    completed_clients: int | None = None
    expected_clients: int | None = None
    duration_seconds: float | None = None


class RecoveryStatusError(ValueError):
    """recovery_status text without a `status:` line."""


def parse_recovery_status(text: str) -> RecoveryStatus:
    """Parse `status: COMPLETE` / `completed_clients: 3/3` / `recovery_duration: 28` lines."""
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    status = fields.get("status", "")
    if not status or not re.fullmatch(r"[A-Z_]+", status):
        raise RecoveryStatusError(f"no recognisable status line in recovery_status ({status[:30]!r})")
    completed = expected = None
    m = _CLIENTS.match(fields.get("completed_clients", ""))
    if m:
        completed, expected = int(m.group(1)), int(m.group(2))
    duration = None
    dur = fields.get("recovery_duration", "")
    if dur.isdigit():
        duration = float(dur)
    return RecoveryStatus(status, completed, expected, duration)


def parse_counter_value(text: str | None) -> int | None:
    """The integer in a one-value file such as kbytestotal or filesfree; None when absent or not a number."""
    if text is None:
        return None
    tok = text.strip()
    return int(tok) if tok.isdigit() else None
