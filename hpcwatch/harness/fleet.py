"""A simulated fleet: thousands of virtual node agents (and a cluster agent per cluster) in one asyncio process.

Each exposition is our own collectors' output on the repository's fixture trees, rendered once
(hpcwatch.harness.fleetdata) and varied per node at scrape time: every virtual node listens on its own
loopback address (127.10.x.y, one port for all), so the shipped relabelling gives each its own `node`;
gauges carry a fixed per-node offset, counters grow linearly in time at a per-node rate (so rates, and
ratios of rates, come out the same whichever scraper took the samples), and each node runs `jobs`
job slots whose jobs start and end every `job_seconds`, so per-job series churn. The process counts
its own CPU per scrape (`GET /fleet/stats` on the control port) so a measurement can show the
simulator is not what limits it.

    python -m hpcwatch.harness.fleet --nodes 1000 --targets-dir DIR [--port P] [--control-port C]
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import resource
import signal
import sys
import time
from collections.abc import Callable, Sequence

from hpcwatch.harness.fleetdata import Template, cluster_template, node_template
from hpcwatch.harness.util import Daemon, Process, free_port, http_get, wait_http

ADDRESS_PREFIX = "127.10"  # 127.10.0.1 ... 127.10.255.254: up to 65,024 virtual nodes
CLUSTER_PREFIX = "127.11"
_MAX_REQUEST = 16384


def address(i: int, prefix: str = ADDRESS_PREFIX) -> str:
    """The loopback address of virtual node `i` (0-based)."""
    return f"{prefix}.{i // 254}.{i % 254 + 1}"


def write_targets(directory: str, cluster: str, nodes: Sequence[str], cluster_agents: Sequence[str]) -> None:
    """file_sd files for the shipped prometheus.yml globs (targets/hpcwatch-{node,cluster}-<cluster>.yml)."""
    import yaml
    os.makedirs(directory, exist_ok=True)
    for job, targets in (("node", nodes), ("cluster", cluster_agents)):
        tmp = os.path.join(directory, f".hpcwatch-{job}-{cluster}.yml.tmp")
        with open(tmp, "w") as fh:
            yaml.safe_dump([{"targets": list(targets), "labels": {"cluster": cluster}}], fh)
        os.replace(tmp, os.path.join(directory, f"hpcwatch-{job}-{cluster}.yml"))


class FleetServer:
    """The asyncio side: one listening socket per virtual node, a minimal HTTP/1.1 keep-alive responder."""

    def __init__(self, nodes: int, port: int, jobs: int, job_seconds: float, cluster: str) -> None:
        self.nodes, self.port, self.jobs, self.job_seconds, self.cluster = nodes, port, jobs, job_seconds, cluster
        self.node = node_template()
        self.cluster_agent = cluster_template(cluster)
        self.t0 = time.time()
        self.scrapes = [0] * (nodes + 1)  # the last slot counts the cluster agent
        self.bytes = 0
        self.cpu0 = time.process_time()
        self.servers: list[asyncio.base_events.Server] = []

    def body(self, i: int, now: float) -> bytes:
        """The exposition of virtual node i (i == nodes: the cluster agent) at wall time `now`."""
        if i == self.nodes:
            return self.cluster_agent.render(0, 1, now - self.t0, 0, self.job_seconds, now)
        return self.node.render(i, self.nodes, now - self.t0, self.jobs, self.job_seconds, now)

    def _metrics(self, i: int, path: bytes) -> tuple[bytes, bytes] | None:
        if path != b"/metrics":
            return None
        payload = self.body(i, time.time())
        self.scrapes[i] += 1
        self.bytes += len(payload)
        return b"text/plain; version=0.0.4; charset=utf-8", payload

    def _stats(self, path: bytes) -> tuple[bytes, bytes] | None:
        return (b"application/json", json.dumps(self.stats()).encode()) if path == b"/fleet/stats" else None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                     answer: Callable[[bytes], tuple[bytes, bytes] | None]) -> None:
        """HTTP/1.1 with keep-alive: each GET answered by `answer(path)` -> (content type, body), or 404."""
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if len(head) > _MAX_REQUEST:
                    break
                path = head.split(b" ", 2)[1] if head.count(b" ") >= 2 else b""
                found = answer(path.split(b"?")[0])
                if found is None:
                    writer.write(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
                    continue
                ctype, payload = found
                writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n\r\n"
                             % (ctype, len(payload)) + payload)
                await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
            pass
        finally:
            writer.close()

    def stats(self) -> dict[str, float | int | list[int]]:
        """Scrapes served (per node and in all), bytes, and this process's CPU seconds since start."""
        cpu = time.process_time() - self.cpu0
        total = sum(self.scrapes)
        return {"nodes": self.nodes, "scrapes": total, "bytes": self.bytes, "cpu_seconds": cpu,
                "cpu_ms_per_scrape": 1000 * cpu / total if total else 0.0,
                "series_per_node": self.node.series(self.jobs), "node_series": self.node.per_node,
                "per_job_series": self.node.per_job,
                "cluster_agent_series": self.cluster_agent.series(0), "per_node_scrapes": self.scrapes}

    async def start(self, control_port: int) -> None:
        for i in range(self.nodes):
            self.servers.append(await asyncio.start_server(
                lambda r, w, i=i: self._serve(r, w, functools.partial(self._metrics, i)), address(i), self.port,
                backlog=64))
        self.servers.append(await asyncio.start_server(
            lambda r, w: self._serve(r, w, functools.partial(self._metrics, self.nodes)),
            address(0, CLUSTER_PREFIX), self.port))
        self.servers.append(await asyncio.start_server(lambda r, w: self._serve(r, w, self._stats), "127.0.0.1",
                                                       control_port))


