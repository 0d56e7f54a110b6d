"""The HTTP side: serves the telemetry path with optional TLS, basic auth, gzip and a request limit.

TLS handshakes happen in the connection's own thread (a slow client cannot stall accept), and a
plain-HTTP request to a TLS port gets a clear 400 instead of a hang or a traceback.
"""

from __future__ import annotations

import base64
import gzip
import hmac
import logging
import socket
import ssl
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import bcrypt
from hpcwatch.exporters.exposition import render_text
from hpcwatch.exporters.webconfig import WebConfig
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from hpcwatch.version import __version__

log = logging.getLogger("hpcwatch.server")

LANDING = """<!doctype html><html><head><title>hpcwatch</title></head><body>
<h1>hpcwatch {version}</h1><p>{agent} agent. Collectors: {collectors}</p>
<p><a href="{path}">Metrics</a></p></body></html>"""


class _AuthCache:
    """bcrypt is deliberately slow; cache verified (user, password) pairs so scrapes stay cheap."""

    def __init__(self, users: dict[str, bytes]) -> None:
        self.users = users
        self._ok: set[tuple[str, bytes]] = set()
        self._lock = threading.Lock()

    def check(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode("utf-8").partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            bcrypt.checkpw(b"x", b"$2b$10$" + b"." * 53)  # equalise timing for unknown users
            return False
        key = (user, hmac.digest(hashed, password.encode(), "sha256"))
        with self._lock:
            if key in self._ok:
                return True
        try:
            ok = bcrypt.checkpw(password.encode(), hashed)
        except ValueError:
            return False
        if ok:
            with self._lock:
                self._ok.add(key)
        return ok


class ExporterHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128

    def __init__(self, address: tuple[str, int], registry: CollectorRegistry, web: WebConfig,
                 telemetry_path: str = "/metrics", max_requests: int = 40, landing: str = "") -> None:
        host = address[0]
        if ":" in host:
            self.address_family = socket.AF_INET6
        super().__init__(address, _Handler)
        self.registry = registry
        self.web = web
        self.auth = _AuthCache(web.users)
        self.telemetry_path = telemetry_path
        self.landing = landing
        # max_requests <= 0 means unlimited, as in node_exporter.
        self.slots = threading.BoundedSemaphore(max_requests) if max_requests > 0 else None

    def process_request_thread(self, request, client_address):  # type: ignore[override]
        if self.web.ssl_context is not None:
            request = self._tls_wrap(request)
            if request is None:
                return
        super().process_request_thread(request, client_address)

    def _tls_wrap(self, raw: socket.socket) -> ssl.SSLSocket | None:
        raw.settimeout(10)
        try:
            head = raw.recv(8, socket.MSG_PEEK)
        except OSError:
            raw.close()
            return None
        if head[:1].isalpha():  # a TLS ClientHello starts with 0x16; letters mean plain HTTP
            try:
                raw.sendall(b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                            b"Client sent an HTTP request to an HTTPS server.\n")
            except OSError:
                pass
            raw.close()
            return None
        try:
            tls = self.web.ssl_context.wrap_socket(raw, server_side=True)  # type: ignore[union-attr]
        except (ssl.SSLError, OSError) as exc:
            log.debug("TLS handshake failed: %s", exc)
            raw.close()
            return None
        if self.web.client_allowed_sans and not _san_allowed(tls, self.web.client_allowed_sans):
            tls.close()
            return None
        tls.settimeout(None)
        return tls

    def handle_error(self, request, client_address):  # noqa: D401 - quieter than the default traceback
        log.debug("connection from %s failed", client_address, exc_info=True)


def _san_allowed(tls: ssl.SSLSocket, allowed: list[str]) -> bool:
    cert = tls.getpeercert() or {}
    names = {v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address", "email", "URI")}
    return bool(names & set(allowed))


class _Handler(BaseHTTPRequestHandler):
    server: ExporterHTTPServer
    protocol_version = "HTTP/1.1"
    # Headers and body go out in separate writes; without TCP_NODELAY the body waits ~40 ms for an ACK.
    disable_nagle_algorithm = True
    server_version = f"hpcwatch/{__version__}"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - stdlib signature
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, code: int, body: bytes, ctype: str = "text/plain; charset=utf-8",
              extra: dict[str, str] | None = None) -> None:
        self.send_response(code)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        for k, v in {**self.server.web.headers, **(extra or {})}.items():
            self.send_header(k, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def do_HEAD(self) -> None:  # noqa: N802 - stdlib naming
        self.do_GET()

    def do_GET(self) -> None:  # noqa: N802 - stdlib naming
        if not self.server.auth.check(self.headers.get("Authorization")):
            self._send(401, b"Unauthorized\n", extra={"WWW-Authenticate": 'Basic realm="hpcwatch"'})
            return
        path = self.path.split("?", 1)[0]
        if path == self.server.telemetry_path:
            self._metrics()
        elif path == "/":
            self._send(200, self.server.landing.encode(), "text/html; charset=utf-8")
        elif path in ("/-/healthy", "/-/ready"):
            self._send(200, b"OK\n")
        else:
            self._send(404, b"Not Found\n")

    def _metrics(self) -> None:
        slots = self.server.slots
        if slots is not None and not slots.acquire(blocking=False):
            self._send(503, b"Too many concurrent scrapes (--web.max-requests)\n")
            return
        try:
            body = render_text(self.server.registry.collect())
        finally:
            if slots is not None:
                slots.release()
        extra = {}
        if "gzip" in (self.headers.get("Accept-Encoding") or ""):
            body = gzip.compress(body, compresslevel=1)
            extra["Content-Encoding"] = "gzip"
        self._send(200, body, CONTENT_TYPE_LATEST, extra)
