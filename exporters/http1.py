"""HTTP/1.1 framing for the exporter's server: parse a request head, write a response head (pure, no I/O).

Only what a metrics endpoint needs: GET and HEAD, no request bodies, keep-alive per RFC 9112.
A malformed head raises `HeadError` carrying the status to answer with, so the server can reply
and close instead of guessing. `GzipPrefix` gzips a body whose long start is the same for many
responses: the start is compressed once, each response adds its short end uncompressed.
"""

from __future__ import annotations

import dataclasses
import gzip
import re
import struct
import time
import zlib
from email.utils import formatdate
from http import HTTPStatus
from urllib.parse import parse_qs, unquote

HEAD_END = b"\r\n\r\n"
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9a-zA-Z]+")   # RFC 9110 5.6.2 token


class HeadError(ValueError):
    """The request head cannot be served: answer `status` with `reason`, then close the connection."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclasses.dataclass(frozen=True)
class Request:
    """One parsed request head: method, path, query parameters, lower-cased headers, keep-alive wish."""

    method: str
    target: str
    version: str
    headers: dict[str, str]

    @property
    def path(self) -> str:
        return unquote(self.target.split("?", 1)[0])

    @property
    def query(self) -> dict[str, list[str]]:
        _, _, qs = self.target.partition("?")
        return parse_qs(qs, keep_blank_values=True) if qs else {}

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        if self.version == "HTTP/1.0":
            return "keep-alive" in tokens
        return "close" not in tokens

    def header(self, name: str, default: str = "") -> str:
        return self.headers.get(name, default)


def parse_head(head: bytes) -> Request:
    """Request line and header fields (without the final blank line) -> Request; HeadError when malformed."""
    try:
        text = head.decode("latin-1")
    except UnicodeDecodeError as exc:  # pragma: no cover - latin-1 decodes every byte
        raise HeadError(400, "undecodable request head") from exc
    text = text.lstrip("\r\n")  # RFC 9112 2.2: ignore empty lines before the request line
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3:
        raise HeadError(400, "malformed request line")
    method, target, version = parts
    if not _TOKEN.fullmatch(method):
        raise HeadError(400, "malformed method")
    if not version.startswith("HTTP/1."):
        if version.startswith("HTTP/"):
            raise HeadError(505, "only HTTP/1.0 and HTTP/1.1 are served")
        raise HeadError(400, "malformed HTTP version")
    if not target.startswith("/") and target != "*":
        raise HeadError(400, "request target must be an absolute path")
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        if line[0] in " \t":
            raise HeadError(400, "obsolete header line folding")
        name, sep, value = line.partition(":")
        if not sep or not _TOKEN.fullmatch(name):
            raise HeadError(400, "malformed header field")
        key = name.lower()
        value = value.strip(" \t")
        headers[key] = f"{headers[key]}, {value}" if key in headers else value
    if "transfer-encoding" in headers:
        raise HeadError(501, "request bodies are not accepted")
    length = headers.get("content-length", "0").strip()
    if not length.isdigit():
        raise HeadError(400, "malformed Content-Length")
    if int(length) > 0:
        raise HeadError(413, "request bodies are not accepted")
    return Request(method, target, "HTTP/1.0" if version == "HTTP/1.0" else "HTTP/1.1", headers)


_date_cache: tuple[int, str] = (0, "")


def http_date() -> str:
    """The Date header value, formatted once per second."""
    global _date_cache
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache = (now, formatdate(now, usegmt=True))
    return _date_cache[1]


_STATUS_LINES = {s.value: f"HTTP/1.1 {s.value} {s.phrase}" for s in HTTPStatus}


def response_head(status: int, headers: list[tuple[str, str]], close: bool) -> bytes:
    """Status line and header fields of a response, ending with the blank line."""
    lines = [_STATUS_LINES.get(status) or f"HTTP/1.1 {status} ", f"Date: {http_date()}"]
    lines.extend(f"{k}: {v}" for k, v in headers)
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def accepts_gzip(request: Request) -> bool:
    """Whether the response may be gzipped (as promhttp: any mention of gzip in Accept-Encoding)."""
    return "gzip" in request.header("accept-encoding")


def gzip_body(body: bytes) -> bytes:
    """A whole body, gzipped at the fastest level (a scrape is compressed once, read once)."""
    return gzip.compress(body, compresslevel=1)


# RFC 1952 member header: deflate, no flags, no mtime, fastest compression (XFL 4), unknown OS.
_GZIP_HEADER = b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x04\xff"
_STORED_MAX = 0xFFFF


class GzipPrefix:
    """One gzip member for `prefix + tail`, with `prefix` deflated once and each tail stored as is.

    The prefix's deflate stream ends with a full flush (byte-aligned, no back-references across it),
    so stored blocks (RFC 1951 3.2.4) can follow it; the CRC and length of the whole body close the
    member (RFC 1952). A scrape's tail is a few kilobytes of per-request counters, so storing it
    costs a few kilobytes on the wire instead of compressing on every request."""

    __slots__ = ("prefix", "_deflated", "_crc")

    def __init__(self, prefix: bytes) -> None:
        self.prefix = prefix
        deflate = zlib.compressobj(1, zlib.DEFLATED, -zlib.MAX_WBITS)
        self._deflated = deflate.compress(prefix) + deflate.flush(zlib.Z_FULL_FLUSH)
        self._crc = zlib.crc32(prefix)

    def member(self, tail: bytes) -> bytes:
        """The gzip member of `prefix + tail`."""
        blocks = [_GZIP_HEADER, self._deflated]
        for start in range(0, max(len(tail), 1), _STORED_MAX):
            chunk = tail[start:start + _STORED_MAX]
            final = start + _STORED_MAX >= len(tail)
            blocks.append(struct.pack("<BHH", 1 if final else 0, len(chunk), len(chunk) ^ 0xFFFF))
            blocks.append(chunk)
        blocks.append(struct.pack("<II", zlib.crc32(tail, self._crc), (len(self.prefix) + len(tail)) & 0xFFFFFFFF))
        return b"".join(blocks)
