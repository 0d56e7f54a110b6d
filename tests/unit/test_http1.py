"""HTTP/1.1 request-head parsing and response heads: what is accepted, what is refused with which status,
keep-alive per version, and no input that raises anything but HeadError; a gzip body with a
precompressed prefix decodes to prefix + tail for any bytes, with zlib and with the gzip tool."""

import gzip
import shutil
import subprocess
import zlib

import pytest
from hpcwatch.exporters.http1 import GzipPrefix, HeadError, parse_head, response_head
from hpcwatch.exporters.server import duration
from hypothesis import given, settings
from hypothesis import strategies as st


def test_parses_a_prometheus_scrape():
    req = parse_head(b"GET /metrics?collect%5B%5D=node&collect[]=jobs HTTP/1.1\r\nHost: n1:19466\r\n"
                     b"User-Agent: Prometheus/2.45.0\r\nAccept: application/openmetrics-text;version=1.0.0\r\n"
                     b"Accept-Encoding: gzip\r\nAuthorization: Basic cHJvbTpzM2NyZXQ=\r\n"
                     b"X-Prometheus-Scrape-Timeout-Seconds: 10\r\n")
    assert (req.method, req.path, req.version) == ("GET", "/metrics", "HTTP/1.1")
    assert req.query == {"collect[]": ["node", "jobs"]}
    assert req.header("accept-encoding") == "gzip"
    assert req.header("authorization") == "Basic cHJvbTpzM2NyZXQ="
    assert req.keep_alive


@pytest.mark.parametrize(("version", "connection", "keep"), [
    ("HTTP/1.1", None, True), ("HTTP/1.1", "close", False), ("HTTP/1.1", "Keep-Alive, Close", False),
    ("HTTP/1.0", None, False), ("HTTP/1.0", "keep-alive", True),
])
def test_keep_alive_by_version_and_connection_header(version, connection, keep):
    head = f"GET / {version}\r\n" + (f"Connection: {connection}\r\n" if connection else "")
    assert parse_head(head.encode()).keep_alive is keep


def test_repeated_headers_are_joined_and_leading_blank_lines_ignored():
    req = parse_head(b"\r\nGET / HTTP/1.1\r\nAccept: text/plain\r\nACCEPT: */*\r\n")
    assert req.header("accept") == "text/plain, */*"


@pytest.mark.parametrize(("head", "status"), [
    (b"GET /metrics\r\n", 400),                       # HTTP/0.9
    (b"GET  /metrics HTTP/1.1\r\n", 400),
    (b"GET /metrics HTTP/2.0\r\n", 505),
    (b"GET /metrics FTP/1.0\r\n", 400),
    (b"GET metrics HTTP/1.1\r\n", 400),
    (b"G(T / HTTP/1.1\r\n", 400),
    (b"GET / HTTP/1.1\r\nX-A: 1\r\n  folded\r\n", 400),
    (b"GET / HTTP/1.1\r\nNo colon here\r\n", 400),
    (b"GET / HTTP/1.1\r\nBad Name: x\r\n", 400),
    (b"GET / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n", 501),
    (b"GET / HTTP/1.1\r\nContent-Length: 12\r\n", 413),
    (b"GET / HTTP/1.1\r\nContent-Length: -1\r\n", 400),
])
def test_refusals_carry_the_status_to_answer(head, status):
    with pytest.raises(HeadError) as err:
        parse_head(head)
    assert err.value.status == status


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300))
def test_any_bytes_parse_or_raise_head_error(data):
    try:
        req = parse_head(data)
    except HeadError as exc:
        assert 400 <= exc.status < 600
    else:
        assert req.target.startswith("/") or req.target == "*"


def test_response_head():
    head = response_head(503, [("Content-Type", "text/plain"), ("Content-Length", "3")], close=True).decode()
    lines = head.split("\r\n")
    assert lines[0] == "HTTP/1.1 503 Service Unavailable"
    assert lines[1].startswith("Date: ") and lines[1].endswith(" GMT")
    assert "Content-Length: 3" in lines and "Connection: close" in lines and head.endswith("\r\n\r\n")


@pytest.mark.parametrize(("text", "seconds"), [("10", 10.0), ("10s", 10.0), ("1.5m", 90.0), ("500ms", 0.5),
                                               ("1h", 3600.0)])
def test_duration_flags(text, seconds):
    assert duration(text) == seconds


@pytest.mark.parametrize("text", ["0", "-1s", "ten", "", "infs", "nan"])
def test_duration_flags_reject(text):
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="positive duration"):
        duration(text)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.binary(max_size=3000), st.integers(0, 2))
def test_gzip_prefix_member_decodes_to_prefix_and_tail(prefix, tail, repeat):
    prefix, tail = prefix * (1 + repeat * 40), tail * (1 + repeat * 30)   # also tails past one stored block
    member = GzipPrefix(prefix).member(tail)
    assert gzip.decompress(member) == prefix + tail
    inflate = zlib.decompressobj(16 + zlib.MAX_WBITS)   # what HTTP clients (curl, Go, urllib3) do
    assert inflate.decompress(member) + inflate.flush() == prefix + tail and inflate.eof


def test_gzip_prefix_member_passes_the_gzip_tool():
    tool = shutil.which("gzip")
    if tool is None:
        pytest.skip("no gzip binary")
    prefix, tail = b"# HELP hpc_x X.\n" * 500, b"hpcwatch_http_responses_total{code=\"200\"} 7.0\n" * 2000
    member = GzipPrefix(prefix).member(tail)
    assert subprocess.run([tool, "-t"], input=member).returncode == 0
    assert subprocess.run([tool, "-dc"], input=member, capture_output=True).stdout == prefix + tail
