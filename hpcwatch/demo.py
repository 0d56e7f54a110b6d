"""`hpcwatch demo`: the whole stack on one machine (root, Debian 12), and the pieces the e2e tests share.

Slurm with accounting (hpcwatch.harness), the cluster and node agents (`hpcwatch serve` children),
Prometheus scraping both with every generated rule, Alertmanager with the generated routing sending
to a webhook inside this process (which prints each page), and a job mix: successes, user failures,
jobs held pending, and a node that fails under running jobs so the job-success SLO pages.
Ctrl-C or SIGTERM tears it all down; `--duration` does so after that many seconds.
"""

from __future__ import annotations

import argparse
import contextlib
import http.server
import io
import json
import os
import random
import shutil
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Self

import yaml

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

# A 1-day SLO period with alert windows of seconds to minutes: a burn pages while you watch.
# Burn-rate factor = errorBudgetPercent% x 24h / longWindow: page 2.88 and 2.16, tickets 1.44.
SHORT_WINDOWS = """\
apiVersion: sloth.slok.dev/v1
kind: AlertWindows
spec:
  sloPeriod: 1d
  page:
    quick: {errorBudgetPercent: 0.2, shortWindow: 15s, longWindow: 1m}
    slow: {errorBudgetPercent: 0.3, shortWindow: 30s, longWindow: 2m}
  ticket:
    quick: {errorBudgetPercent: 0.5, shortWindow: 1m, longWindow: 5m}
    slow: {errorBudgetPercent: 1, shortWindow: 2m, longWindow: 10m}
"""

# The demo cluster's catalogue: the harness has partitions `debug` (default) and `gpu`.
DEMO_CATALOGUE = """\
apiVersion: hpcwatch/v1
kind: SLOCatalogue
metadata: {name: demo}
spec:
  service: hpc
  clusters: [demo]
  period: 1d
  min_events: 5
  alerting:
    page_alert: {labels: {severity: critical, component: jobs}}
    ticket_alert: {labels: {severity: warning, component: jobs}}
  slos:
    - sli: job-success
      objective: 90
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


class WebhookReceiver:
    """An Alertmanager webhook receiver on a free loopback port: keeps every notification, by path."""

    def __init__(self, on_notify: Callable[[str, dict], None] | None = None) -> None:
        self.notifications: list[tuple[float, str, dict]] = []
        self.lock = threading.Lock()
        self.on_notify = on_notify
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsed": body.decode("utf-8", "replace")}
                with receiver.lock:
                    receiver.notifications.append((time.time(), self.path, doc))
                self.send_response(200)
                self.end_headers()
                if receiver.on_notify is not None:
                    receiver.on_notify(self.path, doc)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="webhook", daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, path: str | None = None) -> list[tuple[float, str, dict]]:
        with self.lock:
            return [n for n in self.notifications if path is None or n[1] == path]


def alertmanager_config(workdir: str, oncall_url: str, ticket_url: str, group_wait: str = "1s",
                        group_interval: str = "2s") -> str:
    """Alertmanager YAML from `hpcwatch alerts alertmanager`, both receivers as webhooks."""
    receivers = os.path.join(workdir, f"receivers-{free_port()}.yml")
    out = receivers.replace("receivers-", "alertmanager-")
    with open(receivers, "w", encoding="utf-8") as fh:
        yaml.safe_dump({"oncall": {"type": "webhook", "url": oncall_url},
                        "ticket": {"type": "webhook", "url": ticket_url},
                        "group_wait": group_wait, "group_interval": group_interval,
                        "page_repeat": "1h", "ticket_repeat": "1h"}, fh)
    cli("alerts", "alertmanager", "--config", receivers, "-o", out)
    with open(out, encoding="utf-8") as fh:
        return fh.read()


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


def prometheus_config(targets: dict[str, str], alertmanager: str, interval: str = "1s",
                      remote_write: str | None = None) -> dict[str, Any]:
    """Scrape `targets` ({job: base url}) every `interval`, evaluate rules as often, alert `alertmanager`."""
    cfg: dict[str, Any] = {
        "global": {"scrape_interval": interval, "scrape_timeout": interval, "evaluation_interval": interval},
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.split("://")[-1]]}]}]},
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [url.split("://")[-1]]}]}
                           for job, url in targets.items()],
    }
    if remote_write:
        # Raw samples only: the rule engine on the other side records its own slo:* series and ALERTS.
        cfg["remote_write"] = [{
            "url": remote_write,
            "queue_config": {"batch_send_deadline": "1s", "min_backoff": "100ms", "max_backoff": "1s"},
            "write_relabel_configs": [{"source_labels": ["__name__"], "regex": "slo:.*|sloth_.*|ALERTS.*",
                                       "action": "drop"}]}]
    return cfg


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
    a node that goes down under running jobs and comes back a minute later."""

    def __init__(self, slurm, say: Callable[[str], None], incident_after: float, seed: int = 7) -> None:
        self.slurm = slurm
        self.say = say
        self.incident_after = incident_after
        self.rand = random.Random(seed)
        self.began = time.monotonic()
        self.victim = slurm.node_names[-1]
        self.down_since: float | None = None
        self.incident_done = incident_after <= 0

    def submit(self, *args: str, wrap: str) -> None:
        with contextlib.suppress(Exception):  # a refused submission is part of a busy cluster
            self.slurm.sbatch(None, "--mem=32M", "--no-requeue", *args, wrap=wrap)

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
            for _ in range(2):
                self.submit(f"--nodelist={self.victim}", "--job-name=long-sim", wrap="sleep 3600")
            time.sleep(3)
            self.slurm.run(["scontrol", "update", f"nodename={self.victim}", "state=down",
                            "reason=demo-node-failure"], check=False)
            self.down_since = time.monotonic()
            self.say(f"incident: node {self.victim} is DOWN under running jobs (watch the job-success page)")
        elif self.down_since is not None and time.monotonic() - self.down_since > 60:
            r = self.slurm.run(["scontrol", "update", f"nodename={self.victim}", "state=resume"], check=False)
            if r.returncode == 0:
                self.say(f"incident over: node {self.victim} resumed (the page resolves in a minute or two)")
                self.down_since, self.incident_done = None, True


