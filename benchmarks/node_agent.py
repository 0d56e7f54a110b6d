"""Node agent vs node_exporter: wall time and CPU per scrape, series count, our/their ratios.

Starts `hpcwatch serve --agent node` (node collector, plus jobs when `serve --help` lists it) and
/usr/bin/prometheus-node-exporter on free loopback ports, scrapes them alternately over kept-alive
connections with `Accept-Encoding: gzip` (as Prometheus does), and reads each server's CPU time
from /proc/<pid>/stat. With the Slurm harness importable and running as root, real jobs
(`sleep 600`) run during the measurement; otherwise it says so.

    .venv/bin/python benchmarks/node_agent.py [--scrapes 200] [--no-slurm] [--jobs 4]
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
HPCWATCH = os.path.join(ROOT, ".venv", "bin", "hpcwatch")
NODE_EXPORTER = "/usr/bin/prometheus-node-exporter"
HZ = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, from /proc/<pid>/stat (fields 14 and 15, after the comm in parentheses)."""
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / HZ


def serve_lists_collector(name: str) -> tuple[bool, str]:
    """Whether `hpcwatch serve --help-all` offers --collector.<name>, and if not, why."""
    proc = subprocess.run([HPCWATCH, "serve", "--help-all"], capture_output=True, text=True, timeout=60,
                          check=False)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or ["no output"])[-1]
        return False, f"`hpcwatch serve --help-all` failed ({last})"
    if f"collector.{name}\n" not in proc.stdout and f"--collector.{name} " not in proc.stdout.replace("\n", " "):
        return False, f"`hpcwatch serve --help-all` does not list --collector.{name}"
    return True, ""


