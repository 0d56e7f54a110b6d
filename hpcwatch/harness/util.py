"""Small helpers the daemon harness shares: free ports, readiness polling, finding Debian binaries,
and one supervised child process per daemon (own process group, log file, clean stop)."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping, Sequence

HOW_TO_GET = "install Debian packages {pkgs}: `make deps` as root"

# Where Debian puts daemons that are not on a normal user's PATH.
_EXTRA_DIRS = ("/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/lib/postgresql", "/usr/libexec",
               "/usr/lib/prometheus", "/usr/lib/slurm-wlm", "/usr/lib/x86_64-linux-gnu/slurm-wlm")

# Debian package that ships each binary, for the message of MissingDaemon.
PACKAGES = {
    "munged": "munge", "mariadbd": "mariadb-server", "mysqld": "mariadb-server",
    "mariadb-install-db": "mariadb-server", "mysql_install_db": "mariadb-server", "mariadb": "mariadb-client",
    "slurmctld": "slurmctld", "slurmd": "slurmd", "slurmdbd": "slurmdbd", "sbatch": "slurm-client",
    "sacctmgr": "slurm-client", "squeue": "slurm-client", "scontrol": "slurm-client", "sinfo": "slurm-client",
    "scancel": "slurm-client", "sacct": "slurm-client", "srun": "slurm-client",
    "prometheus": "prometheus", "promtool": "prometheus",
    "prometheus-alertmanager": "prometheus-alertmanager", "amtool": "prometheus-alertmanager",
    "prometheus-pushgateway": "prometheus-pushgateway",
    "victoria-metrics": "victoria-metrics", "vmalert": "victoria-metrics", "vmagent": "victoria-metrics",
    "prometheus-node-exporter": "prometheus-node-exporter",
}


class MissingDaemon(RuntimeError):
    """A daemon or client binary the harness needs is not installed."""

    def __init__(self, name: str) -> None:
        self.name = name
        pkg = PACKAGES.get(name, name)
        super().__init__(f"{name} not found: " + HOW_TO_GET.format(pkgs=pkg))


class DaemonError(RuntimeError):
    """A daemon did not start or did not become ready; the message carries the tail of its log."""


def which(*names: str) -> str:
    """Path of the first of `names` found on PATH or in the directories Debian uses for daemons."""
    for name in names:
        found = shutil.which(name)
        if found:
            return found
        for d in _EXTRA_DIRS:
            path = os.path.join(d, name)
            if os.path.isfile(path) and os.access(path, os.X_OK):
                return path
    raise MissingDaemon(names[0])


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (the kernel picks it; a race with others is unlikely)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def http_get(url: str, timeout: float = 5.0) -> tuple[int, bytes]:
    """(status, body) of a GET; HTTP errors return their status rather than raising."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05,
               alive: Callable[[], str | None] | None = None) -> None:
    """Poll `check` until it returns True; DaemonError after `timeout` or when `alive` reports a death."""
    deadline = time.monotonic() + timeout
    last_error = ""
    while True:
        try:
            if check():
                return
        except Exception as exc:  # noqa: BLE001 - not ready yet; the reason goes into the timeout message
            last_error = f" (last check raised {type(exc).__name__}: {exc})"
        if alive is not None:
            dead = alive()
            if dead:
                raise DaemonError(f"{what}: {dead}")
        if time.monotonic() > deadline:
            raise DaemonError(f"{what}: not ready after {timeout:g}s{last_error}")
        time.sleep(interval)
        interval = min(interval * 1.5, 0.5)


def wait_http(url: str, timeout: float = 30.0, alive: Callable[[], str | None] | None = None) -> None:
    """Wait until `url` answers 200."""
    wait_until(lambda: http_get(url, timeout=2.0)[0] == 200, timeout, f"GET {url}", alive=alive)


def wait_port(port: int, timeout: float = 30.0, host: str = "127.0.0.1",
              alive: Callable[[], str | None] | None = None) -> None:
    """Wait until something accepts TCP connections on host:port."""
    def check() -> bool:
        with socket.create_connection((host, port), timeout=1.0):
            return True
    wait_until(check, timeout, f"connect {host}:{port}", alive=alive)


def tail(path: str, lines: int = 30) -> str:
    """The last lines of a log file, or a note that it is empty or missing."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 16384))
            text = fh.read().decode("utf-8", "replace")
    except OSError:
        return f"(no log at {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"(empty log {path})"


class Process:
    """One child daemon in its own process group, stdout/stderr to a log file; stop() kills the group."""

    def __init__(self, name: str, argv: Sequence[str], log_path: str, env: Mapping[str, str] | None = None,
                 cwd: str | None = None) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_path = log_path
        self.env = dict(env) if env is not None else None
        self.cwd = cwd
        self.proc: subprocess.Popen | None = None

    def start(self) -> Process:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(self.argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env=self.env, cwd=self.cwd, start_new_session=True)
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def dead(self) -> str | None:
        """None while running; otherwise why it stopped, with the tail of its log."""
        if self.proc is None:
            return f"{self.name} was never started"
        rc = self.proc.poll()
        if rc is None:
            return None
        return f"{self.name} exited with status {rc}; {self.log_path}:\n{tail(self.log_path)}"

    def failure(self, reason: str) -> DaemonError:
        return DaemonError(f"{self.name}: {reason}\n{self.log_path}:\n{tail(self.log_path)}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM the process group, SIGKILL what is left after `timeout`; safe to call twice."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        kill_group(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pass
        # The leader may be gone while children it forked into the group are still alive.
        kill_group(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(5)


def kill_group(pgid: int, sig: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


class Daemon:
    """Base for harness daemons: start()/stop() and `with` support; stop() also runs when start() fails."""

    def start(self):  # pragma: no cover - overridden
        raise NotImplementedError

    def stop(self) -> None:  # pragma: no cover - overridden
        raise NotImplementedError

    def __enter__(self):
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
