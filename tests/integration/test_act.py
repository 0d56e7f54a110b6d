"""Waste alerts through a real Alertmanager: `hpcwatch act` (the installed command) against the real
Slurm of the harness, and the users' e-mail through a real SMTP conversation.

Alerts are posted to Alertmanager's API as Prometheus would send them (same labels as the generated
rules, a fixed startsAt per episode, endsAt ahead while firing and now to resolve). The Alertmanager
config is the generated one (`hpcwatch.alerts.alertmanager`) with test timers: act hears a firing
episode every ~2 s. act confirms after 10 s, so "notified twice over the set time" takes two
notifications 10 s apart, and a job that recovers in between starts over.
"""

from __future__ import annotations

import datetime
import json
import os
import socketserver
import subprocess
import sys
import threading
import time
import urllib.request

import pytest
from helpers import require_binary
from hpcwatch.alerts import alertmanager as am
from hpcwatch.alerts.actcli import job_report_command

from hpcwatch.harness.prometheus import Alertmanager
from hpcwatch.harness.util import free_port, wait_until

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

CONFIRM_S = 10
HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")


def _iso(t: float) -> str:
    return datetime.datetime.fromtimestamp(t, datetime.UTC).isoformat()


def receivers(act_port: int | None = None, smtp_port: int | None = None) -> str:
    """A receiver config with the test's endpoints and timers, rendered by the generator."""
    lines = ["oncall: {type: webhook, url: 'http://127.0.0.1:9/page'}",
             "ticket: {type: webhook, url: 'http://127.0.0.1:9/ticket'}",
             "group_wait: 1s", "group_interval: 1s", "users_repeat: 1h"]
    if act_port:
        lines.append(f"act: {{url: 'http://127.0.0.1:{act_port}/alertmanager', repeat: 2s}}")
    if smtp_port:
        lines.append("users: {type: email, to: '{{ .CommonLabels.user }}@example.edu', from: hpcwatch@example.edu, "
                     f"smarthost: '127.0.0.1:{smtp_port}', require_tls: false}}")
    else:
        lines.append("users: {type: webhook, url: 'http://127.0.0.1:9/users'}")
    return am.render(am.load_config("\n".join(lines) + "\n"))


class Waste:
    """Posts one waste alert of one job to Alertmanager, keeping it firing or resolving it."""

    def __init__(self, manager: Alertmanager, cluster: str, jobid: int, alertname: str = "HpcJobGpuIdle",
                 user: str = "root") -> None:
        self.manager = manager
        self.labels = {"alertname": alertname, "severity": "warning", "component": "jobs", "audience": "user",
                       "cluster": cluster, "jobid": str(jobid), "user": user, "account": "physics"}
        self.starts = time.time() - 1

    def _post(self, ends: float) -> None:
        body = [{"labels": self.labels, "startsAt": _iso(self.starts), "endsAt": _iso(ends),
                 "annotations": {"summary": f"Job {self.labels['jobid']} keeps 1 GPU(s) idle",
                                 "description": "test", "runbook_url": "https://example/HpcJobGpuIdle.md"},
                 "generatorURL": "http://prometheus.test/graph"}]
        self.manager.post("/api/v2/alerts", json.dumps(body).encode(), "application/json")

    def fire(self, new_episode: bool = False) -> None:
        if new_episode:
            self.starts = time.time() - 1     # before the resolve's endsAt, however soon that comes
        self._post(time.time() + 3600)

    def resolve(self) -> None:
        self._post(time.time() - 1)


class Act:
    """`hpcwatch act` as operators run it, on the harness's Slurm (SLURM_CONF from its environment)."""

    def __init__(self, tmp, slurm, port: int, *flags: str) -> None:
        self.log = tmp / "decisions.jsonl"
        self.log.unlink(missing_ok=True)
        argv = [HPCWATCH, "act", f"--web.listen-address=127.0.0.1:{port}", "--partition", "gpu",
                "--confirm-after", f"{CONFIRM_S}s", "--cluster", slurm.cluster_name,
                "--state-file", str(tmp / "act-state.json"), "--decision-log", str(self.log), *flags]
        self.stderr = open(tmp / "act.stderr", "w")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(argv, env=slurm.env, stdout=subprocess.DEVNULL, stderr=self.stderr)
        self.url = f"http://127.0.0.1:{port}"
        wait_until(lambda: urllib.request.urlopen(self.url + "/-/healthy", timeout=2).status == 200, 30,
                   "hpcwatch act answers", alive=lambda: None if self.proc.poll() is None else "act exited")

    def decisions(self, jobid: int | None = None) -> list[dict]:
        if not self.log.exists():
            return []
        rows = [json.loads(line) for line in self.log.read_text().splitlines() if line.strip()]
        return [r for r in rows if jobid is None or r["jobid"] == str(jobid)]

    def wait(self, jobid: int, decision: str, after: int = 0, timeout: float = 90) -> dict:
        """The first `decision` for the job among its decisions from index `after` on."""
        found: list[dict] = []

        def check() -> bool:
            found[:] = [d for d in self.decisions(jobid)[after:] if d["decision"] == decision]
            return bool(found)

        wait_until(check, timeout, f"act decides {decision} for job {jobid} "
                   f"(so far: {[d['decision'] for d in self.decisions(jobid)]})")
        return found[0]

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.stderr.close()


