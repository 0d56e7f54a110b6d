"""The HTTP side: one asyncio loop owns every connection; requests run on a small pool of threads.

A connection costs a file descriptor and a few hundred bytes until a complete request head has
arrived, never a thread: with one thread per connection, 1,100 idle connections starved every
scrape (issue 15). So:
- the request line and headers must arrive within `read_header_timeout` (a partial request without
  its final CRLF is closed then), and a kept-alive connection idle for `idle_timeout` is closed;
- open connections are bounded (`max_connections`, lowered to fit the open-files limit); at the
  bound a new connection closes the one that has waited longest for a request (idle, still
  dribbling its head, or queued for a password check), as nginx reuses keep-alive connections when
  it runs short, so a scraper always gets in and an attacker only evicts its own connections;
- only complete requests reach the worker threads (a bounded pool);
- the scrape slot (`--web.max-requests`) is taken before a password is checked, and bcrypt runs
  one at a time on its own thread (the auth lane); waiting for it costs no thread and no slot.
A request that `answer_now` can answer without running anything that blocks (a scrape whose every
collector is a prepared snapshot, the landing and health pages; behind a password only once its
verdict is cached) is answered in the loop, with no task, future or thread; the rest go to the
workers. A connection is a `connection.Connection` protocol (framing and deadlines live there).
TLS handshakes run in the loop under the same deadline; a connection uses the web config current
when it was accepted, so a reload swaps certificates for new connections. A plain-HTTP request to a
TLS port gets a clear 400 instead of a hang.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import errno
import logging
import os
import resource
import socket
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.connection import Connection
from hpcwatch.exporters.flags import argtype
from hpcwatch.exporters.http1 import Request, accepts_gzip, gzip_body, response_head
from hpcwatch.exporters.webauth import BasicAuth
from hpcwatch.exporters.webconfig import WebConfig

from hpcwatch.version import __version__

log = logging.getLogger("hpcwatch.server")

LANDING = """<!doctype html><html><head><title>hpcwatch</title></head><body>
<h1>hpcwatch {version}</h1><p>{agent} agent. Collectors: {collectors}</p>
<p><a href="{path}">Metrics</a></p></body></html>"""

FD_RESERVE = 64          # descriptors kept free for collectors' files and subprocess pipes
_INLINE_BODY = 64 * 1024  # bodies up to this size go out in one write with the head
_PLAIN_ON_TLS = (b"HTTP/1.0 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n"
                 b"Client sent an HTTP request to an HTTPS server.\n")
_SERVER = f"hpcwatch/{__version__}"
CLOSE_REASONS = ("header_timeout", "idle_timeout", "evicted", "refused", "tls_failed", "bad_request")


@dataclasses.dataclass(frozen=True)
class Limits:
    """How long a client may take and how many it may be (flags: --web.*)."""

    read_header_timeout: float = 10.0   # from accept (or a kept-alive request's first byte) to the end of its head
    idle_timeout: float = 120.0         # between requests on a kept-alive connection
    write_timeout: float = 60.0         # to hand a response to a client that reads it slowly
    max_connections: int = 1024
    max_requests: int = 40              # concurrent requests of the telemetry path; 0: no limit
    max_header_bytes: int = 16 * 1024


@dataclasses.dataclass
class Response:
    """What a handler returns: status, body, content type and extra headers."""

    status: int
    body: bytes
    content_type: str = "text/plain; charset=utf-8"
    headers: list[tuple[str, str]] = dataclasses.field(default_factory=list)


Handler = Callable[[Request], Response]
InlineHandler = Callable[[Request], "Response | None"]  # on the loop: must not block; None: ask `Handler`


duration = argtype(opt.positive_duration, "duration")  # the --web.* timeouts (exporters/options.py)


def _positive_int(text: str) -> int:
    if not text.strip().isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a whole number >= 1")
    return int(text)


def add_web_limit_arguments(p: argparse.ArgumentParser) -> None:
    """Flags for the connection limits, web config reload and exporter metrics (`hpcwatch serve`)."""
    d = Limits()
    p.add_argument("--web.read-header-timeout", dest="read_header_timeout", type=duration,
                   default=d.read_header_timeout, metavar="DURATION",
                   help="time a client has to send its request line and headers, counted from the connection "
                        "(or a kept-alive request's first byte); slower ones are closed "
                        f"(default: {d.read_header_timeout:g}s)")
    p.add_argument("--web.idle-timeout", dest="idle_timeout", type=duration, default=d.idle_timeout,
                   metavar="DURATION",
                   help=f"close a kept-alive connection idle this long (default: {d.idle_timeout:g}s)")
    p.add_argument("--web.max-connections", dest="max_connections", type=_positive_int, default=d.max_connections,
                   metavar="N", help="open connections at most (lowered to fit the open-files limit); at the bound "
                                     "the connection that has waited longest for a request is closed "
                                     f"(default: {d.max_connections})")
    p.add_argument("--web.config.reload-interval", dest="web_config_reload_interval", type=argtype(opt.duration),
                   default=10.0, metavar="DURATION", help="how often to check --web.config.file and its certificates "
                                                          "for changes; 0 checks only on SIGHUP (default: 10s)")
    p.add_argument("--web.disable-exporter-metrics", dest="disable_exporter_metrics", action="store_true",
                   help="leave out the agent's own process_* and hpcwatch_http_*/hpcwatch_web_config_* metrics")


def limits_from_args(args: argparse.Namespace) -> Limits:
    return Limits(read_header_timeout=args.read_header_timeout, idle_timeout=args.idle_timeout,
                  max_connections=args.max_connections, max_requests=args.max_requests)


def fd_budget(wanted: int) -> int:
    """How many connections fit under RLIMIT_NOFILE next to what is open now and FD_RESERVE."""
    soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft == resource.RLIM_INFINITY:
        return wanted
    try:
        in_use = len(os.listdir("/proc/self/fd"))
    except OSError:
        in_use = 32
    return max(8, min(wanted, soft - in_use - FD_RESERVE))


def raise_fd_limit(cap: int = 65536) -> None:
    """Raise the soft open-files limit to the hard one (as the Go runtime does for node_exporter)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = cap if hard == resource.RLIM_INFINITY else min(hard, cap)
    if soft != resource.RLIM_INFINITY and soft < target:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        except (ValueError, OSError) as exc:
            log.debug("cannot raise the open-files limit: %s", exc)


