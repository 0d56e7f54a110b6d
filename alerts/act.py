"""`hpcwatch act`'s policy: from Alertmanager notifications about a job wasting GPUs to a logged decision,
and, when enabled, `scancel`.

A job is cancelled only when all hold: act is enabled (dry run by default); the alert is one act is
given (the GPU waste alerts); the same alert episode, identified by Alertmanager's fingerprint and its
`startsAt`, was notified firing twice, at least `confirm_after` apart (a job that recovered has
resolved in between, or fires again with a new startsAt, and starts over); Slurm says the job is
RUNNING, in an allow-listed partition, owned by the user the alert names. Every notification ends in
one decision per alert, written as a JSON line.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import os
import re
import sys
import time
from collections.abc import Callable, Iterable
from typing import Any

from hpcwatch.exporters.atomicfile import write_atomically
from hpcwatch.exporters.command import CommandError, run_command

log = logging.getLogger("hpcwatch.act")

JOBID = re.compile(r"^\d{1,20}(?:_\d{1,10})?$")
SEP = "\x1f"   # squeue field separator: no user, account or partition name holds it

# Every decision act can take, and what it means (the `decision` field of each log line).
DECISIONS = {
    "ignored": "not an alert act handles (name, cluster or labels)",
    "first_warning": "first notification of this alert episode: the job is warned, nothing else",
    "waiting": "notified again before confirm_after has passed since the first warning",
    "recovered": "the alert resolved: the job's warnings start over",
    "not_cancelled": "confirmed, but a safety check failed (job state, partition, owner)",
    "would_cancel": "confirmed and every check passed; dry run, so the job was left running",
    "cancelled": "confirmed, every check passed, and scancel succeeded",
    "cancel_failed": "confirmed, every check passed, but scancel failed",
    "already_cancelled": "this episode already led to a cancel",
}


@dataclasses.dataclass(frozen=True)
class Policy:
    enabled: bool = False
    partitions: frozenset[str] = frozenset()
    alerts: frozenset[str] = frozenset({"HpcJobGpuIdle", "HpcJobGpuUnused"})
    confirm_after_s: float = 2 * 3600
    cluster: str | None = None


@dataclasses.dataclass(frozen=True)
class SlurmJob:
    jobid: str
    state: str
    partition: str
    user: str
    account: str


class Slurm:
    """squeue and scancel of one cluster (SLURM_CONF from the environment), argument lists and timeouts."""

    def __init__(self, bin_dir: str = "", timeout: float = 20.0) -> None:
        self.bin_dir = bin_dir
        self.timeout = timeout

    def _bin(self, name: str) -> str:
        return os.path.join(self.bin_dir, name) if self.bin_dir else name

    def job(self, jobid: str) -> SlurmJob | None:
        """The job as squeue sees it now; None when squeue no longer knows it."""
        fmt = SEP.join(("%i", "%T", "%P", "%u", "%a"))
        try:
            out = run_command([self._bin("squeue"), "-h", "-j", jobid, "-o", fmt], self.timeout, ok_codes=(0, 1))
        except CommandError as exc:
            raise CommandError(f"squeue -j {jobid}: {exc}") from None
        for line in out.splitlines():
            parts = line.split(SEP)
            if len(parts) == 5 and parts[0].strip() == jobid:
                return SlurmJob(*(p.strip() for p in parts))
        return None

    def cancel(self, jobid: str) -> None:
        run_command([self._bin("scancel"), jobid], self.timeout)


@dataclasses.dataclass
class Episode:
    """One firing episode of one alert, as act has seen it."""

    starts_at: str
    first_warning: float
    last_seen: float
    warnings: int = 1
    cancelled: bool = False


class Ledger:
    """Episodes by Alertmanager fingerprint, kept in a JSON file so a restart does not forget a first warning."""

    def __init__(self, path: str | None) -> None:
        self.path = path
        self.episodes: dict[str, Episode] = {}
        if path and os.path.exists(path):
            try:
                with open(path, encoding="utf-8") as fh:
                    raw = json.load(fh)
                self.episodes = {k: Episode(**v) for k, v in raw.get("episodes", {}).items()}
            except (OSError, ValueError, TypeError) as exc:
                log.warning("%s: unreadable state (%s); starting with no warnings on record", path, exc)

    def save(self) -> None:
        if not self.path:
            return
        body = json.dumps({"episodes": {k: dataclasses.asdict(v) for k, v in self.episodes.items()}}).encode()
        write_atomically(self.path, lambda fh: fh.write(body))

    def prune(self, now: float, keep_s: float) -> None:
        """Forget episodes not notified for keep_s (their resolve was lost, or the alert stopped)."""
        for key in [k for k, e in self.episodes.items() if now - e.last_seen > keep_s]:
            del self.episodes[key]


@dataclasses.dataclass
class Decision:
    decision: str
    reason: str
    alert: dict[str, Any]
    at: float
    job: SlurmJob | None = None
    episode: Episode | None = None
    dry_run: bool = True
    report: str | None = None

    def record(self) -> dict[str, Any]:
        labels = self.alert.get("labels") or {}
        out: dict[str, Any] = {
            "ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.at)), "decision": self.decision,
            "reason": self.reason, "dry_run": self.dry_run, "alertname": labels.get("alertname", ""),
            "cluster": labels.get("cluster", ""), "jobid": labels.get("jobid", ""), "user": labels.get("user", ""),
            "account": labels.get("account", ""), "fingerprint": self.alert.get("fingerprint", ""),
            "starts_at": self.alert.get("startsAt", ""),
        }
        if self.episode:
            out["first_warning"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.episode.first_warning))
            out["warnings"] = self.episode.warnings
        if self.job:
            out.update(slurm_state=self.job.state, partition=self.job.partition, slurm_user=self.job.user)
        if self.report is not None:
            out["job_report"] = self.report
        return out


class Actor:
    """Turns each alert of a notification into a Decision, and cancels when the policy says so."""

    def __init__(self, policy: Policy, slurm: Slurm, ledger: Ledger,
                 report: Callable[[str, str], str | None] | None = None, clock: Callable[[], float] = time.time):
        self.policy = policy
        self.slurm = slurm
        self.ledger = ledger
        self.report = report
        self.clock = clock

    def handle(self, payload: dict[str, Any]) -> list[Decision]:
        """One Alertmanager webhook body (version 4) -> a decision per alert in it."""
        alerts = payload.get("alerts")
        if not isinstance(alerts, list):
            raise ValueError("expected an Alertmanager webhook body with an `alerts` list")
        now = self.clock()
        out = [self._one(a if isinstance(a, dict) else {}, now) for a in alerts]
        self.ledger.prune(now, keep_s=max(4 * self.policy.confirm_after_s, 86400))
        self.ledger.save()
        return out

    def _one(self, alert: dict[str, Any], now: float) -> Decision:
        labels = alert.get("labels") or {}
        dry = not self.policy.enabled

        def decide(kind: str, reason: str, **kw: Any) -> Decision:
            return Decision(kind, reason, alert, now, dry_run=dry, **kw)

        why = self._ignored(labels, alert)
        if why:
            return decide("ignored", why)
        key = str(alert["fingerprint"])
        starts = str(alert.get("startsAt", ""))
        if alert.get("status") == "resolved":
            self.ledger.episodes.pop(key, None)
            return decide("recovered", "the alert resolved; a new episode needs two warnings again")
        ep = self.ledger.episodes.get(key)
        if ep is None or ep.starts_at != starts:
            # New, or the same alert firing again after it recovered (its resolve may have been lost).
            why = ("first notification of this episode" if ep is None else
                   f"fired again since {starts} after recovering: the warnings start over")
            ep = self.ledger.episodes[key] = Episode(starts, now, now)
            return decide("first_warning", why, episode=ep, report=self._report(labels))
        ep.warnings += 1
        ep.last_seen = now
        if ep.cancelled:
            return decide("already_cancelled", "this episode already led to a cancel", episode=ep)
        due = ep.first_warning + self.policy.confirm_after_s
        if now < due:
            return decide("waiting", f"second warning counts from {time.strftime('%H:%M:%SZ', time.gmtime(due))} "
                          f"(confirm_after {self.policy.confirm_after_s:g}s)", episode=ep)
        return self._confirmed(labels, ep, decide)

    def _ignored(self, labels: dict[str, Any], alert: dict[str, Any]) -> str:
        name = labels.get("alertname", "")
        if name not in self.policy.alerts:
            return f"alert {name!r} is not one act handles ({', '.join(sorted(self.policy.alerts))})"
        if self.policy.cluster and labels.get("cluster") != self.policy.cluster:
            return f"cluster {labels.get('cluster')!r} is not this act's ({self.policy.cluster})"
        if not JOBID.match(str(labels.get("jobid", ""))):
            return f"jobid label {labels.get('jobid')!r} is not a Slurm job id"
        if not alert.get("fingerprint"):
            return "no fingerprint: not an Alertmanager webhook alert"
        return ""

    def _confirmed(self, labels: dict[str, Any], ep: Episode, decide) -> Decision:
        jobid = str(labels["jobid"])
        try:
            job = self.slurm.job(jobid)
        except CommandError as exc:
            return decide("not_cancelled", f"cannot ask Slurm: {exc}", episode=ep)
        if job is None:
            return decide("not_cancelled", "Slurm no longer knows the job (it ended)", episode=ep)
        if job.state != "RUNNING":
            return decide("not_cancelled", f"job is {job.state}, not RUNNING", job=job, episode=ep)
        if job.partition not in self.policy.partitions:
            allowed = ", ".join(sorted(self.policy.partitions)) or "none"
            return decide("not_cancelled", f"partition {job.partition} is not in the allow-list ({allowed})",
                          job=job, episode=ep)
        if labels.get("user") and labels["user"] != job.user:
            return decide("not_cancelled", f"the alert names user {labels['user']}, Slurm says {job.user}",
                          job=job, episode=ep)
        reason = (f"warned {ep.warnings} times since "
                  f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(ep.first_warning))}; running in {job.partition}")
        if not self.policy.enabled:
            return decide("would_cancel", reason + "; dry run (start act with --enable to cancel)", job=job,
                          episode=ep)
        try:
            self.slurm.cancel(jobid)
        except CommandError as exc:
            return decide("cancel_failed", f"{reason}; scancel: {exc}", job=job, episode=ep)
        ep.cancelled = True
        return decide("cancelled", reason, job=job, episode=ep, report=self._report(labels))

    def _report(self, labels: dict[str, Any]) -> str | None:
        return self.report(str(labels.get("jobid")), str(labels.get("cluster", ""))) if self.report else None


def write_decisions(decisions: Iterable[Decision], path: str | None) -> None:
    """Each decision as one JSON line, appended to `path` (stdout without one), and a summary in the log."""
    decisions = list(decisions)
    text = "".join(json.dumps(d.record()) + "\n" for d in decisions)
    for d in decisions:
        log.info("decision %s job %s: %s", d.decision, (d.alert.get("labels") or {}).get("jobid", "?"), d.reason)
    if not text:
        return
    if path:
        with open(path, "a", encoding="utf-8") as fh:
            fh.write(text)
    else:
        sys.stdout.write(text)
        sys.stdout.flush()
