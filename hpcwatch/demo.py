"""`hpcwatch demo`: the whole stack on one machine (root, Debian 12), and the pieces the e2e tests share.

Slurm with accounting (hpcwatch.harness), the cluster and node agents (`hpcwatch serve` children),
and Prometheus and Alertmanager on the configs hpcwatch ships (hpcwatch.harness.shipped): the
generated prometheus.yml and rules byte for byte, targets in file_sd files, the generated routing
with its PagerDuty and webhook receivers pointed at this process, which prints each notification.
A job mix runs (successes, user failures, jobs held pending), then a node fails under running jobs:
the job-success SLO pages on-call through Alertmanager, and the page resolves once the failures
leave the alert windows. Ctrl-C or SIGTERM tears it all down; `--duration` does so after that long.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import os
import random
import shutil
import signal
import sys
import tempfile
import time
from collections.abc import Callable, Sequence

from hpcwatch.harness.shipped import Notification, Target
from hpcwatch.harness.util import (
    Daemon,
    DaemonError,
    MissingDaemon,
    Process,
    free_port,
    http_get,
    wait_http,
    which,
)
from hpcwatch.metric_names import CLUSTER_AGENT_JOB, NODE_AGENT_JOB

# A 1-day SLO period with alert windows of minutes, so a burn pages while you watch and the page
# resolves a minute after the failures stop. Every short window is 1 m or more: the shipped
# Alertmanager config waits 30 s (group_wait) before the first notification of a group, and an alert
# that fired for less than that would never be sent. Burn-rate factor = errorBudgetPercent% x 24h /
# longWindow = 1.44 for all four. The end-to-end tests use the same windows.
SHORT_WINDOWS = """\
apiVersion: sloth.slok.dev/v1
kind: AlertWindows
spec:
  sloPeriod: 1d
  page:
    quick: {errorBudgetPercent: 0.5, shortWindow: 1m, longWindow: 5m}
    slow: {errorBudgetPercent: 1, shortWindow: 1m, longWindow: 10m}
  ticket:
    quick: {errorBudgetPercent: 2, shortWindow: 2m, longWindow: 20m}
    slow: {errorBudgetPercent: 5, shortWindow: 5m, longWindow: 50m}
"""

# The demo cluster's catalogue: the harness has partitions `debug` (default) and `gpu`. Job success at
# 99% (budget 1%): a node failing under two of the ~20 jobs a minute the mix finishes burns past the
# page threshold of 1.44 x 1% in both its 1 m and 5 m windows. Rules are evaluated every 2 s (the
# shipped prometheus.yml evaluates its own every 30 s).
DEMO_CLUSTER = "demo"
DEMO_CATALOGUE = """\
apiVersion: hpcwatch/v1
kind: SLOCatalogue
metadata: {name: demo}
spec:
  service: hpc
  clusters: [demo]
  period: 1d
  interval: {all: 2s}
  min_events: 5
  alerting:
    page_alert: {labels: {severity: critical, component: jobs}}
    ticket_alert: {labels: {severity: warning, component: jobs}}
  slos:
    - sli: job-success
      objective: 99
      queues: [debug, gpu]
    - sli: queue-wait
      objective: 90
      threshold: 5m
      queues: [debug]
      include_pending: true
    - sli: node-availability
      objective: 75
    - sli: scheduler-availability
      objective: 99
      min_events: 0
