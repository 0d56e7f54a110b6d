"""A Flux test instance (`flux start --test-size=N`) in a work directory, for tests and captures.

Flux is not packaged for Debian 12: build flux-core from source (its README's build steps, with
`PYTHON=/usr/bin/python3 ./configure --prefix=/opt/flux`); `flux` is looked up on PATH, then in
/opt/flux/bin and /usr/local/bin. N brokers run on this host under fake hostnames, with the instance
config (queues, resources) and an optional `flux-resource.toml` client config (e.g. hidden-queues).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence

from hpcwatch.harness.util import Daemon, DaemonError, MissingDaemon, Process, tail, wait_until

FLUX_DIRS = ("/opt/flux/bin", "/usr/local/bin")
HOW_TO_BUILD = ("Flux is not packaged for Debian 12: build flux-core from source as its README says "
                "(https://github.com/flux-framework/flux-core#readme: scripts/install-deps-deb.sh, ./autogen.sh, "
                "PYTHON=/usr/bin/python3 ./configure --prefix=/opt/flux, make -j, make install) "
                "and put /opt/flux/bin on PATH")


class FluxNotInstalled(MissingDaemon):
    """`flux` is not installed (the message says how to build it)."""

    def __init__(self) -> None:
        RuntimeError.__init__(self, f"flux not found: {HOW_TO_BUILD}")
        self.name = "flux"


def find_flux() -> str:
    """Path of the `flux` command; FluxNotInstalled when there is none."""
    found = shutil.which("flux")
    if found:
        return found
    for d in FLUX_DIRS:
        path = os.path.join(d, "flux")
        if os.access(path, os.X_OK):
            return path
    raise FluxNotInstalled()


class FluxInstance(Daemon):
    """`flux start --test-size=size` with fake hostnames `node[0-size-1]`, config from `config_toml`."""

    def __init__(self, workdir: str, config_toml: str = "", size: int = 4,
                 resource_client_toml: str = "") -> None:
        self.workdir = os.path.abspath(workdir)
        self.size = size
        self.hosts = f"node[0-{size - 1}]"
        self.config_toml = config_toml
        self.resource_client_toml = resource_client_toml
        self.conf_dir = os.path.join(self.workdir, "conf")
        self.xdg_dir = os.path.join(self.workdir, "xdg")
        self.uri_file = os.path.join(self.workdir, "uri")
        self.flux = ""
        self.uri = ""
        self.env: dict[str, str] = {}
        self._proc: Process | None = None

    def start(self) -> FluxInstance:
        self.flux = find_flux()
        os.makedirs(self.conf_dir, exist_ok=True)
        os.makedirs(os.path.join(self.xdg_dir, "flux"), exist_ok=True)
        with open(os.path.join(self.conf_dir, "instance.toml"), "w") as fh:
            fh.write(self.config_toml)
        if os.path.exists(self.uri_file):     # a previous instance's: wait for this one's
            os.remove(self.uri_file)
        if self.resource_client_toml:
            with open(os.path.join(self.xdg_dir, "flux", "flux-resource.toml"), "w") as fh:
                fh.write(self.resource_client_toml)
        inner = f"{self.flux} getattr local-uri > {self.uri_file}.tmp && mv {self.uri_file}.tmp {self.uri_file} " \
                "&& exec sleep 86400"
        argv = [self.flux, "start", f"--test-size={self.size}", f"--test-hosts={self.hosts}",
                "--test-exit-mode=leader", f"-o,--config-path={self.conf_dir}", "sh", "-c", inner]
        env = dict(os.environ, XDG_CONFIG_HOME=self.xdg_dir)
        env.pop("FLUX_URI", None)
        self._proc = Process("flux-start", argv, os.path.join(self.workdir, "flux-start.log"), env=env,
                             cwd=self.workdir).start()
        wait_until(lambda: os.path.exists(self.uri_file), 120, "flux instance URI", alive=self._proc.dead)
        with open(self.uri_file) as fh:
            self.uri = fh.read().strip()
        self.env = dict(env, FLUX_URI=self.uri)
        self.run(["queue", "start", "--all"], check=False)
        return self

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is None:
            return
        if self.uri:
            # Orderly shutdown first: brokers save nothing we need, but a clean exit leaves no rundir behind.
            subprocess.run([self.flux, "shutdown", "--quiet"], env=self.env, capture_output=True, timeout=60,
                           check=False)
        proc.stop(timeout=30)

    # -- clients --
    def run(self, args: Sequence[str], check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """`flux ARGS` against this instance."""
        proc = subprocess.run([self.flux, *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                              input=input, check=False)
        if check and proc.returncode != 0:
            raise DaemonError(f"flux {' '.join(args)} exited {proc.returncode}: {proc.stderr.strip()}\n"
                              f"{tail(os.path.join(self.workdir, 'flux-start.log'))}")
        return proc

    def submit(self, *args: str) -> str:
        """`flux submit ARGS` -> the job id (decimal, as `flux jobs --json` prints `id`)."""
        jobid = self.run(["submit", *args]).stdout.strip()
        return self.run(["job", "id", "--to=dec", jobid]).stdout.strip()

    def job(self, jobid: str) -> dict:
        """The job as `flux jobs --json` describes it."""
        return json.loads(self.run(["jobs", "--json", jobid]).stdout)

    def wait_state(self, jobid: str, states: Sequence[str] = ("INACTIVE",), timeout: float = 120) -> dict:
        """Poll until the job is in one of `states`; its `flux jobs --json` record."""
        seen: list[dict] = [{}]

        def check() -> bool:
            seen[0] = self.job(jobid)
            return seen[0].get("state") in states

        try:
            wait_until(check, timeout, f"job {jobid} to reach {list(states)}", interval=0.2)
        except DaemonError as exc:
            raise TimeoutError(f"{exc}; last state {seen[0].get('state')}") from None
        return seen[0]

    def broker_pid(self, rank: int) -> int:
        return int(self.run(["exec", "-r", str(rank), "flux", "getattr", "broker.pid"]).stdout.strip())

    def rank_state(self, rank: int) -> str:
        """The overlay status of one broker rank as rank 0 sees it (full, partial, offline, lost...)."""
        for line in self.run(["overlay", "status", "--no-pretty"], check=False).stdout.splitlines():
            head, _, state = line.partition(": ")
            if head.split(" ", 1)[0] == str(rank):
                return state.strip()
        return ""

    def wait_until(self, check, what: str, timeout: float = 120) -> None:
        wait_until(check, timeout, what, interval=0.2)

    def __repr__(self) -> str:
        return f"FluxInstance({self.workdir!r}, size={self.size}, uri={self.uri!r})"
