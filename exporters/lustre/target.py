"""Pure parsers for per-target Lustre server files: recovery_status and the kbytes*/files* counters."""

from __future__ import annotations

import dataclasses
import re

# States lprocfs_recovery_status_seq_show prints (lustre/obdclass/lprocfs_status_server.c); others are kept.
RECOVERY_STATES = ("COMPLETE", "RECOVERING", "INACTIVE", "WAITING", "WAITING_FOR_CLIENTS")

# `N/M` (COMPLETE: completed of expected; RECOVERING: connected of expected) or a bare `N`
# (RECOVERING prints completed_clients without a total).
_CLIENTS = re.compile(r"^\s*(\d+)\s*(?:/\s*(\d+)\s*)?$")


@dataclasses.dataclass(frozen=True)
class RecoveryStatus:
    """A target's recovery state and the client counts and times it prints in that state."""

    status: str
    completed_clients: int | None = None
    expected_clients: int | None = None
    connected_clients: int | None = None
    duration_seconds: float | None = None
    time_remaining_seconds: float | None = None


class RecoveryStatusError(ValueError):
    """recovery_status text without a `status:` line."""


def _clients(value: str | None) -> tuple[int | None, int | None]:
    m = _CLIENTS.match(value or "")
    if m is None:
        return None, None
    return int(m.group(1)), (int(m.group(2)) if m.group(2) is not None else None)


def _seconds(value: str | None) -> float | None:
    v = (value or "").strip()
    return float(v) if v.isdigit() else None


def parse_recovery_status(text: str) -> RecoveryStatus:
    """Parse recovery_status as lprocfs_recovery_status_seq_show prints it (2.10 to 2.16).

    COMPLETE: `recovery_duration: 28`, `completed_clients: 3/3` (completed of expected).
    RECOVERING: `time_remaining: 119`, `connected_clients: 3/7` (connected of expected) and a bare
    `completed_clients: 3`. INACTIVE, WAITING_FOR_CLIENTS and WAITING (DNE: `non-ready MDTs`) print
    no counts.
    """
    fields: dict[str, str] = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    status = fields.get("status", "")
    if not status or not re.fullmatch(r"[A-Z_]+", status):
        raise RecoveryStatusError(f"no recognisable status line in recovery_status ({status[:30]!r})")
    completed, expected = _clients(fields.get("completed_clients"))
    connected, of = _clients(fields.get("connected_clients"))
    if expected is None:
        expected = of
    return RecoveryStatus(status, completed, expected, connected, _seconds(fields.get("recovery_duration")),
                          _seconds(fields.get("time_remaining")))


def parse_counter_value(text: str | None) -> int | None:
    """The integer in a one-value file such as kbytestotal or filesfree; None when absent or not a number."""
    if text is None:
        return None
    tok = text.strip()
    return int(tok) if tok.isdigit() else None