"""

NEEDS = ("munged", "mariadbd", "slurmdbd", "slurmctld", "slurmd", "sbatch", "prometheus",
         "prometheus-alertmanager")


def cli(*argv: str) -> None:
    """Run one `hpcwatch` command in this process (what a user would type); SystemExit on failure."""
    from hpcwatch.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        rc = main(list(argv))
    if rc:
        raise SystemExit(f"hpcwatch {' '.join(argv)} failed ({rc}): {err.getvalue().strip()}")


class Agent(Daemon):
    """`hpcwatch serve --agent <agent>` as a child on a free loopback port, logging to its own file."""

    def __init__(self, workdir: str, agent: str, args: Sequence[str] = ()) -> None:
        self.agent = agent
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = os.path.join(os.path.abspath(workdir), f"agent-{agent}")
        self.args = list(args)
        self.process: Process | None = None

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "agent.log")

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def start(self) -> Agent:
        os.makedirs(self.dir, exist_ok=True)
        argv = [sys.executable, "-m", "hpcwatch.cli", "serve", "--agent", self.agent,
                f"--web.listen-address=127.0.0.1:{self.port}", *self.args]
        self.process = Process(f"hpcwatch-{self.agent}", argv, self.log_path, cwd=self.dir).start()
        try:
            wait_http(self.url + "/metrics", 60, alive=self.process.dead)
        except DaemonError as exc:
            raise self.process.failure(str(exc)) from None
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def metrics(self) -> str:
        return http_get(self.url + "/metrics", timeout=10)[1].decode()


def slo_rules(workdir: str, catalogue: str, windows: str, name: str = "slo") -> str:
    """Rule file from `hpcwatch slo generate --windows` for a catalogue and AlertWindows (texts or paths)."""
    def as_file(text_or_path: str, stem: str) -> str:
        if os.path.isfile(text_or_path):
            return text_or_path
        path = os.path.join(workdir, stem)
        with open(path, "w", encoding="utf-8") as fh:
            fh.write(text_or_path)
        return path

    spec = as_file(catalogue, f"{name}-catalogue.yaml")
    win = as_file(windows, f"{name}-windows.yaml")
    out = os.path.join(workdir, f"{name}.rules.yml")
    cli("slo", "generate", "-i", spec, "--windows", win, "-o", out)
    return out


def agent_targets(cluster: str, node: Agent, cluster_agent: Agent, interval: str) -> dict[str, list[Target]]:
    """file_sd targets of both agents as an operator writes them: `cluster` as a target label (the
    Slurm ClusterName), plus Prometheus' own per-target scrape interval to compress time."""
    labels = {"cluster": cluster, "__scrape_interval__": interval, "__scrape_timeout__": interval}
    return {NODE_AGENT_JOB: [Target(node.address, labels)], CLUSTER_AGENT_JOB: [Target(cluster_agent.address, labels)]}


def missing_requirements() -> str | None:
    """Why this machine cannot run the demo (not root, Debian packages missing), or None."""
    if os.geteuid() != 0:
        return ("hpcwatch demo needs root: it starts Slurm (munged, MariaDB, slurmdbd, slurmctld, slurmd) "
                "and job cgroups on this machine. Run it as root on Debian 12, e.g. `sudo make demo`.")
    missing = []
    for name in NEEDS:
        try:
            which(name)
        except MissingDaemon as exc:
            missing.append(str(exc))
    if missing:
        return "hpcwatch demo needs Debian 12 packages:\n  " + "\n  ".join(missing)
    return None


def prometheus_ui(url: str) -> str:
    """Where Prometheus' pages are: Debian's package serves only the classic UI, under /classic."""
    return url if http_get(url + "/alerts")[0] == 200 else url + "/classic"


# --------------------------------------------------------------------------------------------- the job mix

class JobMix:
    """A realistic trickle of jobs: mostly successes, some user failures, some held pending, and (once)
    a node that fails under two running jobs, stays out of service a while, then is resumed."""

    OUTAGE = 90.0  # seconds the failed node stays drained before the demo resumes it

    def __init__(self, slurm, say: Callable[[str], None], incident_after: float, seed: int = 7) -> None:
        self.slurm = slurm
        self.say = say
        self.incident_after = incident_after
        self.rand = random.Random(seed)
        self.began = time.monotonic()
        self.victim = slurm.node_names[-1]
        self.down_since: float | None = None
        self.incident_done = incident_after <= 0

    def submit(self, *args: str, wrap: str) -> int | None:
        with contextlib.suppress(Exception):  # a refused submission is part of a busy cluster
            return self.slurm.sbatch(None, "--mem=32M", "--no-requeue", *args, wrap=wrap)
        return None

    def start(self) -> None:
        """Jobs that stay pending: one held by its user, one waiting for a begin time an hour away."""
        self.submit("--hold", "--job-name=held-by-user", wrap="true")
        self.submit("--begin=now+1hour", "--job-name=tomorrow-run", wrap="true")
        self.submit("--partition=gpu", "--job-name=gpu-prep", wrap="sleep 20")

    def tick(self) -> None:
        """One step (call every few seconds)."""
        r = self.rand.random()
        if r < 0.7:
            self.submit("--job-name=simulation", wrap=f"sleep {self.rand.randint(2, 15)}")
        elif r < 0.85:
            self.submit("--job-name=analysis", wrap="sleep 3; echo 'input missing' >&2; exit 2")
        else:
            self.submit("--partition=gpu", "--job-name=train", wrap=f"sleep {self.rand.randint(2, 10)}")
        elapsed = time.monotonic() - self.began
        if not self.incident_done and self.down_since is None and elapsed >= self.incident_after:
            self.incident()
        elif self.down_since is not None and time.monotonic() - self.down_since > self.OUTAGE:
            r = self.slurm.run(["scontrol", "update", f"nodename={self.victim}", "state=resume"], check=False)
            if r.returncode == 0:
                self.say(f"incident over: node {self.victim} resumed by the operator")
                self.down_since, self.incident_done = None, True

    def incident(self) -> None:
        """Two long jobs on the victim; once they run, the node goes DOWN (Slurm ends them NODE_FAIL,
        cause system) and is drained so it stays out until resumed, as after a real hardware fault."""
        jobs = [j for j in (self.submit(f"--nodelist={self.victim}", "--job-name=long-sim", wrap="sleep 3600")
                            for _ in range(2)) if j is not None]
        for j in jobs:
            with contextlib.suppress(Exception):
                self.slurm.wait_job(j, states=("RUNNING",), timeout=30)
        self.slurm.run(["scontrol", "update", f"nodename={self.victim}", "state=down",
                        "reason=demo-node-failure"], check=False)
        self.slurm.run(["scontrol", "update", f"nodename={self.victim}", "state=drain",
                        "reason=demo-node-failure"], check=False)
        self.down_since = time.monotonic()
        self.say(f"incident: node {self.victim} failed under {len(jobs)} running jobs (NODE_FAIL, cause system) "
                 "and is drained. Expect a PAGE within about a minute (Alertmanager waits 30 s to group it).")


