"""One HTTP/1.1 connection as an asyncio Protocol: request framing, deadlines, keep-alive, back-pressure.

The server (server.py) decides what to answer; a `Connection` cuts request heads out of the bytes
as they arrive, keeps one request in flight at a time (pipelined ones wait in its buffer) and
closes itself when a deadline passes: the request head must be complete within
`read_header_timeout` of the accept (or of a kept-alive request's first byte), a kept-alive
connection may stay idle for `idle_timeout`, and a client must take a response that overflows the
transport's buffer within `write_timeout`. Deadlines are loop timer handles, not tasks, so a request
the server answers on the loop costs no task, future or thread.
"""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import TYPE_CHECKING

from hpcwatch.exporters.http1 import HEAD_END, HeadError, Request, parse_head

if TYPE_CHECKING:
    from hpcwatch.exporters.server import ExporterHTTPServer, Response
    from hpcwatch.exporters.webconfig import WebConfig

log = logging.getLogger("hpcwatch.server")


class Connection(asyncio.Protocol):
    """A client connection from accept to close; `task` is its TLS set-up or a request answered off the loop."""

    def __init__(self, server: ExporterHTTPServer, sock: socket.socket, peer: object, accepted: float,
                 web: WebConfig) -> None:
        self.server = server
        self.sock = sock
        self.peer = peer
        self.accepted = accepted
        self.web = web                      # the web config current at accept (TLS, allowed client SANs)
        self.transport: asyncio.Transport | None = None
        self.task: asyncio.Task | None = None
        self.gone = False                   # the client closed its side, or the connection is closed
        self._loop = server.loop
        self._limits = server.limits
        self._buf = bytearray()
        self._scan = 0                      # where the search for the end of the head resumes
        self._timer: asyncio.TimerHandle | None = None
        self._deadline: float | None = None   # when to close, unless a request or a response moves it
        self._reason: str | None = None       # the close reason counted then (None: the write deadline)
        self._busy = False                  # a request is in flight, or its response waits to drain
        self._idle = False                  # kept alive, waiting for the next request's first byte
        self._closing = False
        self._parsing = False
        self._reading_paused = False
        self._writing_paused = False

    # ------------------------------------------------------------ asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if self.web.ssl_context is not None and self.web.client_allowed_sans and not self._san_allowed():
            self.server.stats.closed["tls_failed"] += 1
            self.abort()
            return
        self._arm(self.accepted + self._limits.read_header_timeout, "header_timeout")

    def data_received(self, data: bytes) -> None:
        if self._closing:
            return
        began = self._idle
        self._idle = False
        self._buf += data
        if self._busy:   # pipelined: it waits, but never more than one head's worth
            if len(self._buf) > self._limits.max_header_bytes and not self._reading_paused:
                self._reading_paused = True
                self.transport.pause_reading()
            return
        self._next()
        if began and not self._busy and not self._closing and self._buf:
            # A kept-alive request began here and its head is not complete: it has until this deadline.
            self._arm(self._loop.time() + self._limits.read_header_timeout, "header_timeout")

    def eof_received(self) -> bool:
        self.gone = True
        # Keep the transport open to send the answer in flight (TLS transports cannot half-close).
        return self._busy and self.web.ssl_context is None

    def connection_lost(self, exc: Exception | None) -> None:
        self._shut()
        self.server.forget(self)

    def pause_writing(self) -> None:
        self._writing_paused = True
        self._arm(self._loop.time() + self._limits.write_timeout, None)

    def resume_writing(self) -> None:
        self._writing_paused = False
        self._disarm()
        if self._busy and not self._closing:
            self._ready()

    # ------------------------------------------------------------ requests
    def _next(self) -> None:
        """Answer the complete request heads in the buffer, one at a time (not re-entered)."""
        if self._parsing:
            return
        self._parsing = True
        try:
            limit = self._limits.max_header_bytes
            while not self._busy and not self._closing:
                end = self._buf.find(HEAD_END, self._scan)
                if end < 0:
                    if len(self._buf) > limit:
                        self.fail(431, "request head too large")
                    else:
                        self._scan = max(0, len(self._buf) - len(HEAD_END) + 1)
                    return
                if end > limit:
                    self.fail(431, "request head too large")
                    return
                head = bytes(self._buf[:end])
                del self._buf[:end + len(HEAD_END)]
                self._scan = 0
                self._disarm()
                try:
                    request = parse_head(head)
                except HeadError as exc:
                    self.fail(exc.status, exc.reason)
                    return
                self._busy = True
                self.server.dispatch(self, request)
        finally:
            self._parsing = False

    def send(self, request: Request, response: Response) -> None:
        """Write the answer to `request`; then close, or wait for the next request."""
        if self._closing or self.transport is None or self.transport.is_closing():
            return
        close = not request.keep_alive or self.gone
        for chunk in self.server.encode(request, response, close):
            self.transport.write(chunk)
        if close:
            self._closing = True
            self.transport.close()   # after the buffer drains; a stalled client meets the write deadline
        elif not self._writing_paused:
            self._ready()

    def fail(self, status: int, reason: str) -> None:
        """Answer a request head that cannot be served, and close."""
        self.server.stats.closed["bad_request"] += 1
        self.server.count(status)
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(self.server.error_response(status, reason))
        self._closing = True
        self._disarm()
        if self.transport is not None:
            self.transport.close()

    def _ready(self) -> None:
        """The answer is out: wait for the next request (an idle deadline, or the head's one if it began)."""
        self._busy = False
        self.server.waiting(self)
        if self._reading_paused:
            self._reading_paused = False
            self.transport.resume_reading()
        if self._buf:   # pipelined: the next head began arriving already
            self._arm(self._loop.time() + self._limits.read_header_timeout, "header_timeout")
            self._next()
        else:
            self._idle = True
            self._arm(self._loop.time() + self._limits.idle_timeout, "idle_timeout")

    # ------------------------------------------------------------ deadlines and closing
    def _arm(self, when: float, reason: str | None) -> None:
        """Close at `when` (counting `reason`) unless re-armed or disarmed first.

        The deadline is a field; the loop timer only moves when it must fire sooner, and when it fires
        before a deadline that moved later it is set again: a kept-alive request costs no timer work."""
        self._deadline, self._reason = when, reason
        if self._timer is None or self._timer.when() > when:
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(when, self._tick)

    def _disarm(self) -> None:
        self._deadline = None

    def _tick(self) -> None:
        self._timer = None
        if self._deadline is None:
            return
        if self._loop.time() < self._deadline:
            self._timer = self._loop.call_at(self._deadline, self._tick)
            return
        if self._reason is not None:
            self.server.stats.closed[self._reason] += 1
        else:
            log.debug("connection from %s: the client did not take its response within the write timeout", self.peer)
        self.abort()

    def abort(self) -> None:
        """Close now: no goodbye, the descriptor is released at once (timeouts, evictions, errors)."""
        self._shut()
        if self.task is not None and not self.task.done() and self.task is not asyncio.current_task():
            self.task.cancel()
        if self.transport is not None:
            self.transport.abort()
        else:
            self.sock.close()
        self.server.forget(self)

    def _shut(self) -> None:
        """Closed or closing: nothing more is read or answered, and no deadline fires."""
        self._closing = True
        self.gone = True
        self._disarm()
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _san_allowed(self) -> bool:
        tls = self.transport.get_extra_info("ssl_object")
        cert = (tls.getpeercert() if tls is not None else None) or {}
        names = {v for k, v in cert.get("subjectAltName", ()) if k in ("DNS", "IP Address", "email", "URI")}
        return bool(names & set(self.web.client_allowed_sans))