@dataclasses.dataclass
class ServerStats:
    """Counters the exporter reports about its own HTTP side (read from other threads)."""

    closed: dict[str, int] = dataclasses.field(default_factory=lambda: dict.fromkeys(CLOSE_REASONS, 0))
    responses: dict[int, int] = dataclasses.field(default_factory=dict)
    auth_failures: int = 0
    open_connections: int = 0


class ExporterHTTPServer:
    """Serves `handler` on `address`; `serve_forever` runs the loop in the calling thread.

    `answer_now`, when given, is tried first, on the loop itself, for every authenticated request."""

    def __init__(self, address: tuple[str, int], handler: Handler, web: WebConfig,
                 telemetry_path: str = "/metrics", limits: Limits | None = None,
                 answer_now: InlineHandler | None = None) -> None:
        self.handler = handler
        self.answer_now = answer_now
        self.telemetry_path = telemetry_path
        self.limits = limits or Limits()
        self.max_connections = fd_budget(self.limits.max_connections)
        if self.max_connections < self.limits.max_connections:
            log.info("at most %d connections (--web.max-connections=%d lowered to fit the open-files limit)",
                     self.max_connections, self.limits.max_connections)
        self.stats = ServerStats()
        self.web = web
        self.auth = BasicAuth(web.users)
        family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        self._lsock = socket.socket(family, socket.SOCK_STREAM)
        try:
            self._lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self._lsock.bind(address)
            self._lsock.listen(min(socket.SOMAXCONN, 4096))
        except OSError:
            self._lsock.close()
            raise
        self._lsock.setblocking(False)
        self.server_address = self._lsock.getsockname()[:2]
        slots = self.limits.max_requests
        self._slots_free = slots if slots > 0 else None
        self._pool = ThreadPoolExecutor(max_workers=(min(slots, 8) if slots > 0 else 8) + 4,
                                        thread_name_prefix="http")
        self._bcrypt = ThreadPoolExecutor(max_workers=1, thread_name_prefix="bcrypt")
        self._conns: set[Connection] = set()
        self._waiting: dict[Connection, None] = {}   # evictable, longest-waiting first
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lane: asyncio.Semaphore | None = None
        self._stop: asyncio.Future | None = None
        self._running = threading.Event()
        self._stopped = threading.Event()
        self._accept_paused = False
        self._last_warning = 0.0
        self._warned_counts: dict[str, int] = {}

    # ----------------------------------------------------------------- lifecycle (any thread)
    def set_web(self, web: WebConfig) -> None:
        """Use a new web config: TLS for connections accepted from now on, users for every request."""
        auth = self.auth if web.users == self.web.users else BasicAuth(web.users)
        self.web, self.auth = web, auth

    def serve_forever(self) -> None:
        loop = asyncio.new_event_loop()
        loop.set_exception_handler(lambda _loop, ctx: log.debug("http loop: %s", ctx.get("message")))
        self._loop = loop
        try:
            loop.run_until_complete(self._main())
        finally:
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
            self._stopped.set()

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        assert self._loop is not None
        return self._loop

    def wait_started(self, timeout: float = 10.0) -> bool:
        return self._running.wait(timeout)

    def shutdown(self) -> None:
        loop = self._loop
        if loop is not None and self._running.is_set() and not self._stopped.is_set():
            loop.call_soon_threadsafe(self._begin_stop)
            self._stopped.wait(10)

    def server_close(self) -> None:
        self._lsock.close()
        self._pool.shutdown(wait=False, cancel_futures=True)
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    # ----------------------------------------------------------------- the loop
    async def _main(self) -> None:
        loop = asyncio.get_running_loop()
        self._lane = asyncio.Semaphore(1)
        self._stop = loop.create_future()
        loop.add_reader(self._lsock.fileno(), self._on_acceptable)
        self._running.set()
        try:
            await self._stop
        finally:
            if not self._accept_paused:
                loop.remove_reader(self._lsock.fileno())
            tasks = [c.task for c in self._conns if c.task is not None]
            for conn in list(self._conns):
                conn.abort()
            if tasks:
                await asyncio.wait(tasks, timeout=5)

    def _begin_stop(self) -> None:
        if self._stop is not None and not self._stop.done():
            self._stop.set_result(None)

    def _on_acceptable(self) -> None:
        loop = self._loop
        assert loop is not None
        for _ in range(128):
            try:
                sock, peer = self._lsock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno in (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM):
                    # Out of descriptors anyway (collectors hold more than reserved): free one, retry shortly.
                    self._evict_one()
                    self._pause_accept(0.05)
                    self._warn("refused", f"accept failed: {exc.strerror}")
                elif exc.errno not in (errno.ECONNABORTED, errno.EPROTO):
                    log.warning("accept failed: %s", exc)
                return
            if len(self._conns) >= self.max_connections and not self._evict_one():
                self.stats.closed["refused"] += 1
                self._warn("refused", "every connection is busy with a request")
                sock.close()
                continue
            sock.setblocking(False)
            try:
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError:
                pass
            conn = Connection(self, sock, peer, loop.time(), self.web)
            self._conns.add(conn)
            self._waiting[conn] = None
            self.stats.open_connections = len(self._conns)
            conn.task = loop.create_task(self._open(conn))

    def _pause_accept(self, seconds: float) -> None:
        loop = self._loop
        assert loop is not None
        if self._accept_paused:
            return
        self._accept_paused = True
        loop.remove_reader(self._lsock.fileno())

        def resume() -> None:
            self._accept_paused = False
            if self._stop is not None and not self._stop.done():
                loop.add_reader(self._lsock.fileno(), self._on_acceptable)

        loop.call_later(seconds, resume)

    def _evict_one(self) -> bool:
        """Close the connection that has waited longest for a request; False when none is waiting."""
        if not self._waiting:
            return False
        conn = next(iter(self._waiting))
        self.forget(conn)
        self.stats.closed["evicted"] += 1
        self._warn("evicted", f"{self.max_connections} connections open")
        conn.abort()
        return True

    def forget(self, conn: Connection) -> None:
        """The connection is closed (or closing): it no longer counts."""
        self._conns.discard(conn)
        self._waiting.pop(conn, None)
        self.stats.open_connections = len(self._conns)

    def waiting(self, conn: Connection) -> None:
        """The connection waits for a request: evictable, and now the last in line to be."""
        self._waiting.pop(conn, None)
        if conn in self._conns:
            self._waiting[conn] = None

    def _busy(self, conn: Connection) -> None:
        self._waiting.pop(conn, None)

    def _warn(self, reason: str, detail: str) -> None:
        """One warning a minute at most while connections are evicted or refused, with the counts."""
        now = time.monotonic()
        if now - self._last_warning < 60:
            return
        self._last_warning = now
        counts = ", ".join(f"{k} {v - self._warned_counts.get(k, 0)}" for k, v in self.stats.closed.items()
                           if k in ("evicted", "refused"))
        self._warned_counts = dict(self.stats.closed)
        log.warning("too many connections (%s): closing the longest-waiting ones; since the last warning: %s "
                    "(hpcwatch_http_connections_closed_total)", detail, counts)

    # ----------------------------------------------------------------- one connection
    async def _open(self, conn: Connection) -> None:
        """Set the connection up: a plain-HTTP probe and the handshake on a TLS port, then the protocol."""
        loop = asyncio.get_running_loop()
        ctx = conn.web.ssl_context
        remaining = conn.accepted + self.limits.read_header_timeout - loop.time()
        try:
            if ctx is not None:
                if not await self._readable(conn.sock, remaining):
                    self.stats.closed["header_timeout"] += 1
                    conn.abort()
                    return
                try:
                    head = conn.sock.recv(8, socket.MSG_PEEK)
                except OSError:
                    head = b""
                if not head:
                    conn.abort()
                    return
                if head[:1].isalpha():  # a TLS ClientHello starts with 0x16; letters mean plain HTTP
                    try:
                        conn.sock.send(_PLAIN_ON_TLS)
                    except OSError:
                        pass
                    self.stats.closed["bad_request"] += 1
                    conn.abort()
                    return
                remaining = conn.accepted + self.limits.read_header_timeout - loop.time()
                await loop.connect_accepted_socket(lambda: conn, conn.sock, ssl=ctx,
                                                   ssl_handshake_timeout=max(0.1, remaining))
            else:
                await loop.connect_accepted_socket(lambda: conn, conn.sock)
        except asyncio.CancelledError:
            conn.abort()
        except (ssl.SSLError, OSError, ConnectionError, TimeoutError) as exc:
            log.debug("TLS handshake with %s failed: %s", conn.peer, exc)
            self.stats.closed["tls_failed"] += 1
            conn.abort()
        finally:
            if conn.task is asyncio.current_task():   # a request may have started its own task meanwhile
                conn.task = None

    async def _readable(self, sock: socket.socket, timeout: float) -> bool:
        loop = asyncio.get_running_loop()
        fut = loop.create_future()
        loop.add_reader(sock.fileno(), lambda: fut.done() or fut.set_result(None))
        try:
            await asyncio.wait_for(fut, max(0.0, timeout))
            return True
        except TimeoutError:
            return False
        finally:
            loop.remove_reader(sock.fileno())

    def dispatch(self, conn: Connection, request: Request) -> None:
        """Answer a request: here and now when `answer_now` can, else on a worker (a task per request)."""
        response = self._answer_here(request)
        if response is not None:
            conn.send(request, response)
        else:
            conn.task = self.loop.create_task(self._answer_later(conn, request))

    def _answer_here(self, request: Request) -> Response | None:
        """The answer when it costs the loop nothing that blocks; None sends the request to a worker."""
        if request.method not in ("GET", "HEAD"):
            return Response(405, b"Method Not Allowed\n", headers=[("Allow", "GET, HEAD")])
        if self.answer_now is None:
            return None
        auth = self.auth
        if auth.enabled:
            attempt = auth.attempt(request.header("authorization"))
            if attempt is None or auth.cached(attempt) is not True:
                return None   # no credentials, a failure (answered slowly) or a bcrypt to run: the lane
        slot = request.path == self.telemetry_path
        if slot and not self._take_slot():
            return _too_many()
        try:
            response = self.answer_now(request)
        except Exception:  # noqa: BLE001 - a bug here must not reach the loop: the general path answers
            log.exception("answering %s on the loop failed", request.path)
            return None
        finally:
            if slot and self._slots_free is not None:
                self._slots_free += 1
        if response is not None and response.status == 200 and response.body and accepts_gzip(request) \
                and not any(k == "Content-Encoding" for k, _ in response.headers):
            response.body = gzip_body(response.body)
            response.headers.append(("Content-Encoding", "gzip"))
        return response

    async def _answer_later(self, conn: Connection, request: Request) -> None:
        try:
            response = await self._respond(conn, request)
        except asyncio.CancelledError:
            return
        except (ConnectionError, OSError) as exc:
            log.debug("connection from %s: %s", conn.peer, exc)
            conn.abort()
            return
        except Exception:  # noqa: BLE001 - one broken request must not reach the loop
            log.debug("connection from %s failed", conn.peer, exc_info=True)
            conn.abort()
            return
        if conn.task is asyncio.current_task():
            conn.task = None
        conn.send(request, response)

    async def _respond(self, conn: Connection, request: Request) -> Response:
        loop = asyncio.get_running_loop()
        is_metrics = request.path == self.telemetry_path
        slot = False
        try:
            auth = self.auth
            if auth.enabled:
                attempt = auth.attempt(request.header("authorization"))
                verdict = auth.cached(attempt) if attempt is not None else False
                if verdict is None:
                    assert self._lane is not None and attempt is not None
                    async with self._lane:   # waiting here: no thread, no slot, and evictable
                        if conn.gone:   # the client gave up while queued: spend nothing on it
                            raise ConnectionAbortedError("client left while waiting for the auth lane")
                        if is_metrics:
                            slot = self._take_slot()
                            if not slot:
                                return _too_many()
                        self._busy(conn)
                        verdict = await loop.run_in_executor(self._bcrypt, auth.verify, attempt)
                elif not verdict:
                    # A failure answered from the cache (or without credentials) takes as long as one
                    # that ran bcrypt, and costs no CPU: floods are slowed, not served fast.
                    await asyncio.sleep(auth.bcrypt_seconds)
                if not verdict:
                    self.stats.auth_failures += 1
                    return Response(401, b"Unauthorized\n", headers=[("WWW-Authenticate", 'Basic realm="hpcwatch"')])
            if is_metrics and not slot:
                slot = self._take_slot()
                if not slot:
                    return _too_many()
            self._busy(conn)
            return await loop.run_in_executor(self._pool, self._run_handler, request)
        finally:
            if slot and self._slots_free is not None:
                self._slots_free += 1

    def _take_slot(self) -> bool:
        if self._slots_free is None:
            return True
        if self._slots_free <= 0:
            return False
        self._slots_free -= 1
        return True

    def _run_handler(self, request: Request) -> Response:
        """On a worker thread: the handler, then gzip when the client accepts it."""
        try:
            response = self.handler(request)
        except Exception:  # noqa: BLE001 - a handler bug is a 500, never a dead connection
            log.exception("handler failed for %s", request.path)
            return Response(500, b"Internal Server Error\n")
        if response.body and response.status == 200 and accepts_gzip(request):
            response.body = gzip_body(response.body)
            response.headers.append(("Content-Encoding", "gzip"))
        return response

    def encode(self, request: Request, response: Response, close: bool) -> list[bytes]:
        """The response as bytes to write: the head with the body when it is small, else apart."""
        self.count(response.status)
        headers = [("Content-Type", response.content_type), ("Content-Length", str(len(response.body))),
                   ("Server", _SERVER)]
        headers.extend(self.web.headers.items())
        headers.extend(response.headers)
        head = response_head(response.status, headers, close)
        body = b"" if request.method == "HEAD" else response.body
        if len(body) <= _INLINE_BODY:
            return [head + body]
        return [head, body]

    def error_response(self, status: int, reason: str) -> bytes:
        """An answer to a request head that cannot be served (the connection closes after it)."""
        body = (reason + "\n").encode()
        return response_head(status, [("Content-Type", "text/plain; charset=utf-8"),
                                      ("Content-Length", str(len(body)))], True) + body

    def count(self, status: int) -> None:
        self.stats.responses[status] = self.stats.responses.get(status, 0) + 1


def _too_many() -> Response:
    return Response(503, b"Too many concurrent scrapes (--web.max-requests)\n")
