"""A single-host Slurm cluster with accounting, started from scratch in a work directory.

munged (own key and socket), MariaDB (own datadir, port and socket), slurmdbd, slurmctld and one or
more slurmd, all as root on 127.0.0.1 with free ports; clients get `SLURM_CONF` through `.env`.
Job cgroups are on (proctrack/task/jobacct_gather cgroup) when cgroup v1 memory is mounted.
The shipped prolog and epilog helpers (deploy/slurm/{prolog,epilog}.d) run for every job as an operator
installs them, writing into this cluster's `job_info_dir` and `gpu_map_dir` instead of /run/hpcwatch.
"""

from __future__ import annotations

import contextlib
import os
import re
import secrets
import shlex
import signal
import socket
import subprocess
import time
from collections.abc import Iterable, Sequence

from hpcwatch.harness.util import Daemon, DaemonError, Process, free_port, tail, wait_port, wait_until, which

CGROUP_V1_ROOT = "/sys/fs/cgroup"
# The shipped Slurm helpers, where this is a checkout (an installed wheel has no deploy/: no prologs then).
DEPLOY_SLURM = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                            "deploy", "slurm")
TERMINAL_STATES = ("COMPLETED", "FAILED", "CANCELLED", "TIMEOUT", "OUT_OF_MEMORY", "NODE_FAIL",
                   "PREEMPTED", "BOOT_FAIL", "DEADLINE")


class SlurmCommandError(subprocess.CalledProcessError):
    """A Slurm client exited non-zero; str() carries its stderr."""

    def __str__(self) -> str:
        return f"{super().__str__()}\nstderr: {(self.stderr or '').strip()}\nstdout: {(self.stdout or '').strip()}"


def cgroup_v1_memory() -> bool:
    """True when the cgroup v1 memory controller is mounted (job cgroups usable with cgroup/v1)."""
    return os.path.isfile(os.path.join(CGROUP_V1_ROOT, "memory", "memory.limit_in_bytes"))


def _merge_conf(defaults: Sequence[tuple[str, str]], extra: str) -> str:
    """slurm.conf text: defaults, each replaced by a same-named `Key=value` line from `extra`, then the rest."""
    overrides: dict[str, str] = {}
    rest: list[str] = []
    for line in extra.splitlines():
        m = re.match(r"\s*([A-Za-z]+)\s*=(.*)$", line)
        if m and m.group(1).lower() not in ("nodename", "partitionname", "include"):
            overrides[m.group(1).lower()] = line.strip()
        elif line.strip():
            rest.append(line.strip())
    out = []
    for key, value in defaults:
        out.append(overrides.pop(key.lower(), f"{key}={value}"))
    return "\n".join(out + list(overrides.values()) + rest) + "\n"


