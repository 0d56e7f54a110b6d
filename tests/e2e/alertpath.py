"""The end-to-end alert path, run once per session (conftest.alert_run) and recorded for the tests to judge.

What ships, run for real (hpcwatch.harness.shipped): real Slurm (4 slurmd), the cluster agent
(refresh 2 s) and the node agent as `hpcwatch serve` children; Prometheus on deploy/prometheus/
prometheus.yml and deploy/prometheus/rules/*.yml byte for byte, plus the SLO rules
`hpcwatch slo generate --windows` writes for tests/fixtures/e2e/hpc-catalogue.yaml (evaluated every
second) in its rules/ folder; targets only in file_sd files (cluster label, 1 s scrapes). Next to it
VictoriaMetrics scrapes the same prometheus.yml and targets, and vmalert evaluates the same rule
files. Each engine notifies its own Alertmanager on deploy/alertmanager/alertmanager.yml with only
the receivers' endpoints pointed here: pages arrive as PagerDuty events, tickets as webhooks.

The scenario: healthy jobs; user failures alone (must not page); two nodes drained inside a real
Slurm MAINT reservation (the node-availability SLO must not page nor burn budget), then the same
nodes drained once it is deleted (it must page), and resumed; nodes set down under running jobs
(must page); nodes resumed while user failures go on (the page must resolve). Every wait has a
deadline; what was (or was not) seen is recorded in `AlertRun`, the stack is torn down, and the
tests in test_alert_path.py, test_vmalert_path.py and test_maintenance.py assert on the record.
"""

from __future__ import annotations

import dataclasses
import os
import time
from collections.abc import Callable
from typing import Any

import pytest
from helpers import IN_CI

from hpcwatch import demo
from hpcwatch.harness.shipped import Notification, NotificationReceiver
from hpcwatch.harness.util import MissingDaemon, which

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DEPLOY = os.path.join(ROOT, "deploy")  # as `hpcwatch generate` wrote it (tests/unit checks it is fresh)
FIXTURES = os.path.join(ROOT, "tests", "fixtures", "e2e")
CATALOGUE = os.path.join(FIXTURES, "hpc-catalogue.yaml")
WINDOWS = demo.SHORT_WINDOWS  # the demo's: short windows of 1 m, longer than Alertmanager's group_wait
CLUSTER, QUEUE = "e2e", "debug"
SLO = f"job-success-{CLUSTER}-{QUEUE}"
ALERT = "JobSuccessSLO"
MIN_EVENTS = 5
NODE_ALERT = "NodeAvailabilitySLO"
NODE_SLO = f"node-availability-{CLUSTER}"

# Deadlines (not assertions on speed: they bound how long a broken path makes the suite wait). The
# shipped routing waits group_wait 30 s before a first page and regroups pages every minute.
PAGE_WITHIN = 120.0
RESOLVE_WITHIN = 240.0
SEEN_WITHIN = 60.0
MAINT_PAGE_WITHIN = 180.0
# How long the drained nodes stay inside the maintenance window: every page short window (1 m) full of
# the maintenance state, and longer than the page takes to reach on-call outside it with the same nodes
# (about 65 s, 30 of them the shipped group_wait; the alert itself fires within seconds).
MAINT_HOLD = 80.0

BINARIES = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "prometheus",
            "prometheus-alertmanager", "victoria-metrics", "vmalert")
HOW_TO = ("the end-to-end tests need root and the Debian 12 packages slurm-wlm slurmdbd mariadb-server munge "
          "prometheus prometheus-alertmanager victoria-metrics: run `make test` as root on Debian 12")


def unavailable(msg: str) -> None:
    """Skip with how to run it on a laptop; fail in CI, where everything must be there."""
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def require_e2e() -> None:
    if os.geteuid() != 0:
        unavailable(f"not root: {HOW_TO}")
    for name in BINARIES:
        try:
            which(name)
        except MissingDaemon as exc:
            unavailable(f"{exc} ({HOW_TO})")


def value(daemon, expr: str, at: float | None = None) -> float | None:
    """The single value of an instant query (sum of all series), None when it returns nothing."""
    result = daemon.query(expr, at)
    return sum(float(r["value"][1]) for r in result) if result else None