def raise_fd_limit(wanted: int) -> None:
    """Lift the soft open-file limit towards `wanted` (listening sockets plus the scrapers' connections)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < wanted:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(wanted, hard), hard))


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m hpcwatch.harness.fleet", description=__doc__.split("\n\n")[0])
    p.add_argument("--nodes", type=int, default=100)
    p.add_argument("--jobs", type=int, default=4, help="job slots per node (default 4)")
    p.add_argument("--job-seconds", type=float, default=600.0, help="how long each job runs (default 600)")
    p.add_argument("--cluster", default="alpha", help="the cluster label (default alpha: the SLO catalogue's)")
    p.add_argument("--port", type=int, default=19466, help="the port every virtual agent listens on")
    p.add_argument("--control-port", type=int, default=0, help="127.0.0.1 port of GET /fleet/stats")
    p.add_argument("--targets-dir", required=True, help="where to write the file_sd target files")
    args = p.parse_args(argv)
    if not 0 < args.nodes <= 254 * 256:
        print(f"error: --nodes must be 1..{254 * 256}, got {args.nodes}", file=sys.stderr)
        return 2
    raise_fd_limit(4 * args.nodes + 1024)
    server = FleetServer(args.nodes, args.port, args.jobs, args.job_seconds, args.cluster)

    async def run() -> None:
        await server.start(args.control_port or free_port())
        write_targets(args.targets_dir, args.cluster, [f"{address(i)}:{args.port}" for i in range(args.nodes)],
                      [f"{address(0, CLUSTER_PREFIX)}:{args.port}"])
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        print(f"fleet: {args.nodes} nodes on {address(0)}..{address(args.nodes - 1)}:{args.port}", flush=True)
        await stop.wait()

    asyncio.run(run())
    return 0


class Fleet(Daemon):
    """The simulator as a child process (its own CPU, off the caller's GIL); `.stats()` reads its counters."""

    def __init__(self, workdir: str, nodes: int, targets_dir: str, jobs: int = 4, job_seconds: float = 600.0,
                 cluster: str = "alpha") -> None:
        self.dir = os.path.join(os.path.abspath(workdir), "fleet")
        self.nodes, self.targets_dir, self.cluster = nodes, targets_dir, cluster
        self.port = free_port()
        self.control_port = free_port()
        self.argv = [sys.executable, "-m", "hpcwatch.harness.fleet", f"--nodes={nodes}", f"--jobs={jobs}",
                     f"--job-seconds={job_seconds}", f"--cluster={cluster}", f"--port={self.port}",
                     f"--control-port={self.control_port}", f"--targets-dir={targets_dir}"]
        self.process: Process | None = None

    def targets(self) -> list[str]:
        return [f"{address(i)}:{self.port}" for i in range(self.nodes)]

    def start(self) -> Fleet:
        os.makedirs(self.dir, exist_ok=True)
        self.process = Process("fleet", self.argv, os.path.join(self.dir, "fleet.log")).start()
        wait_http(f"http://127.0.0.1:{self.control_port}/fleet/stats", 120.0, alive=self.process.dead)
        return self

    def stats(self) -> dict:
        status, body = http_get(f"http://127.0.0.1:{self.control_port}/fleet/stats", timeout=30)
        return json.loads(body) if status == 200 else {}

    def scrape(self, i: int) -> str:
        """One exposition of virtual node i, as a scraper gets it."""
        status, body = http_get(f"http://{address(i)}:{self.port}/metrics", timeout=30)
        return body.decode()

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None


__all__ = ["Fleet", "FleetServer", "Template", "address", "main"]

if __name__ == "__main__":
    sys.exit(main())
