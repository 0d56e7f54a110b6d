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

from hpcwatch.exporters.exposition import (
    OPENMETRICS,
    OPENMETRICS_EOF,
    TEXT,
    FamilyBytes,
    negotiate,
    render_family,
)
from hpcwatch.exporters.http1 import Request
from hpcwatch.exporters.registry import AGENTS, Collector, CollectorContext, Paths, load_all
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

# Outside Prometheus' 9100-9999 exporter range (fully allocated since 2023), clear of common services.
DEFAULT_PORTS = {"node": 19466, "cluster": 19467}

SERVE_HELP = """Run collectors behind one HTTP endpoint, node_exporter style.

The node agent (default) runs on every compute node: node, jobs, gpu, fabric and filesystem
clients. The cluster agent (--agent cluster) runs once per cluster: slurm or flux, fabric
switches, filesystem servers. Collectors whose source is absent on this host are skipped at
start-up with one log line.

examples:
  hpcwatch serve                                  # node agent on :19466
  hpcwatch serve --agent cluster                  # cluster agent on :19467
  hpcwatch serve --no-collector.gpu --web.config.file=/etc/hpcwatch/web.yml
  hpcwatch serve --path.procfs=/host/proc --path.sysfs=/host/sys --path.rootfs=/host
"""


def _pct(text: str) -> str:
    """argparse %-formats help strings; collector help may quote formats like Lustre's %j."""
    return text.replace("%", "%%")


def add_serve_arguments(p: argparse.ArgumentParser, registry: dict[str, type[Collector]]) -> None:
    """All serve flags; the collector ones are derived from the registry, never written by hand."""
    p.add_argument("--agent", choices=AGENTS, default="node",
                   help="which agent this is: picks the default port and default collectors (default: node)")
    p.add_argument("--web.listen-address", dest="listen_address", default=None,
                   help="address to listen on (default :19466 for node, :19467 for cluster)")
    p.add_argument("--web.telemetry-path", dest="telemetry_path", default="/metrics",
                   help="path under which to expose metrics (default: /metrics)")
    p.add_argument("--web.max-requests", dest="max_requests", type=int, default=40,
                   help="maximum concurrent scrapes; more get 503; 0 means no limit (default: 40)")
    add_web_limit_arguments(p)
    p.add_argument("--web.config.file", dest="web_config_file", default=None,
                   help="exporter-toolkit YAML for TLS and basic auth (tls_server_config, basic_auth_users)")
    p.add_argument("--scrape.timeout", dest="scrape_timeout", type=float, default=10.0,
                   help="seconds a collector may take in one scrape before it reports success 0 (default: 10)")
    p.add_argument("--log.level", dest="log_level", default="info",
                   choices=["debug", "info", "warn", "error"], help="log level (default: info)")
    p.add_argument("--log.format", dest="log_format", default="logfmt", choices=["logfmt", "json"],
                   help="log line format (default: logfmt)")
    p.add_argument("--path.procfs", dest="procfs", default="/proc", help="procfs mount point (default: /proc)")
    p.add_argument("--path.sysfs", dest="sysfs", default="/sys", help="sysfs mount point (default: /sys)")
    p.add_argument("--path.rootfs", dest="rootfs", default="/", help="host root filesystem (default: /)")
    p.add_argument("--otel.traces", dest="otel_traces", action="store_true",
                   help="emit one OpenTelemetry trace per finished job over OTLP (configure with OTEL_* "
                        "environment variables, e.g. OTEL_EXPORTER_OTLP_ENDPOINT)")
    p.add_argument("--otel.metrics", dest="otel_metrics", action="store_true",
                   help="also push every collected family over OTLP (OTEL_* environment variables)")
    p.add_argument("--otel.metrics.interval", dest="otel_metrics_interval", type=float, default=60.0,
                   help="seconds between OTLP metric pushes (default: 60)")
    p.add_argument("--collector.disable-defaults", dest="disable_defaults", action="store_true",
                   help="enable only the collectors named with --collector.<name>")
    group = p.add_argument_group("collectors", "each collector: --collector.<name> / --no-collector.<name>")
    for name, cls in registry.items():
        agents = ",".join(sorted(cls.default_agents)) or "none (opt-in)"
        group.add_argument(f"--collector.{name}", dest=f"collector__{name}", action="store_const", const=True,
                           default=None, help=_pct(f"{cls.help} [default on: {agents}]"))
        group.add_argument(f"--no-collector.{name}", dest=f"collector__{name}", action="store_const",
                           const=False, help=argparse.SUPPRESS)
        for opt in cls.options:
            kwargs: dict[str, Any] = {"dest": f"opt__{name}__{opt.name.replace('-', '_')}",
                                      "default": opt.default, "help": _pct(f"{opt.help} (default: {opt.default})")}
            if opt.type is bool:
                kwargs["action"] = argparse.BooleanOptionalAction
            else:
                kwargs["type"] = opt.type
                kwargs["metavar"] = opt.name.replace("-", "_").upper()
                if opt.choices:
                    kwargs["choices"] = opt.choices
            group.add_argument(f"--collector.{name}.{opt.name}", **kwargs)


