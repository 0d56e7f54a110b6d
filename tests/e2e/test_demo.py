"""`hpcwatch demo` as a user runs it: the URLs it prints answer while it runs, `--duration` ends it
with status 0, and nothing it started is left behind. Without root it says what it needs, status 2."""

from __future__ import annotations

import os
import re
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


def test_demo_serves_its_urls_then_tears_everything_down():
    require_e2e()
    began = time.monotonic()
    proc = subprocess.Popen([*DEMO, "--duration", "40"], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stdout), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 120
        while not any(line.startswith("  Slurm") for line in list(lines)):
            assert proc.poll() is None, "demo exited before it was up:\n" + "".join(lines)
            assert time.monotonic() < deadline, "demo not up after 120s:\n" + "".join(lines)
            time.sleep(0.5)
        up = time.monotonic() - began
        text = "".join(lines)
        urls = sorted(set(URL.findall(text)))
        assert len({u.split("/")[2] for u in urls}) == 4, f"expected Prometheus, Alertmanager and two agents: {urls}"
        for url in urls:
            assert http_get(url, timeout=10)[0] == 200, url
        workdir = re.search(r"work directory (\S+)", text).group(1)
        dashboards = re.search(r"dashboards\s+(\S+)/\*\.json", text).group(1)
        assert any(f.endswith(".json") for f in os.listdir(dashboards))
        assert proc.wait(timeout=120) == 0, "".join(lines)
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait(60)
    reader.join(10)
    print(f"demo: up after {up:.1f}s, exited after {time.monotonic() - began:.1f}s")
    assert "every daemon is gone" in "".join(lines)
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