@pytest.fixture
def gpu_jobs(slurm):
    """Submit sleeping jobs (partition, ...) -> ids, RUNNING; whatever is left is cancelled afterwards."""
    ids: list[int] = []

    def submit(*partitions: str) -> list[int]:
        new = [slurm.sbatch(None, f"--partition={p}", "--ntasks=1", "--mem=50M", wrap="sleep 600") for p in partitions]
        ids.extend(new)
        for j in new:
            slurm.wait_job(j, states=("RUNNING",), timeout=120)
        return new

    yield submit
    for j in ids:
        slurm.run(["scancel", str(j)], check=False)


@pytest.fixture
def manager(tmp_path, request):
    require_binary("prometheus-alertmanager")
    daemons = []

    def make(config: str) -> Alertmanager:
        d = Alertmanager(str(tmp_path / f"am{len(daemons)}"), config).start()
        daemons.append(d)
        return d

    yield make
    for d in daemons:
        d.stop()


def test_dry_run_decides_but_never_cancels(slurm, gpu_jobs, manager, tmp_path):
    port = free_port()
    mgr = manager(receivers(act_port=port))
    act = Act(tmp_path, slurm, port)                       # no --enable: dry run
    try:
        (job,) = gpu_jobs("gpu")
        alert = Waste(mgr, slurm.cluster_name, job)
        alert.fire()
        first = act.wait(job, "first_warning")
        would = act.wait(job, "would_cancel")
        assert would["dry_run"] is True and would["partition"] == "gpu" and would["slurm_state"] == "RUNNING"
        assert would["warnings"] >= 2 and would["first_warning"] == first["first_warning"]
        gap = (datetime.datetime.fromisoformat(would["ts"]) - datetime.datetime.fromisoformat(first["ts"]))
        assert gap.total_seconds() >= CONFIRM_S - 1           # the log's seconds are whole
        assert slurm.job_state(job) == "RUNNING"
        if job_report_command():    # `hpcwatch job report` of the running job, from sacct (no Prometheus here)
            assert f"Job {job}" in first["job_report"] and "(no job report" not in first["job_report"], first
        else:
            assert "job_report" not in first
        alert.resolve()
        act.wait(job, "recovered")
    finally:
        act.stop()
    assert not [d for d in act.decisions() if d["decision"] == "cancelled"]


def test_enabled_cancels_only_confirmed_jobs_in_allowed_partitions(slurm, gpu_jobs, manager, tmp_path):
    port = free_port()
    mgr = manager(receivers(act_port=port))
    act = Act(tmp_path, slurm, port, "--enable")
    idle, elsewhere = gpu_jobs("gpu", "debug")              # the harness has 2 CPUs: two jobs at a time
    alerts = [Waste(mgr, slurm.cluster_name, j) for j in (idle, elsewhere)]
    try:
        for a in alerts:
            a.fire()
        first = act.wait(idle, "first_warning")
        cancelled = act.wait(idle, "cancelled")
        assert cancelled["dry_run"] is False and cancelled["warnings"] >= 2 and cancelled["partition"] == "gpu"
        assert cancelled["first_warning"] == first["first_warning"]
        assert slurm.wait_job(idle, timeout=60) == "CANCELLED"
        refused = act.wait(elsewhere, "not_cancelled")
        assert "partition debug is not in the allow-list (gpu)" in refused["reason"]
        assert slurm.job_state(elsewhere) == "RUNNING"
    finally:
        for a in alerts:
            a.resolve()
        act.stop()
    assert [d["jobid"] for d in act.decisions() if d["decision"] == "cancelled"] == [str(idle)]