class Target:
    """One server under test and a kept-alive connection to its /metrics."""

    def __init__(self, name: str, argv: list[str], port: int, fresh: bool = False) -> None:
        self.name, self.argv, self.port, self.fresh = name, argv, port, fresh
        # stderr to a file, not a pipe nobody drains: a server logging every scrape (node_exporter's systemd
        # collector without D-Bus) would block on a full pipe and stop answering.
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=self.log)
        self.conn: http.client.HTTPConnection | None = None
        self.walls: list[float] = []
        self.body = b""

    def wait_ready(self, limit: float = 60.0) -> None:
        end = time.monotonic() + limit
        while time.monotonic() < end:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise SystemExit(f"{self.name} exited: {self.log.read().decode(errors='replace')[-2000:]}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                self.scrape()
                return
            time.sleep(0.2)
        raise SystemExit(f"{self.name} not ready on port {self.port}")

    def scrape(self) -> float:
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        t0 = time.perf_counter()
        try:
            self.conn.request("GET", "/metrics", headers={"Accept-Encoding": "gzip"})
            resp = self.conn.getresponse()
            body = resp.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = None
            raise
        wall = time.perf_counter() - t0
        if self.fresh:
            self.conn.close()
            self.conn = None
        if resp.status != 200:
            raise SystemExit(f"{self.name}: HTTP {resp.status}")
        if resp.getheader("Content-Encoding") == "gzip":
            import gzip
            body = gzip.decompress(body)
        self.body = body
        return wall

    def series(self) -> int:
        return sum(1 for line in self.body.decode().splitlines() if line and not line.startswith("#"))

    def stop(self) -> None:
        if self.conn is not None:
            self.conn.close()
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        self.log.close()


@contextlib.contextmanager
def slurm_jobs(count: int, wanted: bool) -> Iterator[str]:
    """Real Slurm jobs for the measurement when the harness and root are there; yields a description."""
    if not wanted:
        yield "no Slurm jobs (--no-slurm)"
        return
    try:
        from hpcwatch.harness.slurm import SlurmCluster
    except ImportError as exc:
        yield f"no Slurm jobs (harness not importable: {exc})"
        return
    if os.geteuid() != 0:
        yield "no Slurm jobs (not running as root)"
        return
    with tempfile.TemporaryDirectory(prefix="hpcw-bench-") as work, SlurmCluster(work) as cluster:
        ids = [cluster.sbatch(wrap="sleep 600") for _ in range(count)]
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not any(cluster.job_state(j) == "RUNNING" for j in ids):
            time.sleep(0.5)
        states = [cluster.job_state(j) for j in ids]
        yield f"{count} Slurm jobs `sleep 600` submitted (states: {', '.join(str(s) for s in states)})"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--scrapes", type=int, default=200, help="scrapes of each server (default 200)")
    p.add_argument("--warmup", type=int, default=10, help="unmeasured scrapes first (default 10)")
    p.add_argument("--jobs", type=int, default=4, help="Slurm jobs to run during the measurement (default 4)")
    p.add_argument("--fresh-connections", action="store_true",
                   help="a new TCP connection per scrape (Prometheus keeps them alive; this isolates server time)")
    p.add_argument("--no-slurm", action="store_true", help="do not start the Slurm harness")
    args = p.parse_args()

    with_jobs, why_no_jobs = serve_lists_collector("jobs")
    ours_port, theirs_port = free_port(), free_port()
    ours_argv = [HPCWATCH, "serve", "--agent", "node", "--web.listen-address", f"127.0.0.1:{ours_port}",
                 "--collector.node"] + (["--collector.jobs"] if with_jobs else [])
    theirs_argv = [NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{theirs_port}"]

    with slurm_jobs(args.jobs, not args.no_slurm) as jobs_note:
        ours = Target("hpcwatch", ours_argv, ours_port, args.fresh_connections)
        theirs = Target("node_exporter", theirs_argv, theirs_port, args.fresh_connections)
        try:
            for t in (ours, theirs):
                t.wait_ready()
            for _ in range(args.warmup):
                ours.scrape()
                theirs.scrape()
            cpu0 = {t.name: cpu_seconds(t.proc.pid) for t in (ours, theirs)}
            for i in range(args.scrapes):
                pair = (ours, theirs) if i % 2 == 0 else (theirs, ours)  # alternate who goes first
                for t in pair:
                    t.walls.append(t.scrape())
            cpu = {t.name: (cpu_seconds(t.proc.pid) - cpu0[t.name]) / args.scrapes for t in (ours, theirs)}
            active = sorted({line.split('collector="', 1)[1].split('"', 1)[0]
                             for line in ours.body.decode().splitlines()
                             if line.startswith("hpcwatch_collector_success{")})
        finally:
            ours.stop()
            theirs.stop()

    rows = []
    for t in (ours, theirs):
        rows.append((t.name, percentile(t.walls, 0.5) * 1e3, percentile(t.walls, 0.99) * 1e3,
                     statistics.fmean(t.walls) * 1e3, cpu[t.name] * 1e3, t.series()))
    conn = "a new connection per scrape" if args.fresh_connections else "kept-alive connections"
    print(f"# {args.scrapes} scrapes each, alternating, gzip, {conn}; {jobs_note}")
    print(f"# ours:   {' '.join(ours_argv)}")
    print(f"#         collectors serving: {', '.join(active) or 'none'}")
    if not with_jobs:
        print(f"#         --collector.jobs not passed: {why_no_jobs}"
              f"{'; jobs serves anyway, on by default for the node agent' if 'jobs' in active else ''}")
    print(f"# theirs: {' '.join(theirs_argv)}")
    print(f"{'server':<14} {'p50 ms':>8} {'p99 ms':>8} {'mean ms':>8} {'CPU ms/scrape':>14} {'series':>7}")
    for name, p50, p99, mean, cpu_ms, series in rows:
        print(f"{name:<14} {p50:>8.2f} {p99:>8.2f} {mean:>8.2f} {cpu_ms:>14.2f} {series:>7}")
    (_, p50a, p99a, _, cpua, sa), (_, p50b, p99b, _, cpub, sb) = rows
    print(f"{'ours/theirs':<14} {p50a / p50b:>8.2f} {p99a / p99b:>8.2f} {'':>8} {cpua / cpub:>14.2f} "
          f"{sa / sb:>7.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