# --------------------------------------------------------------------------------------------- the command

DEMO_HELP = """The whole stack on this machine (root, Debian 12 packages; `make deps` installs them).

Slurm with accounting (3 slurmd), the cluster and node agents, and Prometheus and Alertmanager on the
configs `hpcwatch generate` writes (deploy/prometheus/prometheus.yml, the rules, the Alertmanager
routing) with targets in file_sd files and the PagerDuty and webhook receivers pointed at this
process; plus SLOs for the demo cluster with windows of seconds to minutes. A job mix runs:
successes, user failures, pending jobs; after --incident-after seconds a node fails under two running
jobs, so the job-success SLO pages on-call, and the page resolves a minute or two later.
Notifications are printed as they arrive. Everything listens on 127.0.0.1; Ctrl-C or SIGTERM stops
it all and removes the work directory.

examples:
  hpcwatch demo                      # until Ctrl-C
  hpcwatch demo --duration 300       # five minutes, then tear down
  hpcwatch demo --keep               # keep logs and data (the directory is printed)
"""


class Stop(BaseException):
    """SIGTERM or SIGINT: unwind and tear down."""


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="run Slurm, both agents, Prometheus and Alertmanager on this machine",
                       description=DEMO_HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--duration", type=float, default=0,
                   help="tear down after this many seconds (default: run until Ctrl-C or SIGTERM)")
    p.add_argument("--nodes", type=int, default=3, help="slurmd nodes to start (default: %(default)s)")
    p.add_argument("--incident-after", type=float, default=90,
                   help="seconds until a node fails under running jobs; 0 for none (default: %(default)s)")
    p.add_argument("--workdir", help="where the daemons keep state (default: a new temporary directory)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, data) at exit")
    p.set_defaults(func=run)


def _on_signal(signum: int, _frame: object) -> None:
    # Teardown must not be interrupted half-way: later signals are ignored until exit.
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    raise Stop(signal.Signals(signum).name)


