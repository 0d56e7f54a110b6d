"""The exporter's own metrics: parse and read errors per source (shared by collectors), build info, HTTP
and process."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from hpcwatch.exporters.exposition import render_family
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

_lock = threading.Lock()
_parse_errors: dict[str, int] = {}
_read_errors: dict[str, int] = {}
_changes = 0   # parse and read errors recorded so far: scrapes re-read the counts only when it moved


def record_parse_error(source: str, count: int = 1) -> None:
    """Count records a parser skipped for `source` (e.g. "lustre_job_stats")."""
    global _changes
    if count <= 0:
        return
    with _lock:
        _parse_errors[source] = _parse_errors.get(source, 0) + count
        _changes += 1


def error_changes() -> int:
    """A number that moves whenever a parse or read error is recorded (no lock: an int read is atomic)."""
    return _changes


def parse_errors(source: str) -> int:
    with _lock:
        return _parse_errors.get(source, 0)


def _by_source(name: str, help_text: str, items: list[tuple[str, int]]) -> CounterMetricFamily:
    fam = CounterMetricFamily(name, help_text, labels=["source"])
    for source, n in items:
        fam.add_metric([source], n)
    return fam


_PARSE_HELP = "Records a parser could not read and skipped, by source."
_READ_HELP = ("Reads of a file that exists but failed (EIO, EISDIR, EACCES...), by source; each also fails "
              "that scrape of the collector (hpcwatch_collector_success 0).")


def collect_parse_errors() -> Iterator[CounterMetricFamily]:
    with _lock:
        items = sorted(_parse_errors.items())
    yield _by_source("hpcwatch_parse_errors", _PARSE_HELP, items)


def record_read_error(source: str) -> None:
    """Count one failed read of a file that exists (EIO, EISDIR, EACCES...) for `source` (a collector)."""
    global _changes
    with _lock:
        _read_errors[source] = _read_errors.get(source, 0) + 1
        _changes += 1


def read_errors(source: str) -> int:
    with _lock:
        return _read_errors.get(source, 0)


def collect_read_errors() -> Iterator[CounterMetricFamily]:
    with _lock:
        items = sorted(_read_errors.items())
    yield _by_source("hpcwatch_read_errors", _READ_HELP, items)


def build_info() -> GaugeMetricFamily:
    """hpcwatch_build_info{version,revision,python} 1, as node_exporter's node_exporter_build_info."""
    import platform

    from hpcwatch.buildinfo import revision
    from hpcwatch.version import __version__

    fam = GaugeMetricFamily("hpcwatch_build_info",
                            "Always 1: the hpcwatch version, the source revision it was built from "
                            "('unknown' when not built from git) and the Python version running it.",
                            labels=["version", "revision", "python"])
    fam.add_metric([__version__, revision(), platform.python_version()], 1)
    return fam


PROCESS_SAMPLE_SECONDS = 1.0


class ExporterMetrics:
    """The agent's own metrics, served whatever collect[]/exclude[] select: HTTP side, web config, process.

    `server` is anything with ServerStats-like `stats` and `max_connections`; `reload` anything with
    `last_ok` and `last_success` (the web config watcher); both optional. The process_* families are
    prometheus_client's ProcessCollector, sampled at most once a second: reading /proc cost more than
    the rest of a snapshot scrape, and CPU time only moves in 10 ms ticks anyway.
    """

    def __init__(self, server: object | None = None, reload: object | None = None) -> None:
        from prometheus_client import ProcessCollector

        self.server = server
        self.reload = reload
        self._process = ProcessCollector(registry=None)
        self._sampled: tuple[float, list[Metric]] = (float("-inf"), [])
        self._rendered: dict[tuple[str, str], tuple[object, bytes]] = {}

    def collect(self) -> Iterator[Metric]:
        for _, values, build in self._parts():
            yield from build(values)

    def render(self, fmt: str) -> list[bytes]:
        """collect()'s families as exposition bytes; a part whose values did not change keeps its bytes
        (a scrape re-renders what moved: its own response count, once a second the process sample)."""
        out = []
        for name, values, build in self._parts():
            done = self._rendered.get((name, fmt))
            if done is None or done[0] != values:
                done = self._rendered[(name, fmt)] = (values, b"".join(render_family(f, fmt) for f in build(values)))
            out.append(done[1])
        return out

    def _parts(self) -> list[tuple[str, object, Callable[[Any], list[Metric]]]]:
        """(part, the values it shows, how its families are made from them), in the order served."""
        parts: list[tuple[str, object, Callable[[Any], list[Metric]]]] = []
        if self.server is not None:
            stats = self.server.stats
            parts += [("connections", stats.open_connections, _connections),
                      ("max", self.server.max_connections, _connections_max),
                      ("closed", tuple(stats.closed.items()), _closed),
                      ("responses", tuple(sorted(stats.responses.items())), _responses),
                      ("auth", stats.auth_failures, _auth_failures)]
        if self.reload is not None:
            parts.append(("reload", (self.reload.last_ok, self.reload.last_success), _reload_families))
        taken, families = self._process_sample()
        parts.append(("process", taken, lambda _taken: families))
        return parts

    def _process_sample(self) -> tuple[float, list[Metric]]:
        now = time.monotonic()
        sampled = self._sampled
        if now - sampled[0] >= PROCESS_SAMPLE_SECONDS:
            sampled = self._sampled = (now, list(self._process.collect()))
        return sampled