def wait_for(check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Poll until check() is truthy; its value, or None at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = check()
        if got or time.monotonic() > deadline:
            return got or None
        time.sleep(interval)


@dataclasses.dataclass
class Seen:
    """A notification and when it came, relative to the phase it answers."""

    note: Notification
    after: float       # seconds after the phase began (burn or recovery)

    @property
    def at(self) -> float:
        return self.note.at

    def page_alert(self) -> dict[str, Any]:
        """The one page alert of the SLO this notification carries (labels, annotations, status)."""
        (alert,) = [a for a in self.note.alerts if is_page(a)]
        return alert


def is_page(alert: dict[str, Any]) -> bool:
    return alert["labels"].get("alertname") == ALERT and alert["labels"].get("sloth_severity") == "page"


@dataclasses.dataclass
class AlertRun:
    """What the scenario saw, per rule engine ("prom" or "vm")."""

    timings: dict[str, float] = dataclasses.field(default_factory=dict)
    user_phase: dict[str, dict[str, Any]] = dataclasses.field(default_factory=dict)
    burn_began: float = 0.0
    recovery_began: float = 0.0
    page: dict[str, Seen | None] = dataclasses.field(default_factory=dict)
    resolved: dict[str, Seen | None] = dataclasses.field(default_factory=dict)
    vmalert_alerts: list[dict] = dataclasses.field(default_factory=list)
    at_resolve: dict[str, float | None] = dataclasses.field(default_factory=dict)
    notifications: list[Notification] = dataclasses.field(default_factory=list)
    diagnostics: dict[str, Any] = dataclasses.field(default_factory=dict)
    agents: dict[str, dict[str, float]] = dataclasses.field(default_factory=dict)
    rule_files: list[str] = dataclasses.field(default_factory=list)
    state_mode: int = 0
    maintenance: dict[str, Any] = dataclasses.field(default_factory=dict)

    def pages(self, engine: str, status: str | None = None) -> list[Notification]:
        """Every on-call notification of that engine's Alertmanager that carries the SLO's page with
        `status` (PagerDuty: a trigger event is firing, a resolve event resolved)."""
        return [n for n in self.notifications if n.path.startswith(f"/{engine}/oncall/")
                and any(is_page(a) for a in n.alerts) and (status is None or n.status == status)]

    def about_the_slo(self) -> list[Notification]:
        """Every notification, page or ticket, that carries the SLO's alert."""
        return [n for n in self.notifications
                if any(a["labels"].get("sloth_slo") == SLO for a in n.alerts)]


class Scenario:
    """Drives Slurm and records what Prometheus, vmalert and the webhooks did."""

    def __init__(self, slurm, prom, vm, vmalert, hook: NotificationReceiver) -> None:
        self.slurm, self.prom, self.vm, self.vmalert, self.hook = slurm, prom, vm, vmalert, hook
        self.run = AlertRun()
        self.engines = {"prom": prom, "vm": vm}

    def submit(self, n: int, wrap: str, *args: str) -> list[int]:
        return [self.slurm.sbatch(None, "--mem=32M", "--no-requeue", f"--partition={QUEUE}", *args, wrap=wrap)
                for _ in range(n)]

    def finish(self, jobs: list[int]) -> None:
        for j in jobs:
            self.slurm.wait_job(j, timeout=60)

    def counted(self, engine: str, outcome: str, n: int) -> bool:
        """The engine holds at least n finished jobs of this outcome (scraped through the agent)."""
        got = value(self.engines[engine], f'sum(hpc_scheduler_jobs_finished_total{{cluster="{CLUSTER}",'
                                          f'queue="{QUEUE}",outcome="{outcome}"}})')
        return got is not None and got >= n

    def sli(self, engine: str, record: str) -> float | None:
        return value(self.engines[engine], f'{record}{{sloth_slo="{SLO}"}}')

    def phase(self, name: str, began: float) -> None:
        self.run.timings[name] = round(time.monotonic() - began, 1)

    # -- phases --
    def scraping(self) -> None:
        """Prometheus starts scraping static targets a few seconds after it is ready (its discovery
        manager batches updates for 5 s); jobs that end before the first scrape would be no increase."""
        t = time.monotonic()
        for engine in self.engines:
            for job in ("hpcwatch-cluster", "hpcwatch-node"):
                wait_for(lambda e=engine, j=job: value(self.engines[e], f'up{{job="{j}"}}') == 1, SEEN_WITHIN)
        self.phase("both agents scraped, samples in both engines", t)

    def healthy(self) -> None:
        t = time.monotonic()
        jobs = self.submit(5, "true")
        self.finish(jobs)
        for engine in self.engines:
            wait_for(lambda e=engine: self.counted(e, "success", 5), SEEN_WITHIN)
        self.phase("healthy jobs seen by both engines", t)

    def user_failures_alone(self) -> None:
        """Six user failures after five successes: 0.55 of the window, far above the page's 0.144
        threshold were they counted as errors. Wait until both engines' SLI recordings cover them."""
        t, since = time.monotonic(), time.time()
        jobs = self.submit(6, "exit 3")
        self.finish(jobs)
        for engine in self.engines:
            seen = wait_for(lambda e=engine: self.user_window(e), SEEN_WITHIN)
            # A few more evaluations with the user failures inside every page window.
            time.sleep(3)
            span = max(5, int(time.time() - since) + 1)
            self.run.user_phase[engine] = {
                "seen": seen is not None, **(seen or self.user_window(engine, need=False)),
                "alerts_during": self.engines[engine].query(
                    f'count_over_time(ALERTS{{alertname="{ALERT}",sloth_slo="{SLO}"}}[{span}s])'),
                "pages_before_burn": len(self.refresh().pages(engine)),
            }
        self.phase("user failures alone, recorded by both engines", t)

    def user_window(self, engine: str, need: bool = True) -> dict[str, float | None] | None:
        """The page's short window as one engine sees it at one instant; with `need`, None until it holds
        the user failures (increase() extrapolates, hence 5 of 6 and 9 of 11)."""
        d, at = self.engines[engine], time.time() - 0.5
        got = {"user_failures_1m": value(d, f'sum(increase(hpc_scheduler_jobs_finished_total{{cluster="{CLUSTER}",'
                                            f'queue="{QUEUE}",cause="user"}}[1m]))', at),
               "events_5m": value(d, f'slo:sli_events:count5m{{sloth_slo="{SLO}"}}', at),
               "error_ratio_1m": value(d, f'slo:sli_error:ratio_rate1m{{sloth_slo="{SLO}"}}', at),
               "error_ratio_5m": value(d, f'slo:sli_error:ratio_rate5m{{sloth_slo="{SLO}"}}', at)}
        if need and not ((got["user_failures_1m"] or 0) >= 5 and (got["events_5m"] or 0) >= 9
                         and got["error_ratio_1m"] is not None):
            return None
        return got

    def refresh(self) -> AlertRun:
        """The record with every notification the receivers got so far."""
        self.run.notifications = self.hook.received()
        return self.run

    def first(self, engine: str, status: str, since: float) -> Seen | None:
        """The first on-call notification of the page with `status` from that engine since `since`."""
        for note in self.refresh().pages(engine, status):
            if note.at >= since:
                return Seen(note, round(note.at - since, 1))
        return None

    def system_failures(self) -> None:
        """Two jobs on each of three nodes, then the nodes go down under them: six NODE_FAIL."""
        victims_nodes = self.slurm.node_names[:3]
        jobs = []
        for node in victims_nodes:
            jobs += self.submit(2, "sleep 600", f"--nodelist={node}")
        for j in jobs:
            self.slurm.wait_job(j, states=("RUNNING",), timeout=60)
        t = time.monotonic()
        self.run.burn_began = time.time()
        self.slurm.run(["scontrol", "update", f"nodename={','.join(victims_nodes)}", "state=down", "reason=e2e"])
        self.finish(jobs)
        deadline = time.monotonic() + PAGE_WITHIN
        while time.monotonic() < deadline:
            for engine in set(self.engines) - set(self.run.page):
                got = self.first(engine, "firing", self.run.burn_began)
                if got:
                    self.run.page[engine] = got
                    if engine == "vm":
                        self.run.vmalert_alerts = self.vmalert.alerts()
            if len(self.run.page) == len(self.engines):
                break
            time.sleep(0.25)
        for engine in set(self.engines) - set(self.run.page):
            self.run.page[engine] = None
            self.run.diagnostics[f"{engine} at page deadline"] = self.snapshot(engine)
        self.phase("burn to page on-call (both engines)", t)
        self.victims = victims_nodes

    def recovery(self) -> None:
        """Resume the nodes; user failures and successes go on until the Prometheus page resolves."""
        t = time.monotonic()
        self.resume(self.victims)
        self.run.recovery_began = time.time()
        deadline = time.monotonic() + RESOLVE_WITHIN
        while time.monotonic() < deadline:
            self.submit(1, "exit 3")
            self.submit(1, "true")
            for engine in set(self.engines) - set(self.run.resolved):
                got = self.first(engine, "resolved", self.run.recovery_began)
                if got:
                    self.run.resolved[engine] = got
                    if engine == "prom":
                        self.run.at_resolve = {
                            "user_failures_1m": value(self.prom, 'sum(increase(hpc_scheduler_jobs_finished_total'
                                                                 f'{{cluster="{CLUSTER}",cause="user"}}[1m]))'),
                            "error_ratio_1m": self.sli("prom", "slo:sli_error:ratio_rate1m"),
                            "error_ratio_5m": self.sli("prom", "slo:sli_error:ratio_rate5m")}
            prom_done = self.run.resolved.get("prom")
            if len(self.run.resolved) == len(self.engines) or (prom_done and time.time() - prom_done.at > 30):
                break  # vmalert's resolve is reported when seen, waited for 30 s past Prometheus' only
            time.sleep(2)
        for engine in set(self.engines) - set(self.run.resolved):
            self.run.resolved[engine] = None
            self.run.diagnostics[f"{engine} at resolve deadline"] = self.snapshot(engine)
        # A few more seconds of notifications: nothing may page again after the resolve.
        time.sleep(3)
        self.refresh()
        self.phase("recovery to page resolved", t)

    def resume(self, nodes: list[str]) -> None:
        """Return the nodes to service and wait until Slurm says they are."""
        deadline = time.monotonic() + 60
        while True:
            self.slurm.run(["scontrol", "update", f"nodename={','.join(nodes)}", "state=resume"], check=False)
            states = self.slurm.run(["sinfo", "-h", "-N", "-n", ",".join(nodes), "-o", "%T"],
                                    check=False).stdout.split()
            if states and all(s.rstrip("*") in ("idle", "mixed", "allocated") for s in states):
                return
            if time.monotonic() > deadline:
                self.run.diagnostics[f"nodes not resumed: {nodes}"] = states
                return
            time.sleep(1)

    def snapshot(self, engine: str) -> dict[str, Any]:
        d = self.engines[engine]
        out: dict[str, Any] = {}
        for expr in ('sum by (outcome, cause) (hpc_scheduler_jobs_finished_total)',
                     f'{{__name__=~"slo:sli_error:ratio_rate.*|slo:sli_events:count.*",sloth_slo="{SLO}"}}',
                     f'ALERTS{{alertname="{ALERT}"}}'):
            try:
                out[expr] = [(r["metric"], r["value"][1]) for r in d.query(expr)]
            except Exception as exc:  # noqa: BLE001 - diagnostics only
                out[expr] = repr(exc)
        return out

    def maintenance(self) -> None:
        """Two nodes drained inside a MAINT reservation page nobody and burn no node-availability budget;
        the same nodes drained once the reservation is deleted page on-call (Prometheus' path)."""
        t, rec = time.monotonic(), self.run.maintenance
        c = f'cluster="{CLUSTER}"'
        # Before the system failures: no node has been unavailable yet, so every window starts clean.
        victims = ",".join(self.slurm.node_names[:2])
        began = time.time()
        self.slurm.run(["scontrol", "create", "reservation", "ReservationName=rack1_bios", f"Nodes={victims}",
                        "StartTime=now", "Duration=60", "Users=root", "Flags=MAINT,IGNORE_JOBS"])
        # Drained, not down (ReturnToService=2 would return a down node as its slurmd registers), for a
        # reason that does not say maintenance: the reservation alone must keep them out.
        self.slurm.run(["scontrol", "update", f"nodename={victims}", "state=drain", "reason=BIOS flash"])
        rec["seen"] = wait_for(
            lambda: value(self.prom, f'count(hpc_scheduler_maintenance{{{c},source="reservation",'
                                     f'reservation="rack1_bios"}})') == 2
            and value(self.prom, f'sum(hpc_scheduler_nodes{{{c},state="maint"}})') == 4, SEEN_WITHIN) is not None
        inside = time.time()
        sli = f'slo:sli_error:ratio_rate1m{{sloth_slo="{NODE_SLO}"}}'
        budget = f'slo:period_error_budget_remaining:ratio{{sloth_slo="{NODE_SLO}"}}'
        time.sleep(MAINT_HOLD)
        span = int(time.time() - inside)
        rec["hold_s"] = span
        rec["nodes_maint_min"] = value(self.prom, f'min_over_time(sum(hpc_scheduler_nodes{{{c},state="maint"}})'
                                                  f'[{span}s:1s])')
        rec["sli_max"] = value(self.prom, f"max_over_time({sli}[{span}s])")
        rec["sli_samples"] = value(self.prom, f"count_over_time({sli}[{span}s])")
        rec["alerts"] = value(self.prom, f'count_over_time(ALERTS{{alertname="{NODE_ALERT}"}}[{span}s])')
        rec["budget_min"] = value(self.prom, f"min_over_time({budget}[{span}s])")
        rec["pages_inside"] = self.node_pages(began, "/prom/")

        # The window closes early; the nodes are still drained.
        outside = time.time()
        self.slurm.run(["scontrol", "delete", "ReservationName=rack1_bios"])
        page = wait_for(lambda: self.node_pages(outside, "/prom/oncall/"), MAINT_PAGE_WITHIN)
        rec["page"] = page[0] if page else None
        rec["page_after"] = round(time.time() - outside, 1)
        rec["sli_outside"] = value(self.prom, sli)
        self.resume(self.slurm.node_names[:2])
        self.phase("maintenance: quiet inside the window, page outside", t)

    def node_pages(self, since: float, prefix: str = "") -> list[dict[str, Any]]:
        """Firing node-availability alerts any receiver (either engine's, page or ticket) got since `since`."""
        return [a for n in self.hook.received(prefix) if n.at >= since and n.status == "firing"
                for a in n.alerts if a["labels"].get("alertname") == NODE_ALERT]