# --------------------------------------------------------------------------------------------- the command

DEMO_HELP = """The whole stack on this machine (root, Debian 12 packages; `make deps` installs them).

Slurm with accounting (3 slurmd), the cluster and node agents, Prometheus with every generated rule
(plus SLOs for the demo cluster with windows of seconds to minutes), Alertmanager with the generated
routing. A job mix runs: successes, user failures, pending jobs, and after --incident-after seconds
a node fails under running jobs, so the job-success SLO pages. Pages are printed as they arrive.
Everything listens on 127.0.0.1; Ctrl-C or SIGTERM stops it all and removes the work directory.

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
    from hpcwatch.harness.prometheus import Alertmanager, Prometheus
    from hpcwatch.harness.slurm import SlurmCluster

    say(f"work directory {workdir}")
    deploy = os.path.join(workdir, "deploy")
    cli("generate", "--out", deploy)
    rules_dir = os.path.join(deploy, "prometheus", "rules")
    rule_files = [os.path.join(rules_dir, f) for f in sorted(os.listdir(rules_dir)) if f.endswith(".yml")]
    rule_files.append(slo_rules(workdir, DEMO_CATALOGUE, SHORT_WINDOWS, "demo-slo"))
    say(f"generated {len(rule_files)} rule files, dashboards and Alertmanager routing")

    def on_notify(path: str, doc: dict) -> None:
        for a in doc.get("alerts", []):
            lab = a.get("labels", {})
            where = " ".join(f"{k}={lab[k]}" for k in ("cluster", "queue", "instance") if k in lab)
            say(f"{path.strip('/').upper()} {a.get('status')}: {lab.get('alertname')} {where} - "
                f"{a.get('annotations', {}).get('summary', '')}")

    hook = stack.enter_context(WebhookReceiver(on_notify))
    say(f"starting Slurm with accounting ({args.nodes} nodes)")
    slurm = stack.enter_context(SlurmCluster(os.path.join(workdir, "slurm"), cluster_name="demo",
                                             nodes=args.nodes))
    state = os.path.join(workdir, "agent-cluster", "slurm-state.json")
    cluster = stack.enter_context(Agent(workdir, "cluster", [
        f"--collector.slurm.conf={slurm.conf_path}", "--collector.slurm.refresh-interval=2",
        f"--collector.slurm.state-file={state}"]))
    node = stack.enter_context(Agent(workdir, "node"))
    am = stack.enter_context(Alertmanager(workdir, alertmanager_config(
        workdir, hook.url + "/page", hook.url + "/ticket")))
    prom = stack.enter_context(Prometheus(workdir, prometheus_config(
        {"hpcwatch-cluster": cluster.url, "hpcwatch-node": node.url}, am.url, interval="2s"), rule_files))
    mix = JobMix(slurm, say, args.incident_after)
    mix.start()
    dashboards = os.path.join(deploy, "grafana", "dashboards")
    ui = prometheus_ui(prom.url)
    print(f"""
hpcwatch demo is up; jobs are running. Open:
  Prometheus      {ui}/alerts    (rules: {ui}/rules, targets: {ui}/targets)
  Alertmanager    {am.url}/#/alerts
  cluster agent   {cluster.url}/metrics
  node agent      {node.url}/metrics
  dashboards      {dashboards}/*.json  (import into Grafana with {prom.url} as the Prometheus data source)
  Slurm           SLURM_CONF={slurm.conf_path} squeue
Pages and tickets are printed here as Alertmanager sends them. Ctrl-C stops and removes everything.
""", flush=True)
    deadline = time.monotonic() + args.duration if args.duration > 0 else None
    while deadline is None or time.monotonic() < deadline:
        mix.tick()
        time.sleep(3 if deadline is None else max(0.0, min(3, deadline - time.monotonic())))
    say(f"--duration {args.duration:g}s reached; tearing down")
