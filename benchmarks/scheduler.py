"""Scheduler exporter benchmark against a real slurmctld (the harness) with 50,000 pending array tasks.

Prints: refresh time split into Slurm command time and our parse/aggregate time; scrape p50/p99 with 20
concurrent scrapers for ours and for a per-scrape-squeue collector (what the common Slurm exporters do),
in two load shapes: "burst" (every 100 ms all 20 scrapers fire at once, as 20 Prometheus servers whose
scrapes line up) and "back-to-back" (each scraper starts its next scrape as soon as the last one ends: a
saturation test whose latency is 20 / throughput); the exporter process's CPU time per scrape; how many
scrapes took over 10 ms and in how many 100-ms windows they began (a few windows holding them all:
whole-process stalls, not a per-scrape cost); one scrape's body size; how many scrapes the event loop
answered itself and how many bodies refreshes prepared; calls to slurmctld per interval for both; parser
throughput on 200,000 squeue and sacct lines with the per-call separator against the `|`-split reader it
replaced (which a `|` or a newline in an account or partition broke); and `squeue --json` (the other
delimiter-proof read 22.05 has) against our `squeue -O` on --json-jobs real pending jobs, command plus
parse. Scrapers keep their connections alive, as Prometheus does, and run in a separate process so they
do not share the exporter's GIL. Two scraper clients: `raw` (default: one thread multiplexing 20 sockets
with prepared request bytes, so the latency is the exporter's and not the client's) and `threads` (20
http.client threads, whose own GIL contention adds to the latency). `--prometheus` sends Prometheus 2's
Accept and Accept-Encoding headers (OpenMetrics, gzip) instead of none (text).
Run as root: .venv/bin/python benchmarks/scheduler.py [--tasks 50000] [--seconds 10] [--json-jobs 2000]
    [--client raw|threads] [--prometheus]
"""

from __future__ import annotations

import argparse
import atexit
import http.client
import math
import multiprocessing
import os
import selectors
import shutil
import socket
import sys
import tempfile
import threading
import time
import urllib.request

from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.registry import Collector, CollectorContext
from hpcwatch.exporters.serve import Exporter
from hpcwatch.exporters.slurm import parse
from hpcwatch.exporters.slurm.collector import SlurmCollector, build_queue
from prometheus_client.core import GaugeMetricFamily

from hpcwatch.harness.slurm import SlurmCluster

SCRAPERS = 20
BURST_PERIOD = 0.1
SLOW = 0.010   # the goal: p99 under 10 ms
SHAPES = ("burst", "back-to-back")
CLIENTS = ("raw", "threads")
PROMETHEUS_HEADERS = {  # what Prometheus 2.x sends on every scrape
    "Accept": "application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;q=0.75,"
              "text/plain;version=0.0.4;q=0.5,*/*;q=0.1",
    "Accept-Encoding": "gzip",
    "User-Agent": "Prometheus/2.45.0",
    "X-Prometheus-Scrape-Timeout-Seconds": "10",
}


class PerScrapeSqueue(Collector):
    """The common exporter shape: every scrape runs `squeue -a -r -h -o %A,%T,%r` and counts lines."""

    name = "per_scrape_squeue"
    help = "baseline"

    def __init__(self, env: dict[str, str]) -> None:
        super().__init__(CollectorContext(agent="cluster"))
        self.env = env
        self.calls = 0
        self._lock = threading.Lock()

    def collect(self):
        with self._lock:
            self.calls += 1
        out = run_command(["squeue", "-a", "-r", "-h", "-o", "%A,%T,%r"], timeout=60, env=self.env)
        counts: dict[str, int] = {}
        for line in out.splitlines():
            state = line.split(",", 2)[1] if line.count(",") >= 2 else "?"
            counts[state] = counts.get(state, 0) + 1
        fam = GaugeMetricFamily("slurm_jobs", "jobs by state", labels=["state"])
        for s, n in counts.items():
            fam.add_metric([s], n)
        yield fam


