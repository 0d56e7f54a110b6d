"""`hpcwatch serve`: flags derived from the collector registry, start-up checks, and the serving loop."""

from __future__ import annotations

import argparse
import dataclasses
import logging
import signal
import sys
import threading
from collections.abc import Collection, Sequence
from typing import Any

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.exposition import (
    OPENMETRICS,
    OPENMETRICS_EOF,
    TEXT,
    negotiate,
    render_family,
)
from hpcwatch.exporters.flags import (
    USAGE,
    HelpFormatter,
    add_collector_arguments,
    add_help_arguments,
    argtype,
    collector_options,
    collectors_epilog,
    enabled_collectors,
    explicitly_enabled,
)
from hpcwatch.exporters.http1 import Request, accepts_gzip
from hpcwatch.exporters.registry import (
    AGENTS,
    Collector,
    CollectorContext,
    Paths,
    UnavailableCollector,
    load_all,
    resolve_options,
)
from hpcwatch.exporters.scrape import ScrapeCollector, SelectionError, select
from hpcwatch.exporters.selfmetrics import ExporterMetrics, build_info
from hpcwatch.exporters.server import (
    LANDING,
    ExporterHTTPServer,
    Limits,
    Response,
    add_web_limit_arguments,
    limits_from_args,
    raise_fd_limit,
)
from hpcwatch.exporters.webconfig import WebConfig, WebConfigError, load_web_config
from hpcwatch.exporters.webreload import WebConfigWatcher

log = logging.getLogger("hpcwatch.serve")

Selection = "list[str] | None | Response"  # collect[]/exclude[]: the collectors (None: all), or the 400

# Outside Prometheus' 9100-9999 exporter range (fully allocated since 2023), clear of common services.
DEFAULT_PORTS = {"node": 19466, "cluster": 19467}

SERVE_HELP = """Run collectors behind one HTTP endpoint, node_exporter style.

The node agent (default) runs on every compute node: node, jobs, gpu, fabric and filesystem
clients. The cluster agent (--agent cluster) runs once per cluster: slurm or flux, fabric
switches, filesystem servers. A default collector whose source is absent on this host is skipped
with one log line; one named with --collector.NAME that cannot run is logged as a warning and
reported with hpcwatch_collector_success 0 on every scrape. Durations take seconds or Prometheus
units (30s, 5m, 1h30m, 1d).
"""

SERVE_EXAMPLES = """examples:
  hpcwatch serve                                  # node agent on :19466
  hpcwatch serve --agent cluster                  # cluster agent on :19467
  hpcwatch serve --no-collector.gpu --web.config.file=/etc/hpcwatch/web.yml
  hpcwatch serve --agent cluster --collector.slurm.refresh-interval=1m
  hpcwatch serve --path.procfs=/host/proc --path.sysfs=/host/sys --path.rootfs=/host
  hpcwatch serve --help-collector slurm           # one collector's options
"""


def serve_epilog(registry: dict[str, type[Collector]]) -> str:
    return collectors_epilog(registry) + "\n\n" + SERVE_EXAMPLES


def add_serve_arguments(p: argparse.ArgumentParser, registry: dict[str, type[Collector]]) -> None:
    """All serve flags; the collector ones are derived from the registry, never written by hand."""
    add_help_arguments(p, registry)
    p.add_argument("--agent", choices=AGENTS, default="node",
                   help="which agent this is: picks the default port and default collectors (default: node)")
    p.add_argument("--web.listen-address", dest="listen_address", default=None, metavar="ADDRESS",
                   help="address to listen on (default :19466 for node, :19467 for cluster)")
    p.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics", metavar="PATH",
                   help="path under which to expose metrics (default: /metrics)")
    p.add_argument("--web.max-requests", dest="max_requests", type=argtype(opt.count), default=40, metavar="N",
                   help="maximum concurrent scrapes; more get 503; 0 means no limit (default: 40)")
    add_web_limit_arguments(p)
    p.add_argument("--web.config.file", dest="web_config_file", default=None, metavar="FILE",
                   help="exporter-toolkit YAML for TLS and basic auth (tls_server_config, basic_auth_users)")
    p.add_argument("--scrape.timeout", dest="scrape_timeout", type=argtype(opt.duration), default=10.0,
                   metavar="DURATION",
                   help="how long a collector may take in one scrape before it reports success 0 (default: 10s)")
    p.add_argument("--log.level", dest="log_level", default="info",
                   choices=["debug", "info", "warn", "error"], help="log level (default: info)")
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"],
                   help="log line format (default: logfmt)")
    p.add_argument("--path.procfs", dest="procfs", metavar="DIR", default="/proc",
                   help="procfs mount point (default: /proc)")
    p.add_argument("--path.sysfs", dest="sysfs", metavar="DIR", default="/sys",
                   help="sysfs mount point (default: /sys)")
    p.add_argument("--path.rootfs", dest="rootfs", metavar="DIR", default="/",
                   help="host root filesystem (default: /)")
    p.add_argument("--otel.traces", dest="otel_traces", action="store_true",
                   help="emit one OpenTelemetry trace per finished job over OTLP (configure with OTEL_* "
                        "environment variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--otel.metrics", dest="otel_metrics", action="store_true",
                   help="also push every collected family over OTLP (OTEL_* environment variables)")
    p.add_argument("--otel.metrics.interval", dest="otel_metrics_interval", type=argtype(opt.duration),
                   default=60.0, metavar="DURATION", help="time between OTLP metric pushes (default: 1m)")
    add_collector_arguments(p, registry)


