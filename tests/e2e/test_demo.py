"""`hpcwatch demo` as a user runs it: the URLs it prints answer while it runs, its incident pages
on-call and the page resolves, Ctrl-C ends it with status 0, and nothing it started is left behind.
Without root it says what it needs, status 2."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time

import pytest
from alertpath import require_e2e
from helpers import require_binary

from hpcwatch.harness.util import http_get

pytestmark = [pytest.mark.daemons, pytest.mark.slow]

DEMO = [sys.executable, "-m", "hpcwatch.cli", "demo"]
URL = re.compile(r"http://127\.0\.0\.1:\d+[^\s),#]*")


def leftovers(workdir: str) -> list[str]:
    """Processes whose command line, environment or working directory name the demo's work directory."""
    marker = workdir.encode()
    found = []
    for pid in (p for p in os.listdir("/proc") if p.isdigit() and int(p) != os.getpid()):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as fh:
                cmdline = fh.read()
            with open(f"/proc/{pid}/environ", "rb") as fh:
                environ = fh.read()
            cwd = os.readlink(f"/proc/{pid}/cwd").encode()
        except OSError:
            continue
        if marker in cmdline or marker in environ or cwd.startswith(marker):
            argv = cmdline.replace(b"\0", b" ").decode(errors="replace")
            found.append(f"{pid}: {argv[:200]}")
    return found


def _wait_for(lines: list[str], proc: subprocess.Popen, pattern: str, timeout: float) -> re.Match | None:
    """The first output line matching `pattern` (a regex), or None once the timeout passes or the demo exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for line in list(lines):
            m = re.search(pattern, line)
            if m:
                return m
        if proc.poll() is not None:
            return None
        time.sleep(0.5)
    return None


def test_demo_pages_then_resolves_then_tears_everything_down():
    """As a user runs it: the URLs it prints answer; its node failure pages on-call through the shipped
    Alertmanager routing (a PagerDuty trigger) and the page resolves; Ctrl-C (SIGINT) ends it with
    status 0 and nothing it started is left behind."""
    require_e2e()
    began = time.monotonic()
    proc = subprocess.Popen([*DEMO, "--incident-after", "10", "--duration", "600"], stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        assert _wait_for(lines, proc, r"^  Slurm ", 180), "demo not up:\n" + "".join(lines)
        up = time.monotonic() - began
        text = "".join(lines)
        urls = sorted(set(URL.findall(text)))
        assert len({u.split("/")[2] for u in urls}) == 4, f"expected Prometheus, Alertmanager and two agents: {urls}"
        for url in urls:
            assert http_get(url, timeout=10)[0] == 200, url
        workdir = re.search(r"work directory (\S+)", text).group(1)
        dashboards = re.search(r"dashboards\s+(\S+)/\*\.json", text).group(1)
        assert any(f.endswith(".json") for f in os.listdir(dashboards))
        # The page, then its resolve, as the demo prints what the on-call receiver got. Deadlines bound
        # the wait (group_wait 30 s, pages regrouped every minute); they are not speed assertions.
        assert _wait_for(lines, proc, r"incident: node \S+ failed", 120), "".join(lines)
        page = _wait_for(lines, proc, r"PAGE firing \(pagerduty to oncall\): JobSuccessSLO cluster=demo", 180)
        assert page, "no page on-call after the node failure:\n" + "".join(lines)
        resolved = _wait_for(lines, proc, r"PAGE resolved \(pagerduty to oncall\): JobSuccessSLO cluster=demo", 300)
        assert resolved, "the page never resolved:\n" + "".join(lines)
        paged_after = time.monotonic() - began
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=120) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
    reader.join(10)
    print(f"demo: up after {up:.1f}s, page resolved after {paged_after:.1f}s, exited after "
          f"{time.monotonic() - began:.1f}s")
    text = "".join(lines)
    assert "every daemon is gone" in text
    assert re.search(r"notifications received: .*PAGE firing x1.*PAGE resolved x1", text), text
    assert leftovers(workdir) == []
    assert not os.path.exists(workdir)
    for url in urls:
        with pytest.raises(OSError):
            http_get(url, timeout=5)


def test_demo_without_root_says_what_it_needs():
    # As root, the demo runs as nobody; otherwise as whoever runs the tests.
    drop = [require_binary("setpriv"), "--reuid=65534", "--regid=65534", "--clear-groups"] \
        if os.geteuid() == 0 else []
    proc = subprocess.run([*drop, *DEMO], capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert "needs root" in proc.stderr and "Debian 12" in proc.stderr