def enabled_collectors(args: argparse.Namespace, registry: dict[str, type[Collector]]) -> list[str]:
    names = []
    for name, cls in registry.items():
        flag = getattr(args, f"collector__{name}")
        default = (args.agent in cls.default_agents) and not args.disable_defaults
        if flag is True or (flag is None and default):
            names.append(name)
    return names


def collector_options(args: argparse.Namespace, cls: type[Collector]) -> dict[str, Any]:
    return {o.name: getattr(args, f"opt__{cls.name}__{o.name.replace('-', '_')}") for o in cls.options}


def parse_listen_address(addr: str) -> tuple[str, int]:
    """':9100' -> ('0.0.0.0', 9100); '[::1]:9100' -> ('::1', 9100); raise ValueError otherwise."""
    host, sep, port = addr.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--web.listen-address {addr!r}: expected [host]:port, e.g. :19466 or 127.0.0.1:19466")
    host = host.strip("[]") or "0.0.0.0"
    return host, int(port)


def build_collectors(args: argparse.Namespace, registry: dict[str, type[Collector]]) -> list[Collector]:
    """Instantiate the enabled collectors; skip (one log line) those whose source is absent here."""
    paths = Paths(procfs=args.procfs, sysfs=args.sysfs, rootfs=args.rootfs)
    active: list[Collector] = []
    for name in enabled_collectors(args, registry):
        cls = registry[name]
        ctx = CollectorContext(paths=paths, options=collector_options(args, cls), agent=args.agent)
        try:
            collector = cls(ctx)
            reason = collector.available()
        except Exception as exc:  # noqa: BLE001 - a broken collector must not stop the others
            log.error("collector=%s disabled: %s", name, exc)
            continue
        if reason:
            log.info("collector=%s skipped: %s", name, reason)
            continue
        active.append(collector)
    return active


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
        self.httpd = ExporterHTTPServer(address, self.handle, web, telemetry_path, limits)
        self.watcher = (WebConfigWatcher(web_config_file, web, self.httpd.set_web, reload_interval)
                        if web_config_file else None)
        self.exporter_metrics = ExporterMetrics(self.httpd, self.watcher) if exporter_metrics else None
        self._build_info = {fmt: render_family(build_info(), fmt) for fmt in (TEXT, OPENMETRICS)}
        self._own_bytes = FamilyBytes()
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def handle(self, request: Request) -> Response:
        """Route one request (on an HTTP worker thread, after authentication)."""
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
        query = request.query
        try:
            only = select(self.scrape.names, self.known_collectors, query.get("collect[]", []),
                          query.get("exclude[]", []))
        except SelectionError as exc:
            return Response(400, f"{exc}\n".encode())
        fmt, content_type = negotiate(request.header("accept"))
        parts = self.scrape.render(fmt, only)
        parts.append(self._build_info[fmt])
        if self.exporter_metrics is not None:
            parts.extend(self._own_bytes.render(self.exporter_metrics.collect(), fmt))
        if fmt == OPENMETRICS:
            parts.append(OPENMETRICS_EOF)
        return Response(200, b"".join(parts), content_type)

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
    tracer, pusher_factory = _otel_outputs(args)
    if tracer is not None or pusher_factory is not None:
        from hpcwatch.exporters.otel.collector import OTelSelfCollector

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

    registry = load_all()
    p = argparse.ArgumentParser(prog="hpcwatch serve")
    add_serve_arguments(p, registry)
    args = p.parse_args(argv)
    setup_logging(args.log_level, args.log_format)
    return run_serve(args)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main_serve())