def run(args: argparse.Namespace) -> int:
    why = missing_requirements()
    if why:
        print(why, file=sys.stderr)
        return 2
    workdir = os.path.abspath(args.workdir or tempfile.mkdtemp(prefix="hpcwatch-demo-"))
    os.makedirs(workdir, exist_ok=True)
    os.chmod(workdir, 0o755)
    old = {s: signal.signal(s, _on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    began = time.monotonic()

    def say(msg: str) -> None:
        print(f"[{time.monotonic() - began:6.1f}s] {msg}", flush=True)

    try:
        with contextlib.ExitStack() as stack:
            _run(args, workdir, stack, say)
        say("stopped; every daemon is gone")
    except Stop as stop:
        say(f"{stop}: stopped; every daemon is gone")
    except Exception as exc:  # noqa: BLE001 - a daemon that did not start: say which and why, exit 1
        print(f"hpcwatch demo: {exc}", file=sys.stderr)
        return 1
    finally:
        for s, h in old.items():
            signal.signal(s, h)
        if not args.keep and not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
        elif args.keep:
            print(f"work directory kept: {workdir}", flush=True)
    return 0


def _run(args: argparse.Namespace, workdir: str, stack: contextlib.ExitStack, say: Callable[[str], None]) -> None:
    from hpcwatch.harness.shipped import NotificationReceiver, ShippedPrometheus, shipped_alertmanager
    from hpcwatch.harness.slurm import SlurmCluster

    say(f"work directory {workdir}")
    deploy = os.path.join(workdir, "deploy")
    cli("generate", "--out", deploy)
    slo = slo_rules(workdir, DEMO_CATALOGUE, SHORT_WINDOWS, "demo-slo")
    say(f"generated {deploy}/ with `hpcwatch generate` and the demo's SLO rules with `hpcwatch slo generate`")
    counts: dict[str, int] = {}

    def on_notify(note: Notification) -> None:
        what = {"oncall": "PAGE", "ticket": "TICKET"}.get(note.receiver, note.receiver.upper())
        counts[f"{what} {note.status}"] = counts.get(f"{what} {note.status}", 0) + 1
        for a in note.alerts:
            lab = a["labels"]
            where = " ".join(f"{k}={lab[k]}" for k in ("cluster", "queue", "instance") if k in lab)
            say(f"{what} {a['status']} ({note.kind} to {note.receiver}): {lab.get('alertname')} {where} - "
                f"{a['annotations'].get('summary', '')}")

    hook = stack.enter_context(NotificationReceiver(on_notify))
    say(f"starting Slurm with accounting ({args.nodes} nodes, cluster {DEMO_CLUSTER})")
    slurm = stack.enter_context(SlurmCluster(os.path.join(workdir, "slurm"), cluster_name=DEMO_CLUSTER,
                                             nodes=args.nodes))
    state = os.path.join(workdir, "agent-cluster", "slurm-state.json")
    cluster = stack.enter_context(Agent(workdir, "cluster", [
        f"--collector.slurm.conf={slurm.conf_path}", "--collector.slurm.refresh-interval=2",
        f"--collector.slurm.state-file={state}"]))
    # The harness runs the shipped prologs, which record each job's account and partition here.
    node = stack.enter_context(Agent(workdir, "node", [f"--collector.jobs.info-dir={slurm.job_info_dir}"]))
    am = stack.enter_context(shipped_alertmanager(workdir, deploy, hook.url))
    targets = {**agent_targets(DEMO_CLUSTER, node, cluster, "2s"), "alertmanager": [Target(am.url.split("//")[1])]}
    prom = stack.enter_context(ShippedPrometheus(workdir, deploy, targets, [slo]))
    mix = JobMix(slurm, say, args.incident_after)
    mix.start()
    dashboards = os.path.join(deploy, "grafana", "dashboards")
    ui = prometheus_ui(prom.url)
    print(f"""
hpcwatch demo is up; jobs are running. What it did:
  - wrote {deploy}/ with `hpcwatch generate` (what you would install)
  - Prometheus runs {prom.config_path} unchanged (a copy of deploy/prometheus/prometheus.yml) with
    deploy/prometheus/rules/*.yml and the demo SLOs in {prom.dir}/rules/; targets are the only files
    written, in {prom.dir}/targets/ (labels: cluster={DEMO_CLUSTER}, scraped every 2 s)
  - Alertmanager runs deploy/alertmanager/alertmanager.yml: pages go to its PagerDuty receiver, tickets
    to its webhook, both pointed at this process, which prints what they receive
Where to look:
  Prometheus      {ui}/alerts    (rules: {ui}/rules, targets: {ui}/targets)
  Alertmanager    {am.url}/#/alerts
  cluster agent   {cluster.url}/metrics
  node agent      {node.url}/metrics
  dashboards      {dashboards}/*.json  (import into Grafana with {prom.url} as the Prometheus data source)
  Slurm           SLURM_CONF={slurm.conf_path} squeue
A node fails under running jobs {args.incident_after:g} s after start (--incident-after). Ctrl-C stops and
removes everything.
""", flush=True)
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    try:
        while deadline is None or time.monotonic() < deadline:
            mix.tick()
            time.sleep(3 if deadline is None else max(0.0, min(3, deadline - time.monotonic())))
        say(f"--duration {args.duration:g}s reached; tearing down")
    finally:
        summary = ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())) or "none"
        say(f"notifications received: {summary}")