def serve_parser(registry: dict[str, type[Collector]], prog: str = "hpcwatch serve") -> argparse.ArgumentParser:
    """The standalone `serve` parser (tests, `python -m`); `hpcwatch serve` builds the same one."""
    p = argparse.ArgumentParser(prog=prog, **parser_settings(registry))
    add_serve_arguments(p, registry)
    return p


def parser_settings(registry: dict[str, type[Collector]]) -> dict[str, Any]:
    """Keyword arguments of the serve parser: short usage, description, the collector list."""
    return {"usage": USAGE, "description": SERVE_HELP, "epilog": serve_epilog(registry),
            "formatter_class": HelpFormatter, "allow_abbrev": False}


def parse_listen_address(addr: str) -> tuple[str, int]:
    """':9100' -> ('0.0.0.0', 9100); '[::1]:9100' -> ('::1', 9100); raise ValueError otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {addr!r}: expected [host]:port, e.g. :19466 or 127.0.0.1:19466")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def build_collectors(args: argparse.Namespace, registry: dict[str, type[Collector]]) -> list[Collector]:
    """Instantiate the enabled collectors.

    A default collector whose source is absent here is skipped with one info line. One named with
    --collector.NAME whose source is absent, and any whose start-up fails, is logged as a warning
    and replaced by a stand-in that reports `hpcwatch_collector_success{collector="NAME"} 0`.
    """
    paths = Paths(procfs=args.procfs, sysfs=args.sysfs, rootfs=args.rootfs)
    built: list[Collector] = []
    for name in enabled_collectors(args, registry):
        cls = registry[name]
        ctx = CollectorContext(paths=paths, options=resolve_options(cls, collector_options(args, cls)),
                               agent=args.agent)
        collector: Collector | None = None
        try:
            collector = cls(ctx)
            reason = collector.available()
        except Exception as exc:  # noqa: BLE001 - a broken collector must not stop the others
            reason = f"start-up failed: {type(exc).__name__}: {exc}"
            if collector is not None:
                _close(collector)
            log.warning("collector=%s cannot run, reporting success 0: %s", name, reason)
            built.append(UnavailableCollector(name, reason))
            continue
        if reason is None:
            built.append(collector)
            continue
        _close(collector)
        if explicitly_enabled(args, name):
            log.warning("collector=%s was requested but cannot run here, reporting success 0: %s", name, reason)
            built.append(UnavailableCollector(name, reason))
        else:
            log.info("collector=%s skipped: %s", name, reason)
    return built


def _close(collector: Collector) -> None:
    try:
        collector.close()
    except Exception as exc:  # noqa: BLE001
        log.debug("collector=%s close after a failed start failed: %s", collector.name, exc)


class Exporter:
    """A running exporter: collectors, their sources, the HTTP server. Used by `serve`, tests and demo."""

    def __init__(self, collectors: Sequence[Collector], address: tuple[str, int], web: WebConfig | None = None,
                 telemetry_path: str = "/metrics", max_requests: int = 40, scrape_timeout: float = 10.0,
                 agent: str = "node", *, limits: Limits | None = None, web_config_file: str | None = None,
                 reload_interval: float = 10.0, known_collectors: Collection[str] = (),
                 exporter_metrics: bool = True) -> None:
        self.scrape = ScrapeCollector(collectors, timeout=scrape_timeout)
        self.telemetry_path = telemetry_path
        self.known_collectors = set(known_collectors) | set(self.scrape.names)
        self.landing = LANDING.format(version=__import__("hpcwatch").__version__, agent=agent,
                                      collectors=", ".join(c.name for c in collectors) or "none",
                                      path=telemetry_path).encode()
        if web_config_file is not None and web is None:
            web = load_web_config(web_config_file)
        web = web or WebConfig()
        limits = dataclasses.replace(limits or Limits(), max_requests=max_requests)
        self.httpd = ExporterHTTPServer(address, self.handle, web, telemetry_path, limits,
                                        answer_now=self.answer_now)
        self.watcher = (WebConfigWatcher(web_config_file, web, self.httpd.set_web, reload_interval)
                        if web_config_file else None)
        self.exporter_metrics = ExporterMetrics(self.httpd, self.watcher) if exporter_metrics else None
        self._build_info = {fmt: render_family(build_info(), fmt) for fmt in (TEXT, OPENMETRICS)}
        self._selections: dict[str, Selection] = {}
        self._negotiated: dict[str, tuple[str, str]] = {}
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def handle(self, request: Request) -> Response:
        """Route one request, after authentication (on an HTTP worker thread, or on the loop via `answer_now`)."""
        path = request.path
        if path == self.telemetry_path:
            return self.metrics(request)
        if path == "/":
            return Response(200, self.landing, "text/html; charset=utf-8")
        if path in ("/-/healthy", "/-/ready"):
            return Response(200, b"OK\n")
        return Response(404, b"Not Found\n")

    def metrics(self, request: Request) -> Response:
        """The telemetry path: collect[]/exclude[] as node_exporter, text 0.0.4 or OpenMetrics by Accept."""
        only = self._selection(request)
        if isinstance(only, Response):
            return only
        fmt, content_type = self._negotiate(request.header("accept"))
        parts = self.scrape.render(fmt, only)
        parts.extend(self._own_parts(fmt))
        return Response(200, b"".join(parts), content_type)

    def answer_now(self, request: Request) -> Response | None:
        """On the event loop: the answer when it runs no collector (every chosen one is a prepared
        snapshot), with the body gzipped when asked; None sends the request to `handle` on a worker."""
        if request.path != self.telemetry_path:
            return self.handle(request)   # landing, health, 404: constant bodies
        only = self._selection(request)
        if isinstance(only, Response):
            return only
        fmt, content_type = self._negotiate(request.header("accept"))
        gzip = accepts_gzip(request)
        ready = self.scrape.render_ready(fmt, only, gzip)
        if ready is None:
            return None
        tail = b"".join([ready.tail, *self._own_parts(fmt)])
        if gzip and ready.gzip is not None:
            return Response(200, ready.gzip.member(tail), content_type, [("Content-Encoding", "gzip")])
        return Response(200, ready.static + tail, content_type)

    def _own_parts(self, fmt: str) -> list[bytes]:
        """What follows the collectors and their health: build info, the agent's own metrics, the EOF."""
        parts = [self._build_info[fmt]]
        if self.exporter_metrics is not None:
            parts.extend(self.exporter_metrics.render(fmt))
        if fmt == OPENMETRICS:
            parts.append(OPENMETRICS_EOF)
        return parts

    def _selection(self, request: Request) -> Selection:
        """collect[]/exclude[] of the request target (remembered per target): the collectors, or a 400."""
        target = request.target
        found = self._selections.get(target)
        if found is None and target not in self._selections:
            query = request.query
            try:
                found = select(self.scrape.names, self.known_collectors, query.get("collect[]", []),
                               query.get("exclude[]", []))
            except SelectionError as exc:
                found = Response(400, f"{exc}\n".encode())
            if len(self._selections) > 256:   # targets come from clients: keep the memory bounded
                self._selections.clear()
            self._selections[target] = found
        if isinstance(found, Response):   # a fresh object per answer: the server may add headers to it
            return Response(found.status, found.body, found.content_type, list(found.headers))
        return found

    def _negotiate(self, accept: str) -> tuple[str, str]:
        found = self._negotiated.get(accept)
        if found is None:
            if len(self._negotiated) > 256:
                self._negotiated.clear()
            found = self._negotiated[accept] = negotiate(accept)
        return found

    def reload_web_config(self) -> None:
        """Re-read --web.config.file now (SIGHUP)."""
        if self.watcher is None:
            log.info("no --web.config.file to reload")
        else:
            self.watcher.request()

    def start(self) -> None:
        for source in self.scrape.sources:
            source.start()
        self._thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)
        self._thread.start()
        self.httpd.wait_started()
        if self.watcher is not None:
            self.watcher.start()

    def stop(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
        self.httpd.shutdown()
        self.httpd.server_close()
        for source in self.scrape.sources:
            source.stop()
        for c in self.scrape.collectors:
            try:
                c.close()
            except Exception as exc:  # noqa: BLE001
                log.warning("collector=%s close failed: %s", c.name, exc)
        self.scrape.close()


def _otel_outputs(args: argparse.Namespace):
    """The OTLP trace emitter (subscribed to finished jobs) and a factory for the metrics pusher."""
    tracer = pusher_factory = None
    if getattr(args, "otel_traces", False):
        from hpcwatch.exporters.events import subscribe_finished_jobs
        from hpcwatch.exporters.otel.traces import JobTracer
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        tracer = JobTracer(OTLPSpanExporter())
        subscribe_finished_jobs(tracer.emit)
        log.info("OTLP job traces on (endpoint from OTEL_EXPORTER_OTLP_* environment)")
    if getattr(args, "otel_metrics", False):
        from hpcwatch.exporters.otel.metrics import OTLPMetricsPusher
        from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter

        def pusher_factory(collect):
            return OTLPMetricsPusher(collect, OTLPMetricExporter(), interval=args.otel_metrics_interval)

        log.info("OTLP metrics on, every %gs", args.otel_metrics_interval)
    return tracer, pusher_factory


def run_serve(args: argparse.Namespace) -> int:
    registry = load_all()
    raise_fd_limit()
    try:
        address = parse_listen_address(args.listen_address or f":{DEFAULT_PORTS[args.agent]}")
        web = load_web_config(args.web_config_file) if args.web_config_file else WebConfig()
        limits = limits_from_args(args)
    except (ValueError, WebConfigError) as exc:
        log.error("%s", exc)
        return 2
    collectors = build_collectors(args, registry)
    if not collectors:
        log.error("no collector to run: every enabled collector's source is absent on this host (see the "
                  "lines above) or all were disabled; name one with --collector.NAME (list: hpcwatch serve --help)")
        return 1
    tracer, pusher_factory = _otel_outputs(args)
    if tracer is not None or pusher_factory is not None:
        from hpcwatch.exporters.otel.health import OTelSelfCollector

        otel_self = OTelSelfCollector(tracer, None)
        collectors.append(otel_self)
    try:
        exporter = Exporter(collectors, address, web, args.telemetry_path, args.max_requests,
                            args.scrape_timeout, args.agent, limits=limits, web_config_file=args.web_config_file,
                            reload_interval=args.web_config_reload_interval, known_collectors=registry,
                            exporter_metrics=not args.disable_exporter_metrics)
    except OSError as exc:
        log.error("cannot listen on %s:%d: %s", address[0], address[1], exc.strerror or exc)
        return 1
    stop = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        log.info("received %s, shutting down", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGHUP, lambda _signum, _frame: exporter.reload_web_config())
    exporter.start()
    pusher = None
    if pusher_factory is not None:
        pusher = pusher_factory(exporter.scrape.collect)
        otel_self.pusher = pusher
        pusher.start()
    scheme = "https" if web.ssl_context else "http"
    log.info("listening on %s://%s:%d%s agent=%s collectors=%s", scheme, address[0], exporter.port,
             args.telemetry_path, args.agent, ",".join(c.name for c in collectors) or "none")
    try:
        while not stop.wait(3600):
            pass
    finally:
        if pusher is not None:
            pusher.stop()
        if tracer is not None:
            tracer.shutdown()
        exporter.stop()
        log.info("stopped")
    return 0


def main_serve(argv: Sequence[str] | None = None) -> int:
    """Entry point for tests: parse serve flags only and run."""
    from hpcwatch.logs import setup_logging

    args = serve_parser(load_all()).parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    return run_serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_serve())
