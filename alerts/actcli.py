"""`hpcwatch act`: the Alertmanager webhook receiver that may cancel a job which keeps GPUs idle.

Dry run unless `--enable`; cancels only in the partitions given with `--partition`; every decision is
one JSON line in `--decision-log` (and the log). The policy itself is hpcwatch.alerts.act.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import logging
import signal
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

log = logging.getLogger("hpcwatch.act")

DEFAULT_LISTEN = "127.0.0.1:19469"
MAX_BODY = 1 << 20          # an Alertmanager notification of a few hundred alerts fits many times over
REPORT_CHARS = 8000         # the job report kept in a decision line

HELP = """Receive Alertmanager webhook notifications of the waste alerts (audience="user") and decide,
per alert, whether to cancel the job: only after the same alert episode was notified twice at least
--confirm-after apart, only for jobs Slurm says are RUNNING in an allow-listed --partition and owned
by the user the alert names, and only with --enable (dry run by default). Every decision is a JSON
line in --decision-log. Route alerts here with the `act:` section of the receiver config
(`hpcwatch alerts alertmanager`).

examples:
  hpcwatch act --partition gpu --decision-log /var/log/hpcwatch/act.jsonl           dry run
  hpcwatch act --enable --partition gpu --partition gpu-long --confirm-after 2h \\
      --cluster alpha --state-file /var/lib/hpcwatch/act-state.json --decision-log /var/log/hpcwatch/act.jsonl
"""


def register(sub: argparse._SubParsersAction) -> None:
    from hpcwatch.alerts.waste import GPU_ALERTS

    p = sub.add_parser("act", help="Alertmanager webhook that may cancel jobs keeping GPUs idle (dry run by default)",
                       description=HELP, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--web.listen-address", dest="listen", default=DEFAULT_LISTEN,
                   help=f"host:port to receive notifications on (default: {DEFAULT_LISTEN})")
    p.add_argument("--enable", action="store_true", help="really cancel (default: dry run, decisions only)")
    p.add_argument("--partition", action="append", default=[], metavar="NAME",
                   help="partition whose jobs may be cancelled (repeatable; none given: nothing is cancelled)")
    p.add_argument("--alert", action="append", default=[], metavar="NAME",
                   help=f"alert name act handles (repeatable; default: {', '.join(GPU_ALERTS)})")
    p.add_argument("--confirm-after", default="2h",
                   help="time between the first warning and the one that confirms it (default: 2h)")
    p.add_argument("--cluster", default="", help="only alerts labelled with this cluster (default: any)")
    p.add_argument("--state-file", default="", help="where first warnings survive restarts (default: memory only)")
    p.add_argument("--decision-log", default="", help="append each decision as a JSON line here")
    p.add_argument("--slurm-bin-dir", default="", help="folder of squeue and scancel (default: PATH)")
    p.add_argument("--job-report", choices=("auto", "off"), default="auto",
                   help="auto: put `hpcwatch job report` text in first-warning and cancel decisions where this "
                   "build has the command")
    p.set_defaults(func=run)


def job_report_command() -> bool:
    """Whether this build has `hpcwatch job report` (hpcwatch.accounting)."""
    try:
        return importlib.util.find_spec("hpcwatch.accounting.cli") is not None
    except ModuleNotFoundError:
        return False


def render_job_report(jobid: str, cluster: str) -> str:
    """The text of `hpcwatch job report JOBID [--cluster C]`, or why there is none."""
    argv = [sys.executable, "-m", "hpcwatch.cli", "job", "report", jobid, *(["--cluster", cluster] if cluster else [])]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False,
                              stdin=subprocess.DEVNULL)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(no job report: {exc})"
    text = proc.stdout if proc.returncode == 0 else f"(no job report: {proc.stderr.strip()[-300:]})"
    return text[:REPORT_CHARS]


def _listen(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise SystemExit(f"error: --web.listen-address {address!r}: expected host:port such as {DEFAULT_LISTEN}")
    return host.strip("[]") or "0.0.0.0", int(port)


def make_server(actor, decision_log: str, address: tuple[str, int]) -> ThreadingHTTPServer:
    """The HTTP side: POST a webhook body, get one decision per alert; notifications are handled one at a time."""
    from hpcwatch.alerts.act import write_decisions

    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        server_version = "hpcwatch-act"

        def _reply(self, code: int, doc: dict) -> None:
            body = json.dumps(doc).encode()
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:  # noqa: N802 - the http.server hook name
            if self.path in ("/-/healthy", "/-/ready"):
                self._reply(200, {"status": "ok", "enabled": actor.policy.enabled})
            else:
                self._reply(404, {"error": "POST Alertmanager notifications; GET /-/healthy"})

        def do_POST(self) -> None:  # noqa: N802
            try:
                size = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                size = -1
            if not 0 < size <= MAX_BODY:
                self._reply(413 if size > MAX_BODY else 411, {"error": f"body of 1..{MAX_BODY} bytes expected"})
                return
            try:
                payload = json.loads(self.rfile.read(size))
                if not isinstance(payload, dict):
                    raise ValueError("expected a JSON object")
                with lock:
                    decisions = actor.handle(payload)
                    write_decisions(decisions, decision_log or None)
            except ValueError as exc:
                log.warning("rejected a notification from %s: %s", self.client_address[0], exc)
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, {"decisions": [d.decision for d in decisions]})

        def log_message(self, fmt: str, *args) -> None:  # requests are logged as decisions instead
            log.debug("%s " + fmt, self.client_address[0], *args)

    return ThreadingHTTPServer(address, Handler)


def run(args: argparse.Namespace) -> int:
    from hpcwatch.alerts.act import Actor, Ledger, Policy, Slurm
    from hpcwatch.alerts.waste import GPU_ALERTS
    from hpcwatch.slo.goformat import parse_duration

    try:
        confirm = parse_duration(args.confirm_after)
    except ValueError:
        confirm = 0
    if confirm <= 0:
        print(f"error: --confirm-after {args.confirm_after!r}: expected a duration such as 2h", file=sys.stderr)
        return 2
    policy = Policy(enabled=args.enable, partitions=frozenset(args.partition),
                    alerts=frozenset(args.alert or GPU_ALERTS), confirm_after_s=float(confirm),
                    cluster=args.cluster or None)
    report = render_job_report if args.job_report == "auto" and job_report_command() else None
    actor = Actor(policy, Slurm(args.slurm_bin_dir), Ledger(args.state_file or None), report)
    try:
        server = make_server(actor, args.decision_log, _listen(args.listen))
    except OSError as exc:
        print(f"error: --web.listen-address {args.listen}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown, daemon=True).start())
    log.info("listening on %s:%d; %s; partitions %s; alerts %s; confirm after %ss; job report %s",
             *server.server_address[:2], "ENABLED: confirmed jobs are cancelled" if policy.enabled else "dry run",
             ", ".join(sorted(policy.partitions)) or "none (nothing is cancelled)", ", ".join(sorted(policy.alerts)),
             f"{confirm:g}", "on" if report else "off")
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0
