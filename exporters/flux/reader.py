"""The Flux reader: the `flux` commands the adapter runs, with the pinned environment and a timeout.

Per refresh: `flux jobs` (live queue and the accounting window), the scheduler's resource sets
(`flux resource R -s all|allocated|down`), node status (`flux resource status`) and the queue table
(`flux config get`); `flux job eventlog` only for a job seen held, once, when its hold ends.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

from hpcwatch.exporters.command import run_command

# flux-resource(1) status fields: state without the offline '*', online/offline, the ranks.
STATUS_FORMAT = "{statex}|{status}|{ranks}"


@dataclasses.dataclass(frozen=True)
class ResourceTexts:
    """What the resource commands printed in one refresh (parsed by exporters.flux.resources)."""

    all: str
    allocated: str
    down: str
    status: str
    queues: str


class FluxCommands:
    """Runs `flux` subcommands against one instance (FLUX_URI in `env`, or the enclosing one)."""

    def __init__(self, flux: str, env: Mapping[str, str] | None = None, timeout: float = 20.0) -> None:
        self.flux = flux
        self.env = dict(env or {})
        self.timeout = timeout
        self.calls: dict[str, int] = {}

    def run(self, *args: str) -> str:
        key = " ".join(args[:2])
        self.calls[key] = self.calls.get(key, 0) + 1
        return run_command([self.flux, *args], timeout=self.timeout, env=self.env)

    def jobs(self, since_seconds: int) -> str:
        """Every active job, and every job that became inactive in the last `since_seconds`."""
        return self.run("jobs", "-A", "--json", "--count=0", f"--since=-{since_seconds}s")

    def resources(self) -> ResourceTexts:
        return ResourceTexts(
            all=self.run("resource", "R", "-s", "all"),
            allocated=self.run("resource", "R", "-s", "allocated"),
            down=self.run("resource", "R", "-s", "down"),
            status=self.run("resource", "status", "--no-header", "-s", "all", "-o", STATUS_FORMAT),
            queues=self.run("config", "get", "--default={}", "queues"),
        )

    def eventlog(self, jobid: str) -> str:
        return self.run("job", "eventlog", "--format=json", jobid)