def _connections(n: int) -> list[Metric]:
    conns = GaugeMetricFamily("hpcwatch_http_connections", "Open HTTP connections.")
    conns.add_metric([], n)
    return [conns]


def _connections_max(n: int) -> list[Metric]:
    cap = GaugeMetricFamily("hpcwatch_http_connections_max",
                            "Most HTTP connections held open at once (--web.max-connections, lowered to fit "
                            "the open-files limit); at the bound, the longest-waiting connection is closed.")
    cap.add_metric([], n)
    return [cap]


def _closed(counts: tuple[tuple[str, int], ...]) -> list[Metric]:
    closed = CounterMetricFamily("hpcwatch_http_connections_closed",
                                 "HTTP connections the server closed, by reason: header_timeout, idle_timeout, "
                                 "evicted (at the connection bound), refused, tls_failed, bad_request.",
                                 labels=["reason"])
    for reason, n in counts:
        closed.add_metric([reason], n)
    return [closed]


def _responses(counts: tuple[tuple[int, int], ...]) -> list[Metric]:
    responses = CounterMetricFamily("hpcwatch_http_responses", "HTTP responses sent, by status code.",
                                    labels=["code"])
    for code, n in counts:
        responses.add_metric([str(code)], n)
    return [responses]


def _auth_failures(n: int) -> list[Metric]:
    failures = CounterMetricFamily("hpcwatch_http_auth_failures",
                                   "Requests refused with 401: no, malformed or wrong basic-auth credentials.")
    failures.add_metric([], n)
    return [failures]


def _reload_families(values: tuple[bool, float]) -> list[Metric]:
    last_ok, last_success = values
    ok = GaugeMetricFamily("hpcwatch_web_config_last_reload_successful",
                           "1 when the last read of --web.config.file (and its certificates) succeeded; 0 "
                           "means a broken new file was refused and the previous config is still served.")
    ok.add_metric([], 1 if last_ok else 0)
    ts = GaugeMetricFamily("hpcwatch_web_config_last_reload_success_timestamp_seconds",
                           "Unix time of the last successful read of --web.config.file.")
    ts.add_metric([], last_success)
    return [ok, ts]


def documented_families() -> list[Metric]:
    """The exporter's own families as an idle agent serving TLS with a web config reports them (docs)."""
    from types import SimpleNamespace

    from hpcwatch.exporters.server import ServerStats

    server = SimpleNamespace(stats=ServerStats(responses={200: 1}), max_connections=1024)
    reload = SimpleNamespace(last_ok=True, last_success=0.0)
    return [build_info(), *ExporterMetrics(server, reload).collect()]


def documented_error_families() -> list[Metric]:
    """The error counters as an agent that met one error of each kind reports them (docs: their labels)."""
    return [_by_source("hpcwatch_parse_errors", _PARSE_HELP, [("lustre_job_stats", 1)]),
            _by_source("hpcwatch_read_errors", _READ_HELP, [("node", 1)])]