def test_a_job_that_recovered_between_warnings_is_never_cancelled(slurm, gpu_jobs, manager, tmp_path):
    """Warned, recovered, idle again later than confirm_after after the first warning: the second
    episode is a first warning, not a confirmation, and the job keeps running."""
    port = free_port()
    mgr = manager(receivers(act_port=port))
    act = Act(tmp_path, slurm, port, "--enable")
    (job,) = gpu_jobs("gpu")
    alert = Waste(mgr, slurm.cluster_name, job)
    try:
        alert.fire()
        first = act.wait(job, "first_warning")
        alert.resolve()
        act.wait(job, "recovered")
        began = datetime.datetime.fromisoformat(first["ts"]).timestamp()
        wait_until(lambda: time.time() > began + CONFIRM_S + 1, CONFIRM_S + 30, "confirm_after has passed")
        seen = len(act.decisions(job))
        alert.fire(new_episode=True)
        again = act.wait(job, "first_warning", after=seen)
        assert again["starts_at"] != first["starts_at"] and again["warnings"] == 1
        alert.resolve()
        act.wait(job, "recovered", after=seen)
    finally:
        alert.resolve()
        act.stop()
    assert slurm.job_state(job) == "RUNNING"
    assert {d["decision"] for d in act.decisions(job)} <= {"first_warning", "waiting", "recovered"}


def test_act_refuses_a_job_whose_owner_differs_and_survives_a_restart(slurm, gpu_jobs, manager, tmp_path):
    """The alert's user must be Slurm's; a first warning is on record across an act restart."""
    port = free_port()
    mgr = manager(receivers(act_port=port))
    act = Act(tmp_path, slurm, port, "--enable")
    (job,) = gpu_jobs("gpu")
    alert = Waste(mgr, slurm.cluster_name, job, user="mallory")
    try:
        alert.fire()
        first = act.wait(job, "first_warning")
        act.stop()
        act = Act(tmp_path, slurm, port, "--enable")       # same state file; a fresh decision log
        refused = act.wait(job, "not_cancelled")
        assert refused["first_warning"] == first["first_warning"]
        assert "names user mallory, Slurm says root" in refused["reason"]
        assert slurm.job_state(job) == "RUNNING"
    finally:
        alert.resolve()
        act.stop()


# --- the users' e-mail ---------------------------------------------------------------------------------

class SMTPSink(socketserver.ThreadingTCPServer):
    """Just enough SMTP (RFC 5321, no TLS, no auth) to take Alertmanager's messages: (rcpt, data) each."""

    allow_reuse_address = True
    daemon_threads = True

    def __init__(self) -> None:
        self.messages: list[tuple[list[str], str]] = []

        class Session(socketserver.StreamRequestHandler):
            def handle(inner) -> None:  # noqa: N805 - the sink's own self is `self`
                def say(line: str) -> None:
                    inner.wfile.write(line.encode() + b"\r\n")

                say("220 sink ESMTP")
                rcpt: list[str] = []
                while True:
                    line = inner.rfile.readline().decode("utf-8", "replace").strip()
                    verb = line[:4].upper()
                    if not line or verb == "QUIT":
                        say("221 bye")
                        return
                    if verb in ("EHLO", "HELO"):
                        say("250 sink")
                    elif verb == "RCPT":
                        rcpt.append(line.split(":", 1)[1].strip(" <>"))
                        say("250 ok")
                    elif verb == "DATA":
                        say("354 go on")
                        data = []
                        while (part := inner.rfile.readline().decode("utf-8", "replace")) not in (".\r\n", ""):
                            data.append(part)
                        self.messages.append((rcpt, "".join(data)))
                        rcpt = []
                        say("250 queued")
                    else:
                        say("250 ok")

        super().__init__(("127.0.0.1", 0), Session)
        threading.Thread(target=self.serve_forever, daemon=True).start()


def _plain(mime: str) -> str:
    """The text/plain part of a message, quoted-printable decoded."""
    import email
    msg = email.message_from_string(mime)
    for part in msg.walk():
        if part.get_content_type() == "text/plain":
            return part.get_payload(decode=True).decode()
    return ""


def test_users_get_an_email_with_the_job_report_command(manager, tmp_path):
    sink = SMTPSink()
    try:
        mgr = manager(receivers(act_port=free_port(), smtp_port=sink.server_address[1]))
        Waste(mgr, "alpha", 4242, user="alice").fire()
        Waste(mgr, "alpha", 4242, alertname="HpcJobMemoryUnused", user="alice").fire()
        wait_until(lambda: sink.messages, 60, "Alertmanager mails the job's owner")
        rcpt, mime = sink.messages[0]
        assert rcpt == ["alice@example.edu"]
        assert "Subject: [hpcwatch] job 4242 on alpha:" in mime
        text = _plain(mime)
        assert "Hello alice," in text and "(account physics)" in text
        assert "hpcwatch job report 4242 --cluster alpha" in text
        assert "Job 4242 keeps 1 GPU(s) idle" in text and "https://example/HpcJobGpuIdle.md" in text
        assert am.ACT_NOTICE in text.replace("\r\n", " ").replace("\n", " ")
    finally:
        sink.shutdown()
        sink.server_close()