def hammer(port: int, seconds: float, shape: str, headers: dict[str, str]) -> list[tuple[float, float]]:
    """SCRAPERS threads on kept-alive connections for `seconds`; returns every scrape's (start, latency),
    the start in seconds since the run began.

    burst: all scrapers fire together every BURST_PERIOD (a scraper still busy fires at the next tick);
    back-to-back: each scraper starts its next scrape when the last one ends.
    """
    lat: list[tuple[float, float]] = []
    lock = threading.Lock()
    began = time.monotonic()
    began_pc = time.perf_counter()
    stop = began + seconds

    def worker():
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
        tick = began
        while time.monotonic() < stop:
            if shape == "burst":
                now = time.monotonic()
                tick += BURST_PERIOD * max(1, math.ceil((now - tick) / BURST_PERIOD))
                time.sleep(max(0.0, tick - time.monotonic()))
            t0 = time.perf_counter()
            conn.request("GET", "/metrics", headers=headers)
            resp = conn.getresponse()
            resp.read()
            assert resp.status == 200, resp.status
            took = time.perf_counter() - t0
            with lock:
                lat.append((t0 - began_pc, took))
        conn.close()

    threads = [threading.Thread(target=worker) for _ in range(SCRAPERS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return lat


class _Scraper:
    """One kept-alive connection of the raw client: the response being read and when its request left."""

    __slots__ = ("sock", "buf", "sent", "need")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = bytearray()
        self.sent: float | None = None   # None: idle
        self.need = -1                   # bytes of head + body, once the head is in

    def fire(self, request: bytes) -> None:
        self.sock.sendall(request)
        self.sent = time.perf_counter()

    def received(self, data: bytes) -> tuple[float, float] | None:
        """Take bytes; (when the request left, latency) when they complete the response."""
        self.buf += data
        if self.need < 0:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return None
            head = bytes(self.buf[:end]).decode("latin-1")
            status = head.split(" ", 2)[1]
            assert status == "200", head
            length = next(int(line.split(":", 1)[1]) for line in head.split("\r\n")
                          if line.lower().startswith("content-length:"))
            self.need = end + 4 + length
        if len(self.buf) < self.need:
            return None
        sent = self.sent
        took = time.perf_counter() - sent
        del self.buf[:self.need]
        self.need, self.sent = -1, None
        return sent, took


def hammer_raw(port: int, seconds: float, shape: str, headers: dict[str, str]) -> list[tuple[float, float]]:
    """hammer()'s load from one thread multiplexing SCRAPERS sockets, with the request bytes made once:
    the client's own cost per scrape is a send and a few slices, so the latency is the exporter's."""
    request = ("GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               + "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n").encode()
    sel = selectors.DefaultSelector()
    scrapers = []
    for _ in range(SCRAPERS):
        sock = socket.create_connection(("127.0.0.1", port), timeout=120)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setblocking(False)
        scraper = _Scraper(sock)
        sel.register(sock, selectors.EVENT_READ, scraper)
        scrapers.append(scraper)
    lat: list[tuple[float, float]] = []
    began = time.monotonic()
    began_pc = time.perf_counter()
    stop = began + seconds
    tick = began
    if shape == "back-to-back":
        for sc in scrapers:
            sc.fire(request)
    while True:
        now = time.monotonic()
        if now >= stop:
            if all(sc.sent is None for sc in scrapers):
                break
        elif shape == "burst" and now >= tick:
            for sc in scrapers:
                if sc.sent is None:   # one still busy fires at the next tick
                    sc.fire(request)
            tick += BURST_PERIOD * max(1, math.ceil((now - tick) / BURST_PERIOD))
        timeout = max(0.0, tick - time.monotonic()) if shape == "burst" and now < stop else 1.0
        for key, _ in sel.select(timeout):
            sc = key.data
            data = sc.sock.recv(1 << 20)
            assert data, "the exporter closed a kept-alive connection"
            done = sc.received(data)
            if done is not None:
                lat.append((done[0] - began_pc, done[1]))
                if shape == "back-to-back" and time.monotonic() < stop:
                    sc.fire(request)
    for sc in scrapers:
        sel.unregister(sc.sock)
        sc.sock.close()
    return lat


def _hammer_child(port: int, seconds: float, shape: str, client: str, headers: dict[str, str], conn) -> None:
    conn.send((hammer_raw if client == "raw" else hammer)(port, seconds, shape, headers))
    conn.close()


def hammer_elsewhere(port: int, seconds: float, shape: str, client: str,
                     headers: dict[str, str]) -> tuple[list[tuple[float, float]], float, float]:
    """hammer() in a separate process: ((start, latency) per scrape, wall seconds, this process's CPU
    seconds meanwhile)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe(duplex=False)
    proc = ctx.Process(target=_hammer_child, args=(port, seconds, shape, client, headers, child))
    cpu0, t0 = _cpu(), time.monotonic()
    proc.start()
    lat = parent.recv()
    proc.join()
    return lat, time.monotonic() - t0, _cpu() - cpu0


def _cpu() -> float:
    t = os.times()
    return t.user + t.system


def slow_scrapes(timed: list[tuple[float, float]], seconds: float) -> str:
    """How many scrapes took over SLOW, and in how many of the run's BURST_PERIOD windows they began:
    a few windows holding them all means a few stalls of the whole process (descheduled, or the GIL
    held elsewhere), not a per-scrape cost."""
    slow = [start for start, took in timed if took > SLOW]
    windows = {int(start / BURST_PERIOD) for start in slow}
    return (f"{len(slow):,} ({len(slow) / max(1, len(timed)):.1%}), begun in {len(windows)} of "
            f"{math.ceil(seconds / BURST_PERIOD)} {BURST_PERIOD * 1000:g}-ms windows")


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p / 100 * len(xs)))] * 1000


def scrape_shapes(collector: Collector, label: str, seconds: float, rows: list[tuple[str, str]], client: str,
                  headers: dict[str, str]) -> float:
    """Serve `collector` on the real HTTP server and scrape it in every shape; rows get the figures."""
    ex = Exporter([collector], ("127.0.0.1", 0), agent="cluster", max_requests=0, scrape_timeout=120)
    ex.start()
    elapsed = 0.0
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{ex.port}/metrics", timeout=120) as resp:
            body = resp.read()
        series = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
        rows.append((f"{label}: one scrape's body (text)", f"{len(body):,} bytes, {series:,} samples"))
        for shape in SHAPES:
            before = _served_here(ex)
            timed, took, cpu = hammer_elsewhere(ex.port, seconds, shape, client, headers)
            lat = [t for _, t in timed]
            elapsed += took
            rows.append((f"{label}, {shape}: scrapes by {SCRAPERS} scrapers in {took:.0f} s", f"{len(lat):,}"))
            rows.append((f"{label}, {shape}: scrape p50 / p99", f"{pct(lat, 50):.1f} ms / {pct(lat, 99):.1f} ms"))
            rows.append((f"{label}, {shape}: exporter CPU per scrape", f"{cpu / len(lat) * 1000:.3f} ms"))
            rows.append((f"{label}, {shape}: scrapes over {SLOW * 1000:g} ms", slow_scrapes(timed, seconds)))
            after = _served_here(ex)
            if after is not None:
                rows.append((f"{label}, {shape}: scrapes the event loop answered itself",
                             f"{after[0] - before[0]:,}; bodies prepared by refreshes: {after[1] - before[1]}"))
    finally:
        ex.stop()
    return elapsed


def _served_here(ex: Exporter) -> tuple[int, int] | None:
    """(scrapes answered on the loop, bodies prepared) so far; None on code without the fast path."""
    scrape = ex.scrape
    if not hasattr(scrape, "ready_scrapes"):
        return None
    return scrape.ready_scrapes, scrape.prepares


def timed_commands(collector: SlurmCollector) -> dict[str, float]:
    """Wrap the reader so each command's wall time is recorded."""
    spent: dict[str, float] = {}
    real = collector.commands.run

    def run(name, *args):
        t0 = time.perf_counter()
        try:
            return real(name, *args)
        finally:
            spent[name] = spent.get(name, 0.0) + time.perf_counter() - t0

    collector.commands.run = run
    return spent


def synthetic_squeue(lines: int, sep: str) -> str:
    """squeue -O output in SQUEUE_FIELDS order, fields joined by `sep`."""
    out = []
    for i in range(1, lines + 1):
        running = i % 3 == 0
        out.append(sep.join([
            str(i), str(i), "N/A", "N/A", f"part{i % 8}", "RUNNING" if running else "PENDING", f"user{i % 500}",
            f"acct{i % 50}", "2026-11-21T15:09:43", "2026-11-21T15:09:43",
            "2026-11-21T15:19:43" if running else "N/A", "1", "cpu=4,mem=8G,node=1,billing=4,gres/gpu=1",
            "None" if running else ("Priority", "Resources", "Dependency")[i % 3], "4"]))
    return "\n".join(out) + "\n"


def synthetic_sacct(lines: int, sep: str) -> str:
    out = []
    for i in range(1, lines + 1):
        out.append(sep.join([str(i), str(i), f"part{i % 8}", ("COMPLETED", "FAILED", "CANCELLED by 0")[i % 3],
                             "0:0", "2026-11-21T15:09:43", "2026-11-21T15:09:43", "2026-11-21T15:19:43",
                             "2026-11-21T15:29:43", f"user{i % 500}", str(1000 + i % 500), f"acct{i % 50}", "1"]))
    return "\n".join(out) + "\n"


def pipe_split_squeue(text: str) -> tuple[list[parse.SqueueJob], int]:
    """The squeue reader the separator replaced, as it was (the baseline): one line per job, split on `|`."""
    jobs: list[parse.SqueueJob] = []
    skipped = 0
    n = len(parse.SQUEUE_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        p = line.split("|", n - 1)
        p = p if len(p) == n else None
        if p is None or not p[0].strip().isdigit():
            skipped += 1
            continue
        jobs.append(parse.SqueueJob(p[0].strip(), p[1], p[2], p[3], p[4], p[5], p[6], p[7], parse.parse_time(p[8]),
                                    parse.parse_time(p[9]), parse.parse_time(p[10]), parse._int(p[11]),
                                    parse._int(p[14]), parse.tres_gpus(p[12]), p[13].strip()))
    return jobs, skipped


def pipe_split_sacct(text: str) -> tuple[list[parse.SacctJob], int]:
    """The sacct reader the separator replaced, as it was (the baseline): `line.split("|")`, 13 fields."""
    out: list[parse.SacctJob] = []
    skipped = 0
    n = len(parse.SACCT_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        p = line.split("|")
        if len(p) != n or not p[1].strip().split("+")[0].isdigit():
            skipped += 1
            continue
        uid = p[10].strip()
        out.append(parse.SacctJob(
            jobid=p[0].strip(), jobid_raw=p[1].strip(), partition=p[2].strip(), state=p[3].strip(),
            exit_code=p[4].strip(), submit=parse.parse_time(p[5]), eligible=parse.parse_time(p[6]),
            start=parse.parse_time(p[7]), end=parse.parse_time(p[8]), user=p[9].strip(),
            uid=int(uid) if uid.isdigit() else None, account=p[11].strip(), nnodes=parse._int(p[12]),
        ))
    return out, skipped


def best_of(fn, *args, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        parse.parse_time.cache_clear()
        t0 = time.perf_counter()
        fn(*args)
        times.append(time.perf_counter() - t0)
    return min(times)


def parser_rows(lines: int, runs: int = 5) -> list[tuple[str, str]]:
    """Per-call separator vs the `|` reader on the same synthetic records: best of `runs`, the two
    interleaved so a shared machine's load changes hit both alike (caches cleared each run)."""
    sep = parse.call_separator()
    rows = []
    for what, make, ours, baseline in (
            ("squeue", synthetic_squeue, lambda t: parse.parse_squeue(t, sep), pipe_split_squeue),
            ("sacct", synthetic_sacct, lambda t: parse.parse_sacct(t, sep), pipe_split_sacct)):
        new_text, old_text = make(lines, sep), make(lines, "|")
        new = old = float("inf")
        for _ in range(runs):
            new = min(new, best_of(ours, new_text, runs=1))
            old = min(old, best_of(baseline, old_text, runs=1))
        rows.append((f"parse {lines:,} {what} records: separator / `|` split (best of {runs})",
                     f"{new:.3f} s / {old:.3f} s (ratio {new / old:.2f})"))
    return rows


def json_rows(cluster: SlurmCluster, jobs: int) -> list[tuple[str, str]]:
    """`squeue --json` (command + json.loads) against our `squeue -O` (command + parse) on `jobs` real jobs."""
    import json
    import subprocess

    env = {"SLURM_CONF": cluster.env["SLURM_CONF"]}
    procs = []
    for i in range(jobs):   # separate jobs (a pending array is one squeue record either way)
        procs.append(subprocess.Popen([cluster.bin("sbatch"), "--hold", "--mem=10M", f"--chdir={cluster.jobs_dir}",
                                       "--output=/dev/null", "--account=root", f"--job-name=j|{i}", "--wrap=true"],
                                      env=cluster.env, stdout=subprocess.DEVNULL))
        if len(procs) >= 8:
            procs.pop(0).wait()
    for p in procs:
        p.wait()
    sep = parse.call_separator()
    fmt = parse.format_option(parse.SQUEUE_FIELDS, sep)

    def ours() -> int:
        return len(parse.parse_squeue(run_command(["squeue", "--noheader", "--all", "--Format", fmt], timeout=300,
                                                  env=env), sep)[0])

    def theirs() -> int:
        return len(json.loads(run_command(["squeue", "--all", "--json"], timeout=300, env=env))["jobs"])

    n_ours, n_json = ours(), theirs()
    t_ours, t_json = best_of(ours), best_of(theirs)
    size = len(run_command(["squeue", "--all", "--json"], timeout=300, env=env))
    return [(f"squeue -O + parse, {n_ours:,} jobs (best of 3)", f"{t_ours * 1000:.0f} ms"),
            (f"squeue --json + json.loads, {n_json:,} jobs (best of 3)",
             f"{t_json * 1000:.0f} ms ({t_json / t_ours:.1f}x ours, {size / 1e6:.1f} MB of JSON)")]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tasks", type=int, default=50_000)
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--interval", type=float, default=5.0)
    ap.add_argument("--lines", type=int, default=200_000)
    ap.add_argument("--json-jobs", type=int, default=2000, help="real pending jobs for the squeue --json figure")
    ap.add_argument("--client", choices=CLIENTS, default="raw", help="the scrapers: raw sockets or http.client threads")
    ap.add_argument("--prometheus", action="store_true", help="ask for OpenMetrics and gzip as Prometheus 2 does")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = [("load average at start", " ".join(f"{x:.2f}" for x in os.getloadavg()))]
    headers = PROMETHEUS_HEADERS if args.prometheus else {}
    rows.append(("scrapers", f"{SCRAPERS} x {args.client}, "
                             f"{'OpenMetrics + gzip (Prometheus 2 headers)' if args.prometheus else 'text, no gzip'}"))
    rows.extend(parser_rows(args.lines))

    sep = parse.call_separator()
    text = synthetic_squeue(args.lines, sep)
    t0 = time.perf_counter()
    jobs, _ = parse.parse_squeue(text, sep)
    t1 = time.perf_counter()
    build_queue("c", jobs, time.time(), (60.0, 3600.0))
    t2 = time.perf_counter()
    rows.append((f"parse {args.lines:,} squeue lines", f"{t1 - t0:.3f} s ({args.lines / (t1 - t0):,.0f} lines/s)"))
    rows.append((f"aggregate {args.lines:,} jobs", f"{t2 - t1:.3f} s ({args.lines / (t2 - t1):,.0f} jobs/s)"))

    if os.geteuid() != 0:
        print("the real-Slurm part needs root (the harness starts daemons); parser figures only", file=sys.stderr)
    else:
        work = tempfile.mkdtemp(prefix="hpcwatch-bench-")
        atexit.register(shutil.rmtree, work, True)
        extra = f"MaxJobCount={args.tasks + 10000}\nMaxArraySize={args.tasks + 1}\n"
        with SlurmCluster(work, cluster_name="bench", extra_conf=extra) as cluster:
            env = {"SLURM_CONF": cluster.env["SLURM_CONF"]}
            t0 = time.perf_counter()
            cluster.sbatch(None, f"--array=0-{args.tasks - 1}", "--hold", wrap="true")
            rows.append((f"submit {args.tasks:,}-task array", f"{time.perf_counter() - t0:.2f} s"))
            count = len(cluster.run(["squeue", "-a", "-r", "-h", "-o", "%A"], timeout=300).stdout.split())
            rows.append(("pending array tasks in squeue -r", f"{count:,}"))
            ctx = CollectorContext(agent="cluster", options={
                **{o.name: o.default for o in SlurmCollector.options},
                "conf": env["SLURM_CONF"], "state-file": os.path.join(work, "state.json"),
                "refresh-interval": args.interval, "timeout": 120.0})
            ours = SlurmCollector(ctx)
            spent = timed_commands(ours)
            refresh_times = []
            for _ in range(3):
                spent.clear()
                t0 = time.perf_counter()
                assert ours.source.refresh_now(), ours.source.last_error
                refresh_times.append((time.perf_counter() - t0, dict(spent)))
            total, cmds = min(refresh_times, key=lambda r: r[0])
            cmd_time = sum(cmds.values())
            rows.append(("ours: refresh total (best of 3)", f"{total * 1000:.1f} ms"))
            rows.append(("ours: command time", ", ".join(f"{k} {v * 1000:.1f} ms" for k, v in sorted(cmds.items()))))
            rows.append(("ours: parse/aggregate/persist", f"{(total - cmd_time) * 1000:.1f} ms"))
            ours.commands.calls.clear()
            elapsed = scrape_shapes(ours, "ours", args.seconds, rows, args.client, headers)
            intervals = elapsed / args.interval
            refreshes = ours.source.refreshes - 3
            rows.append((f"ours: refreshes during the runs (interval {args.interval:g} s)",
                         f"{refreshes} in {elapsed:.1f} s ({intervals:.1f} intervals)"))
            rows.append(("ours: calls per command per refresh",
                         ", ".join(f"{k} {v / max(1, refreshes):.2f}" for k, v in sorted(ours.commands.calls.items()))))
            base = PerScrapeSqueue(env)
            elapsed = scrape_shapes(base, "per-scrape squeue", args.seconds, rows, args.client, headers)
            rows.append(("per-scrape squeue: squeue calls per interval",
                         f"{base.calls / (elapsed / args.interval):.1f} (interval {args.interval:g} s)"))
            t0 = time.perf_counter()
            out = run_command(["squeue", "-a", "-r", "-h", "-o", "%A,%T,%r"], timeout=120, env=env)
            took = (time.perf_counter() - t0) * 1000
            rows.append(("one squeue -r call (50k lines)", f"{took:.1f} ms, {len(out.splitlines()):,} lines"))
            if args.json_jobs:
                rows.extend(json_rows(cluster, args.json_jobs))
    rows.append(("load average at end", " ".join(f"{x:.2f}" for x in os.getloadavg())))
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