class SlurmCluster(Daemon):
    """munge + MariaDB + slurmdbd + slurmctld + `nodes` slurmd on this host; partitions debug (default) and gpu."""

    def __init__(self, workdir: str, cluster_name: str = "hpcw", nodes: int = 1, cpus: int | None = None,
                 extra_conf: str = "") -> None:
        self.workdir = os.path.abspath(workdir)
        self.cluster_name = cluster_name
        self.cpus = cpus or os.cpu_count() or 1
        self.extra_conf = extra_conf
        suffix = secrets.token_hex(3)
        self.node_names = [f"hpcw{suffix}{'' if nodes == 1 else i}" for i in range(nodes)]
        self.node_name = self.node_names[0]
        self.conf_dir = os.path.join(self.workdir, "etc")
        self.conf_path = os.path.join(self.conf_dir, "slurm.conf")
        self.log_dir = os.path.join(self.workdir, "log")
        self.jobs_dir = os.path.join(self.workdir, "jobs")
        # Where the shipped prolog helpers write (HPCWATCH_JOB_INFO_DIR, HPCWATCH_GPU_MAP_DIR).
        self.job_info_dir = os.path.join(self.workdir, "run", "hpcwatch", "jobs")
        self.gpu_map_dir = os.path.join(self.workdir, "run", "hpcwatch", "gpu-jobs")
        self.munge_socket = os.path.join(self.workdir, "munge", "munge.socket")
        self.mysql_socket = os.path.join(self.workdir, "mysql", "mysqld.sock")
        self.ports = {"mysql": free_port(), "dbd": free_port(), "ctld": free_port()}
        self.slurmd_ports = [free_port() for _ in self.node_names]
        self.cgroups = cgroup_v1_memory()
        self.env = dict(os.environ, SLURM_CONF=self.conf_path, LC_ALL="C", SLURM_TIME_FORMAT="standard")
        self._procs: dict[str, Process] = {}
        self.startup_seconds: float | None = None
        self.startup_phases: dict[str, float] = {}  # seconds each start-up phase took
        self._phase_began = 0.0

    # -- public helpers --
    def bin(self, name: str) -> str:
        """Path of a Slurm (or helper) binary; MissingDaemon says which Debian package has it."""
        return which(name)

    def run(self, argv: Sequence[str], check: bool = True, timeout: float = 60,
            input: str | None = None) -> subprocess.CompletedProcess:
        """Run a Slurm client command against this cluster (argv[0] is looked up with bin())."""
        argv = [self.bin(argv[0]), *argv[1:]]
        # errors="replace": sacctmgr cuts columns by bytes, which can split a UTF-8 account name.
        proc = subprocess.run(argv, env=self.env, capture_output=True, text=True, errors="replace",
                              timeout=timeout, input=input, check=False)
        if check and proc.returncode != 0:
            raise SlurmCommandError(proc.returncode, argv, proc.stdout, proc.stderr)
        return proc

    def sbatch(self, script: str | None = None, *extra_args: str, wrap: str | None = None) -> int:
        """Submit a batch script (text) or a `--wrap` command; returns the job id."""
        if (script is None) == (wrap is None):
            raise ValueError("sbatch needs exactly one of a script text or wrap=")
        argv = ["sbatch", "--parsable", f"--chdir={self.jobs_dir}", f"--output={self.jobs_dir}/slurm-%j.out",
                *extra_args]
        if wrap is not None:
            argv.append(f"--wrap={wrap}")
        out = self.run(argv, input=script).stdout.strip()
        return int(out.split(";")[0])

    def add_names(self, accounts: Iterable[str] = (), qos: Iterable[str] = (), partitions: Iterable[str] = ()) -> None:
        """Create accounts (root a user of each), QOS, and partitions on this cluster's node, names as given."""
        for a in accounts:
            self.run(["sacctmgr", "-i", "add", "account", a])
            self.run(["sacctmgr", "-i", "add", "user", "root", f"account={a}"])
        for q in qos:
            self.run(["sacctmgr", "-i", "add", "qos", q])
        for p in partitions:
            self.run(["scontrol", "create", f"PartitionName={p}", f"Nodes={self.node_name}", "State=UP"])

    def job_state(self, jobid: int) -> str | None:
        """The job's state from squeue, or from accounting once it has left the queue; None if unknown."""
        q = self.run(["squeue", "-h", "-j", str(jobid), "-o", "%T"], check=False)
        state = q.stdout.strip()
        if q.returncode == 0 and state:
            return state
        a = self.run(["sacct", "-n", "-X", "-P", "-j", str(jobid), "-o", "State"], check=False)
        lines = a.stdout.split()
        return lines[0].split()[0] if a.returncode == 0 and lines else None

    def wait_job(self, jobid: int, states: Iterable[str] = TERMINAL_STATES, timeout: float = 60) -> str:
        """Wait until the job is in one of `states` (default: any terminal state); returns that state."""
        wanted = {s.upper() for s in states}
        seen: list[str | None] = [None]

        def check() -> bool:
            seen[0] = self.job_state(jobid)
            return seen[0] is not None and seen[0].split()[0].rstrip("+") in wanted

        try:
            wait_until(check, timeout, f"job {jobid} to reach {sorted(wanted)}", interval=0.2)
        except DaemonError as exc:
            raise TimeoutError(f"{exc}; last state {seen[0]}\n{tail(self._log('slurmctld'))}") from None
        return seen[0].split()[0].rstrip("+")

    # -- lifecycle --
    def _mark(self, phase: str) -> None:
        now = time.monotonic()
        self.startup_phases[phase] = now - self._phase_began
        self._phase_began = now

    def start(self) -> SlurmCluster:
        began = self._phase_began = time.monotonic()
        try:
            for d in (self.conf_dir, self.log_dir, self.jobs_dir, os.path.dirname(self.munge_socket),
                      os.path.dirname(self.mysql_socket), os.path.join(self.workdir, "state"),
                      os.path.join(self.workdir, "spool"), os.path.join(self.workdir, "run")):
                os.makedirs(d, exist_ok=True)
            os.chmod(self.workdir, 0o755)  # munged refuses group/other-writable parents of its socket
            install = self._mariadb_install()
            self._start_munge()
            self._write_confs()
            self._mark("munge")
            if install.wait(60) != 0:
                raise DaemonError(f"mariadb-install-db failed:\n{tail(self._log('mariadb-install'))}")
            self._mark("mariadb-install-db")
            self._start_mysql()
            self._mark("mysqld")
            self.start_dbd()
            self.run(["sacctmgr", "-i", "add", "cluster", self.cluster_name])
            self._mark("slurmdbd")
            self.start_ctld()
            self._mark("slurmctld")
            for name, port in zip(self.node_names, self.slurmd_ports):
                self._start_slurmd(name, port)
            wait_until(self._nodes_idle, 60, "slurmd nodes idle", interval=0.1, alive=self._any_dead)
            self._mark("slurmd")
        except BaseException:
            self.stop()
            raise
        self.startup_seconds = time.monotonic() - began
        return self

    def stop(self) -> None:
        """Cancel jobs, stop every daemon, kill job processes left behind and remove our job cgroups."""
        if "slurmctld" in self._procs and any(n.startswith("slurmd.") for n in self._procs):
            with contextlib.suppress(Exception):
                self._cancel_all()
        for name in [n for n in self._procs if n.startswith("slurmd")] + ["slurmctld", "slurmdbd", "mysqld",
                                                                          "munged"]:
            proc = self._procs.pop(name, None)
            if proc is not None:
                proc.stop()
        self._kill_leftovers()
        self._remove_cgroups()

    # -- control of single daemons (failover tests) --
    def start_ctld(self) -> None:
        proc = self._spawn("slurmctld", [self.bin("slurmctld"), "-D", "-i"])
        wait_port(self.ports["ctld"], 30, alive=proc.dead)
        wait_until(lambda: self.run(["scontrol", "ping"], check=False, timeout=10).stdout.count("UP") > 0, 30,
                   "scontrol ping", alive=proc.dead)

    def stop_ctld(self) -> None:
        proc = self._procs.pop("slurmctld", None)
        if proc:
            proc.stop()

    def start_dbd(self) -> None:
        proc = self._spawn("slurmdbd", [self.bin("slurmdbd"), "-D"])
        wait_port(self.ports["dbd"], 30, alive=proc.dead)

    def stop_dbd(self) -> None:
        proc = self._procs.pop("slurmdbd", None)
        if proc:
            proc.stop()

    # -- internals --
    def _log(self, name: str) -> str:
        return os.path.join(self.log_dir, f"{name}.log")

    def _spawn(self, name: str, argv: Sequence[str]) -> Process:
        proc = Process(name, argv, self._log(name + ".stdout"), env=self.env, cwd=self.workdir).start()
        self._procs[name] = proc
        return proc

    def _any_dead(self) -> str | None:
        for proc in self._procs.values():
            dead = proc.dead()
            if dead:
                return dead + "\n" + tail(self._log(proc.name))
        return None

    def _mysql_tmp(self) -> str:
        # Our own tmpdir: bootstraps running at once in a shared /tmp trip over each other's temp tables.
        path = os.path.join(self.workdir, "mysql", "tmp")
        os.makedirs(path, exist_ok=True)
        return path

    def _mariadb_install(self) -> subprocess.Popen:
        datadir = os.path.join(self.workdir, "mysql", "data")
        argv = [which("mariadb-install-db", "mysql_install_db"), "--no-defaults", f"--datadir={datadir}",
                "--user=root", "--auth-root-authentication-method=normal", "--skip-test-db",
                "--skip-name-resolve", f"--tmpdir={self._mysql_tmp()}"]
        with open(self._log("mariadb-install"), "ab") as log:
            return subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                    start_new_session=True)

    def _start_mysql(self) -> None:
        datadir = os.path.join(self.workdir, "mysql", "data")
        # Grant tables are skipped: the server listens on loopback only and lives as long as the test.
        proc = self._spawn("mysqld", [
            which("mariadbd", "mysqld"), "--no-defaults", f"--datadir={datadir}", "--user=root",
            f"--socket={self.mysql_socket}", f"--port={self.ports['mysql']}", "--bind-address=127.0.0.1",
            f"--pid-file={self.workdir}/mysql/mysqld.pid", f"--log-error={self._log('mysqld')}",
            "--skip-grant-tables", "--skip-name-resolve", f"--tmpdir={self._mysql_tmp()}",
            "--innodb-buffer-pool-size=64M",
            "--innodb-log-file-size=16M", "--innodb-flush-log-at-trx-commit=0", "--skip-log-bin"])
        wait_port(self.ports["mysql"], 60, alive=proc.dead)

    def _start_munge(self) -> None:
        key = os.path.join(self.workdir, "munge", "munge.key")
        with open(key, "wb") as fh:
            fh.write(secrets.token_bytes(1024))
        os.chmod(key, 0o400)
        os.chmod(os.path.dirname(key), 0o700)
        mdir = os.path.dirname(key)
        proc = self._spawn("munged", [
            self.bin("munged"), "--foreground", "--force", f"--socket={self.munge_socket}",
            f"--key-file={key}", f"--pid-file={mdir}/munged.pid", f"--log-file={self._log('munged')}",
            f"--seed-file={mdir}/munged.seed"])
        wait_until(lambda: os.path.exists(self.munge_socket), 15, "munged socket", alive=proc.dead)

    def _write_confs(self) -> None:
        w = self.workdir
        dbd = "\n".join([
            "AuthType=auth/munge", f"AuthInfo=socket={self.munge_socket}", "DbdHost=localhost",
            "DbdAddr=127.0.0.1", f"DbdPort={self.ports['dbd']}", "SlurmUser=root",
            "StorageType=accounting_storage/mysql", "StorageHost=127.0.0.1",
            f"StoragePort={self.ports['mysql']}", "StorageUser=root", "StorageLoc=slurm_acct_db",
            f"LogFile={self._log('slurmdbd')}", f"PidFile={w}/run/slurmdbd.pid", "DebugLevel=info"]) + "\n"
        self._write(os.path.join(self.conf_dir, "slurmdbd.conf"), dbd, 0o600)
        if self.cgroups:
            plugins = [("ProctrackType", "proctrack/cgroup"), ("TaskPlugin", "task/cgroup"),
                       ("JobAcctGatherType", "jobacct_gather/cgroup")]
            self._write(os.path.join(self.conf_dir, "cgroup.conf"),
                        "CgroupPlugin=cgroup/v1\nCgroupAutomount=yes\nConstrainCores=yes\n"
                        "ConstrainRAMSpace=yes\n", 0o644)
        else:
            plugins = [("ProctrackType", "proctrack/linuxproc"), ("TaskPlugin", "task/none"),
                       ("JobAcctGatherType", "jobacct_gather/linux")]
        host = socket.gethostname().split(".")[0]
        mem_mb = max(512, _mem_total_mb() - 1024)
        defaults = [
            ("ClusterName", self.cluster_name), ("SlurmctldHost", f"{host}(127.0.0.1)"),
            ("SlurmctldPort", str(self.ports["ctld"])), ("SlurmUser", "root"), ("SlurmdUser", "root"),
            ("AuthType", "auth/munge"), ("AuthInfo", f"socket={self.munge_socket}"), *plugins,
            ("AccountingStorageType", "accounting_storage/slurmdbd"), ("AccountingStorageHost", "127.0.0.1"),
            ("AccountingStoragePort", str(self.ports["dbd"])),
            # The munge socket for connections to slurmdbd is AccountingStoragePass, not AuthInfo.
            ("AccountingStoragePass", self.munge_socket), ("JobCompType", "jobcomp/none"),
            ("SchedulerType", "sched/backfill"), ("SelectType", "select/cons_tres"),
            ("SelectTypeParameters", "CR_Core_Memory"), ("ReturnToService", "2"), ("MinJobAge", "5"),
            ("KillWait", "2"), ("InactiveLimit", "0"), ("Waittime", "0"), ("MaxJobCount", "10000"),
            ("MaxArraySize", "1001"), ("MpiDefault", "none"), ("StateSaveLocation", f"{w}/state"),
            ("SlurmdSpoolDir", f"{w}/spool/%n"), ("SlurmctldPidFile", f"{w}/run/slurmctld.pid"),
            ("SlurmdPidFile", f"{w}/run/slurmd.%n.pid"), ("SlurmctldLogFile", self._log("slurmctld")),
            ("SlurmdLogFile", f"{self.log_dir}/slurmd.%n.log"), ("SlurmctldDebug", "info"),
            ("SlurmdDebug", "info"), ("JobAcctGatherFrequency", "5"), *self._prologs(),
        ]
        nodes = ",".join(self.node_names)
        tail_lines = [f"NodeName={n} NodeHostname=localhost NodeAddr=127.0.0.1 Port={p} CPUs={self.cpus} "
                      f"RealMemory={mem_mb} State=UNKNOWN" for n, p in zip(self.node_names, self.slurmd_ports)]
        tail_lines += [f"PartitionName=debug Nodes={nodes} Default=YES MaxTime=INFINITE State=UP",
                       f"PartitionName=gpu Nodes={nodes} MaxTime=60 State=UP"]
        text = _merge_conf(defaults, self.extra_conf)
        self._write(self.conf_path, text + "\n".join(tail_lines) + "\n", 0o644)
        for n in self.node_names:
            os.makedirs(os.path.join(w, "spool", n), exist_ok=True)

    def _prologs(self) -> list[tuple[str, str]]:
        """Prolog= and Epilog= for the shipped helpers, each behind a wrapper naming this cluster's directories
        (slurmd hands prologs no environment of its own); [] where deploy/slurm is not there."""
        out = []
        for key, kind in (("Prolog", "prolog.d"), ("Epilog", "epilog.d")):
            shipped = os.path.join(DEPLOY_SLURM, kind)
            scripts = sorted(f for f in os.listdir(shipped) if f.endswith(".sh")) if os.path.isdir(shipped) else []
            if not scripts:
                continue
            wrappers = os.path.join(self.conf_dir, kind)
            os.makedirs(wrappers, exist_ok=True)
            for name in scripts:
                self._write(os.path.join(wrappers, name), "#!/bin/sh\n"
                            f"HPCWATCH_JOB_INFO_DIR={shlex.quote(self.job_info_dir)} "
                            f"HPCWATCH_GPU_MAP_DIR={shlex.quote(self.gpu_map_dir)} "
                            f"exec /bin/sh {shlex.quote(os.path.join(shipped, name))}\n", 0o755)
            out.append((key, os.path.join(wrappers, "*")))
        return out

    @staticmethod
    def _write(path: str, text: str, mode: int) -> None:
        with open(path, "w") as fh:
            fh.write(text)
        os.chmod(path, mode)

    def _start_slurmd(self, name: str, port: int) -> None:
        self._spawn(f"slurmd.{name}", [self.bin("slurmd"), "-D", "-N", name])

    def _nodes_idle(self) -> bool:
        out = self.run(["sinfo", "-h", "-N", "-o", "%N %T"], check=False, timeout=10).stdout.split("\n")
        states = {}
        for line in out:
            parts = line.split()
            if len(parts) == 2:
                states[parts[0]] = parts[1]
        return all(states.get(n, "").rstrip("*") in ("idle", "mixed", "allocated") for n in self.node_names)

    def _cancel_all(self) -> None:
        out = self.run(["squeue", "-h", "-o", "%A"], check=False, timeout=10).stdout.split()
        if not out:
            return
        self.run(["scancel", *out], check=False, timeout=10)
        with contextlib.suppress(DaemonError):
            wait_until(lambda: not self.run(["squeue", "-h", "-t", "R,CG", "-o", "%A"], check=False,
                                            timeout=10).stdout.strip(), 10, "jobs cancelled", interval=0.2)

    def _our_pids(self) -> set[int]:
        """Processes that belong to this cluster: in our job cgroups, or started with our SLURM_CONF."""
        pids: set[int] = set()
        for cg in self._cgroup_dirs():
            for root, _dirs, files in os.walk(cg):
                if "cgroup.procs" in files:
                    with contextlib.suppress(OSError, ValueError), open(os.path.join(root, "cgroup.procs")) as fh:
                        pids.update(int(p) for p in fh.read().split())
        marker = f"SLURM_CONF={self.conf_path}".encode()
        for entry in os.listdir("/proc"):
            if entry.isdigit() and int(entry) != os.getpid():
                with contextlib.suppress(OSError), open(f"/proc/{entry}/environ", "rb") as fh:
                    if marker in fh.read().split(b"\0"):
                        pids.add(int(entry))
        pids.discard(os.getpid())
        return pids

    def _kill_leftovers(self) -> None:
        for _ in range(3):
            pids = self._our_pids()
            if not pids:
                return
            for pid in pids:
                with contextlib.suppress(ProcessLookupError, PermissionError):
                    os.kill(pid, signal.SIGKILL)
            time.sleep(0.2)

    def _cgroup_dirs(self) -> list[str]:
        if not os.path.isdir(CGROUP_V1_ROOT):
            return []
        out = []
        for controller in sorted(os.listdir(CGROUP_V1_ROOT)):
            for n in self.node_names:
                path = os.path.join(CGROUP_V1_ROOT, controller, f"slurm_{n}")
                if os.path.isdir(path):
                    out.append(path)
        return out

    def _remove_cgroups(self) -> None:
        for cg in self._cgroup_dirs():
            for root, dirs, _files in os.walk(cg, topdown=False):
                for d in dirs:
                    with contextlib.suppress(OSError):
                        os.rmdir(os.path.join(root, d))
            with contextlib.suppress(OSError):
                os.rmdir(cg)

    def __repr__(self) -> str:
        return f"SlurmCluster({self.workdir!r}, nodes={self.node_names}, conf={shlex.quote(self.conf_path)})"


def _mem_total_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    return 2048
