"""The serving core over real HTTP on loopback: scrapes, health families, deadlines, TLS, basic auth,
request limits, web-config errors, reload on change and SIGHUP, content negotiation, build info, process
metrics, collect[]/exclude[], SIGTERM, and snapshot scrapes answered by the event loop itself (counted)
with the bytes the general path gives. Hostile clients: test_serve_hostile.py."""

from __future__ import annotations

import base64
import gzip
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

import bcrypt
import pytest
from helpers import assert_promtool_clean, collector_success, require_binary, values
from hpcwatch.exporters.http1 import parse_head
from hpcwatch.exporters.registry import Collector
from hpcwatch.exporters.serve import Exporter, parse_listen_address
from hpcwatch.exporters.snapshot import SnapshotSource
from hpcwatch.exporters.webconfig import WebConfigError, load_web_config
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

VENV_BIN = os.path.dirname(sys.executable)


class Steady(Collector):
    name = "steady"

    def collect(self):
        g = GaugeMetricFamily("hpc_node_test_value", "A test gauge.", labels=["k"])
        g.add_metric(['quote"newline\nutf8-é'], 1.5)
        yield g
        c = CounterMetricFamily("hpc_node_test_events", "A test counter.")
        c.add_metric([], 7)
        yield c


class Broken(Collector):
    name = "broken"

    def collect(self):
        raise OSError("cannot read /proc/broken")


class Hung(Collector):
    name = "hung"

    def __init__(self, ctx, release: threading.Event):
        super().__init__(ctx)
        self.release = release

    def collect(self):
        self.release.wait(30)
        yield GaugeMetricFamily("hpc_node_hung", "Never reached in time.", value=1)


class Snap(Collector):
    name = "snap"
    kind = "snapshot"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.src = SnapshotSource("snap_src", lambda: 42, interval=60)

    def sources(self):
        return [self.src]

    def collect(self):
        yield GaugeMetricFamily("hpc_node_snap", "Snapshot value.", value=self.src.value or 0)


def _get(url, headers=None, context=None, timeout=10):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=timeout, context=context) as resp:
        body = resp.read()
        if resp.headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        return resp.status, body.decode()


@pytest.fixture
def serve():
    started = []

    def _serve(collectors, **kw):
        exp = Exporter(collectors, ("127.0.0.1", 0), **kw)
        exp.start()
        started.append(exp)
        return exp

    yield _serve
    for exp in started:
        exp.stop()


def test_scrape_serves_families_and_health(serve):
    release = threading.Event()
    exp = serve([Steady(None), Broken(None), Hung(None, release), Snap(None)], scrape_timeout=0.5)
    try:
        status, text = _get(f"http://127.0.0.1:{exp.port}/metrics")
    finally:
        release.set()
    assert status == 200
    assert collector_success(text) == {"steady": 1, "broken": 0, "hung": 0, "snap": 1}
    assert values(text, "hpc_node_test_value") == [1.5]
    assert values(text, "hpc_node_test_events_total") == [7]
    assert values(text, "hpc_node_snap") == [42]  # the server started the snapshot source
    assert values(text, "hpcwatch_source_up", source="snap_src") == [1]
    assert values(text, "hpcwatch_source_last_success_timestamp_seconds", source="snap_src")[0] > 1e9
    assert "hpc_node_hung" not in text
    assert_promtool_clean(text)


def test_overrunning_collector_does_not_pile_up(serve):
    release = threading.Event()
    calls = []

    class CountingHung(Hung):
        def collect(self):
            calls.append(1)
            return super().collect()

    exp = serve([Steady(None), CountingHung(None, release)], scrape_timeout=0.3)
    url = f"http://127.0.0.1:{exp.port}/metrics"
    try:
        _, first = _get(url)
        _, text = _get(url)
        assert collector_success(first)["hung"] == 0
        # The second scrape did not start another collect behind the overrunning one, nor wait for it.
        assert collector_success(text)["hung"] == 0
        assert values(text, "hpcwatch_collector_duration_seconds", collector="hung") == [0.0]
        assert len(calls) == 1
    finally:
        release.set()
    # Released, it recovers by itself: the next scrape that finds the old collect done runs a new one.
    deadline = time.monotonic() + 30
    while collector_success(_get(url)[1])["hung"] != 1:
        assert time.monotonic() < deadline, "the hung collector never recovered"
    assert len(calls) >= 2


def test_landing_page_404_gzip_and_custom_path(serve):
    exp = serve([Steady(None)], telemetry_path="/custom")
    status, body = _get(f"http://127.0.0.1:{exp.port}/")
    assert status == 200 and "/custom" in body
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"http://127.0.0.1:{exp.port}/metrics")
    assert err.value.code == 404
    status, text = _get(f"http://127.0.0.1:{exp.port}/custom", headers={"Accept-Encoding": "gzip"})
    assert "hpc_node_test_value" in text


def _blocking_collector() -> tuple[Collector, threading.Event, threading.Event]:
    """A live collector "slow" whose collect waits for `release`; `entered` is set when it starts."""
    release, entered = threading.Event(), threading.Event()

    class Slow(Collector):
        name = "slow"

        def collect(self):
            entered.set()
            release.wait(30)
            return iter(())

    return Slow(None), release, entered


def test_max_requests_rejects_with_503(serve):
    slow, release, entered = _blocking_collector()
    exp = serve([slow], max_requests=1, scrape_timeout=60)
    first = threading.Thread(target=_get, args=(f"http://127.0.0.1:{exp.port}/metrics",), kwargs={"timeout": 60})
    first.start()
    assert entered.wait(30), "the first scrape never reached the collector"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(f"http://127.0.0.1:{exp.port}/metrics")
        assert err.value.code == 503
    finally:
        release.set()
        first.join()


# --- basic auth and TLS -------------------------------------------------------------------------

def _write(path, text):
    with open(path, "w") as fh:
        fh.write(text)
    return str(path)


def test_basic_auth(serve, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = load_web_config(_write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: '{hashed}'\n"))
    exp = serve([Steady(None)], web=cfg)
    url = f"http://127.0.0.1:{exp.port}/metrics"

    def auth(user, pw):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

    for headers in ({}, auth("prom", "wrong"), auth("nobody", "s3cret"), {"Authorization": "Basic !!!"}):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(url, headers=headers)
        assert err.value.code == 401
        assert err.value.headers["WWW-Authenticate"].startswith("Basic")
    assert _get(url, headers=auth("prom", "s3cret"))[0] == 200
    assert _get(url, headers=auth("prom", "s3cret"))[0] == 200  # cached verification path


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    openssl = require_binary("openssl")
    d = tmp_path_factory.mktemp("pki")

    def run(*args):
        subprocess.run([openssl, *args], cwd=d, check=True, capture_output=True)

    run("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out", "ca.crt", "-days", "2",
        "-subj", "/CN=hpcwatch-test-ca")
    _write(d / "san.ext", "subjectAltName=DNS:localhost,IP:127.0.0.1\n")
    for name in ("server", "server2", "client"):
        run("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out", f"{name}.csr",
            "-subj", f"/CN={name}")
        run("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
            "-out", f"{name}.crt", "-days", "2", "-extfile", "san.ext")
    return d


def _client_ctx(pki, with_cert):
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if with_cert:
        ctx.load_cert_chain(str(pki / "client.crt"), str(pki / "client.key"))
    return ctx


def test_tls_serves_https_and_answers_plain_http_with_400(serve, pki):
    cfg = load_web_config(_write(pki / "tls.yml",
                                 "tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n"))
    exp = serve([Steady(None)], web=cfg)
    status, text = _get(f"https://127.0.0.1:{exp.port}/metrics", context=_client_ctx(pki, False))
    assert status == 200 and "hpc_node_test_value" in text
    with socket.create_connection(("127.0.0.1", exp.port), timeout=5) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        reply = s.recv(4096).decode()
    assert reply.startswith("HTTP/1.0 400") and "HTTPS server" in reply
    # The server is unharmed and still serves TLS clients.
    assert _get(f"https://127.0.0.1:{exp.port}/metrics", context=_client_ctx(pki, False))[0] == 200


def test_tls_client_certificates_required(serve, pki):
    cfg = load_web_config(_write(pki / "mtls.yml", "tls_server_config:\n  cert_file: server.crt\n"
                                 "  key_file: server.key\n  client_ca_file: ca.crt\n"
                                 "  client_auth_type: RequireAndVerifyClientCert\n"))
    exp = serve([Steady(None)], web=cfg)
    url = f"https://127.0.0.1:{exp.port}/metrics"
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        _get(url, context=_client_ctx(pki, False))
    assert _get(url, context=_client_ctx(pki, True))[0] == 200


@pytest.mark.parametrize(
    ("yaml_text", "message"),
    [
        ("tls_server_config:\n  cert_file: server.crt\n", "field tls_server_config.key_file: required"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  certfile: x\n",
         "field tls_server_config.certfile: unknown field"),
        ("basic_auth_users:\n  prom: plaintext\n", "field basic_auth_users.prom: expected a bcrypt hash"),
        ("basic_auth_user:\n  prom: x\n", "field basic_auth_user: unknown field"),
        ("tls_server_config:\n  cert_file: nope.crt\n  key_file: nope.key\n", "cannot load certificate"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  client_auth_type: Bogus\n",
         "field tls_server_config.client_auth_type: got 'Bogus'"),
        ("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n  min_version: TLS99\n",
         "field tls_server_config.min_version"),
        ("- just\n- a list\n", "expected a mapping at the top level"),
        ("tls_server_config: [\n", "not valid YAML"),
    ],
)
def test_bad_web_config_names_the_field(pki, yaml_text, message):
    path = _write(pki / "bad.yml", yaml_text)
    with pytest.raises(WebConfigError) as err:
        load_web_config(path)
    assert str(path) in str(err.value)
    assert message in str(err.value)


def test_serve_refuses_bad_web_config_at_startup(pki):
    path = _write(pki / "bad2.yml", "basic_auth_users:\n  prom: plaintext\n")
    proc = subprocess.run([f"{VENV_BIN}/hpcwatch", "serve", "--collector.disable-defaults",
                           "--web.listen-address=127.0.0.1:0", f"--web.config.file={path}"],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert "basic_auth_users.prom" in proc.stderr and "bad2.yml" in proc.stderr


# --- the real command ---------------------------------------------------------------------------

def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_serve_command_sigterm_shuts_down_cleanly():
    port = _free_port()
    proc = subprocess.Popen([f"{VENV_BIN}/hpcwatch", "serve", "--collector.disable-defaults", "--collector.node",
                             f"--web.listen-address=127.0.0.1:{port}"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                status, text = _get(f"http://127.0.0.1:{port}/metrics", timeout=2)
                break
            except (urllib.error.URLError, ConnectionError):
                assert time.monotonic() < deadline, "hpcwatch serve did not start"
                time.sleep(0.2)
        assert status == 200
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 0
    assert "received SIGTERM, shutting down" in err
    assert "level=info logger=hpcwatch.serve" in err


@pytest.mark.parametrize(("addr", "want"), [(":19466", ("0.0.0.0", 19466)), ("127.0.0.1:1", ("127.0.0.1", 1)),
                                            ("[::1]:9", ("::1", 9))])
def test_parse_listen_address(addr, want):
    assert parse_listen_address(addr) == want


@pytest.mark.parametrize("addr", ["19466", "host:", "host:http", ":99999"])
def test_parse_listen_address_rejects(addr):
    with pytest.raises(ValueError, match="expected \\[host\\]:port"):
        parse_listen_address(addr)


# --- HTTP parity with promhttp / node_exporter ----------------------------------------------------

PROMETHEUS_2_ACCEPT = ("application/openmetrics-text;version=1.0.0,application/openmetrics-text;version=0.0.1;"
                       "q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1")


def _fetch(url, headers=None):
    req = urllib.request.Request(url, headers=headers or {})
    with urllib.request.urlopen(req, timeout=30) as resp:
        return resp.status, resp.headers, resp.read()


def test_content_type_matches_the_format_sent(serve):
    from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics

    exp = serve([Steady(None), Snap(None)])
    url = f"http://127.0.0.1:{exp.port}/metrics"
    _, headers, body = _fetch(url)
    assert headers["Content-Type"] == "text/plain; version=0.0.4; charset=utf-8"
    assert_promtool_clean(body.decode())
    _, headers, body = _fetch(url, {"Accept": PROMETHEUS_2_ACCEPT, "Accept-Encoding": "gzip"})
    assert headers["Content-Type"] == "application/openmetrics-text; version=1.0.0; charset=utf-8"
    text = gzip.decompress(body).decode()
    assert text.endswith("# EOF\n")
    names = {f.name for f in parse_openmetrics(text)}  # the library's strict parser accepts it
    assert {"hpc_node_test_value", "hpc_node_test_events", "hpcwatch_collector_success", "hpcwatch_build_info",
            "process_cpu_seconds"} <= names
    _, headers, _ = _fetch(url, {"Accept": "text/plain;version=0.0.4;q=0.9,application/openmetrics-text;q=0.5"})
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")


def test_build_info_and_process_metrics(serve):
    import platform

    from hpcwatch.version import __version__

    exp = serve([Steady(None)])
    _, text = _get(f"http://127.0.0.1:{exp.port}/metrics")
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    git = subprocess.run(["git", "-C", root, "rev-parse", "HEAD"], capture_output=True, text=True)
    want_revision = git.stdout.strip() if git.returncode == 0 else "unknown"
    info = [dict(labels) for (n, labels) in __import__("helpers").samples(text) if n == "hpcwatch_build_info"]
    assert info == [{"version": __version__, "revision": want_revision, "python": platform.python_version()}]
    assert values(text, "process_cpu_seconds_total")[0] > 0
    assert values(text, "process_resident_memory_bytes")[0] > 1e6
    assert values(text, "process_open_fds")[0] >= 3
    assert values(text, "process_max_fds")[0] >= values(text, "process_open_fds")[0]
    assert values(text, "process_start_time_seconds")[0] > 1e9
    assert_promtool_clean(text)


def test_collect_and_exclude_select_collectors_as_node_exporter(serve):
    exp = serve([Steady(None), Snap(None), Broken(None)], known_collectors={"gpu"})
    base = f"http://127.0.0.1:{exp.port}/metrics"
    _, text = _get(base + "?collect[]=steady")
    assert collector_success(text) == {"steady": 1}   # health families for the selected collectors only
    assert "hpc_node_test_value" in text and "hpc_node_snap" not in text
    assert "hpcwatch_source_up" not in text           # snap's source is not selected
    assert values(text, "hpcwatch_build_info") == [1] and values(text, "process_open_fds")  # always there
    _, text = _get(base + "?collect[]=snap&collect%5B%5D=broken")
    assert collector_success(text) == {"snap": 1, "broken": 0}
    assert values(text, "hpcwatch_source_up", source="snap_src") == [1]
    _, text = _get(base + "?exclude[]=steady&exclude[]=gpu")
    assert collector_success(text) == {"snap": 1, "broken": 0}
    assert "hpc_node_test_value" not in text
    combined = "Combined collect and exclude queries are not allowed."
    for query, message in (("collect[]=gpu", "disabled collector: gpu"),
                           ("collect[]=nonsense", "missing collector: nonsense"),
                           ("collect[]=steady&exclude[]=snap", combined)):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(f"{base}?{query}")
        assert err.value.code == 400
        assert message in err.value.read().decode()
    _, text = _get(base)
    assert collector_success(text) == {"steady": 1, "snap": 1, "broken": 0}


def test_unsupported_methods_and_malformed_requests(serve):
    exp = serve([Steady(None)])
    for body, code in ((b"", 405), (b"x", 413)):
        req = urllib.request.Request(f"http://127.0.0.1:{exp.port}/metrics", data=body, method="POST")
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(req, timeout=30)
        assert err.value.code == code
    assert err.value.code == 413 and "GET, HEAD" in _allow(exp.port)
    with socket.create_connection(("127.0.0.1", exp.port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/2.0\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 505 ")
    with socket.create_connection(("127.0.0.1", exp.port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nX-Big: " + b"a" * 70000 + b"\r\n\r\n")
        assert s.recv(4096).startswith(b"HTTP/1.1 431 ")
    # Keep-alive: two requests on one connection, then the server still answers new ones.
    with socket.create_connection(("127.0.0.1", exp.port), timeout=30) as s:
        s.sendall(b"HEAD /metrics HTTP/1.1\r\nHost: x\r\n\r\nGET /-/healthy HTTP/1.1\r\nHost: x\r\n\r\n")
        data = b""
        while data.count(b"HTTP/1.1 200") < 2 or not data.endswith(b"OK\n"):
            chunk = s.recv(4096)
            assert chunk, data
            data += chunk
    assert _get(f"http://127.0.0.1:{exp.port}/metrics")[0] == 200


def _allow(port: int) -> str:
    req = urllib.request.Request(f"http://127.0.0.1:{port}/metrics", method="DELETE")
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(req, timeout=30)
    return err.value.headers["Allow"]


# --- reload of the web config and certificates --------------------------------------------------

def _served_cert(port: int, pki) -> bytes:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    with socket.create_connection(("127.0.0.1", port), timeout=30) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
            return tls.getpeercert(binary_form=True)


def _der(path) -> bytes:
    return ssl.PEM_cert_to_DER_cert(open(path).read())


def _install(pki, live, name):
    """Put server cert `name` in place the way cert-manager and certbot do: whole files, renamed in."""
    for ext in ("key", "crt"):
        tmp = live / f".{ext}.tmp"
        tmp.write_bytes((pki / f"{name}.{ext}").read_bytes())
        os.replace(tmp, live / f"tls.{ext}")


def _wait_for(condition, what, timeout=60):
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def test_certificate_rotation_needs_no_restart_and_a_broken_file_keeps_the_old(serve, pki, tmp_path, caplog):
    import logging

    live = tmp_path / "live"
    live.mkdir()
    _install(pki, live, "server")
    cfg = _write(live / "web.yml", "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n")
    exp = serve([Steady(None)], web_config_file=cfg, reload_interval=0.1)
    assert _served_cert(exp.port, pki) == _der(pki / "server.crt")
    _install(pki, live, "server2")
    _wait_for(lambda: _served_cert(exp.port, pki) == _der(pki / "server2.crt"), "the second certificate")
    with caplog.at_level(logging.INFO, logger="hpcwatch.webconfig"):
        (live / "tls.crt").write_text("-----BEGIN CERTIFICATE-----\nnot a certificate\n-----END CERTIFICATE-----\n")
        _wait_for(lambda: any("not reloaded" in r.getMessage() for r in caplog.records), "the refusal in the log")
    refusal = next(r.getMessage() for r in caplog.records if "not reloaded" in r.getMessage())
    assert cfg in refusal and "tls_server_config.cert_file" in refusal and str(live / "tls.crt") in refusal
    assert _served_cert(exp.port, pki) == _der(pki / "server2.crt")   # still the last good one
    ctx = _client_ctx(pki, False)
    _, text = _get(f"https://127.0.0.1:{exp.port}/metrics", context=ctx)
    assert values(text, "hpcwatch_web_config_last_reload_successful") == [0]
    _install(pki, live, "server")
    _wait_for(lambda: _served_cert(exp.port, pki) == _der(pki / "server.crt"), "the first certificate again")
    _, text = _get(f"https://127.0.0.1:{exp.port}/metrics", context=ctx)
    assert values(text, "hpcwatch_web_config_last_reload_successful") == [1]


def test_sighup_reloads_users(pki, tmp_path):
    def auth(user, pw):
        return {"Authorization": "Basic " + base64.b64encode(f"{user}:{pw}".encode()).decode()}

    def users(name, pw):
        hashed = bcrypt.hashpw(pw.encode(), bcrypt.gensalt(rounds=4)).decode()
        _write(tmp_path / "web.yml", f"basic_auth_users:\n  {name}: '{hashed}'\n")

    users("alice", "one")
    port = _free_port()
    proc = subprocess.Popen([f"{VENV_BIN}/hpcwatch", "serve", "--collector.disable-defaults", "--collector.node",
                             f"--web.listen-address=127.0.0.1:{port}", f"--web.config.file={tmp_path / 'web.yml'}",
                             "--web.config.reload-interval=0"], stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}/metrics"

    def status(headers):
        try:
            return _get(url, headers=headers, timeout=30)[0]
        except urllib.error.HTTPError as exc:
            return exc.code
        except (urllib.error.URLError, ConnectionError):
            return None

    try:
        _wait_for(lambda: status(auth("alice", "one")) == 200, "the agent to serve alice")
        users("bob", "two")
        assert status(auth("bob", "two")) == 401   # polling is off: nothing changes until SIGHUP
        proc.send_signal(signal.SIGHUP)
        _wait_for(lambda: status(auth("bob", "two")) == 200, "bob after SIGHUP")
        assert status(auth("alice", "one")) == 401
        assert proc.poll() is None                 # SIGHUP no longer ends the process
    finally:
        proc.terminate()
        _, err = proc.communicate(timeout=30)
    assert "web config reloaded" in err


# --- snapshot scrapes answered on the event loop ------------------------------------------------------

class Queue(Collector):
    """A snapshot collector that counts its runs (a refresh runs it once; scrapes should not)."""

    name = "queue"
    kind = "snapshot"

    def __init__(self, ctx):
        super().__init__(ctx)
        self.runs = 0
        self.src = SnapshotSource("queue_src", lambda: {"debug": 3, 'q"uote\\': 1}, interval=3600)

    def sources(self):
        return [self.src]

    def collect(self):
        self.runs += 1
        snap = self.src.value or {}
        g = GaugeMetricFamily("hpc_scheduler_test_jobs", "Jobs by queue.", labels=["queue"])
        for q, n in sorted(snap.items()):
            g.add_metric([q], n)
        yield g


def _prepared(exp):
    _wait_for(lambda: exp.scrape.prepares >= 1, "the first refresh's body")


def _stable(body: bytes) -> list[bytes]:
    """The lines that do not move between two scrapes: all but the HTTP counters and process samples."""
    return [line for line in body.splitlines() if not line.startswith((b"hpcwatch_http_", b"process_"))]


def test_snapshot_scrapes_are_answered_by_the_loop_with_the_general_paths_bytes(serve):
    exp = serve([Queue(None)])
    queue = exp.scrape.collectors[0]
    _prepared(exp)
    runs, served = queue.runs, exp.scrape.ready_scrapes
    url = f"http://127.0.0.1:{exp.port}/metrics"
    cases = [({}, "GET /metrics"), ({"Accept": PROMETHEUS_2_ACCEPT}, "GET /metrics"),
             ({"Accept-Encoding": "gzip"}, "GET /metrics"), ({}, "GET /metrics?collect[]=queue")]
    for headers, line in cases:
        for _ in range(2):
            _, got_headers, body = _fetch(url + line.partition("/metrics")[2], headers)
        if got_headers.get("Content-Encoding") == "gzip":
            body = gzip.decompress(body)
        head = f"{line} HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in headers.items())
        general = exp.handle(parse_head(head.encode()))   # what a worker thread answers
        assert general.content_type == got_headers["Content-Type"]
        assert _stable(body) == _stable(general.body)
    assert queue.runs == runs                           # no scrape ran the collector
    # The loop answered all 8: both formats were rendered at the refresh.
    assert exp.scrape.ready_scrapes - served == 8
    text = _get(url)[1]
    assert collector_success(text) == {"queue": 1}
    assert values(text, "hpc_scheduler_test_jobs", queue='q"uote\\') == [1]
    assert_promtool_clean(text)
    queue.src.refresh_now()                             # a refresh prepares a new body: one run
    assert queue.runs == runs + 1


def test_basic_auth_scrapes_reach_the_loop_once_their_password_is_verified(serve, tmp_path):
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    cfg = load_web_config(_write(tmp_path / "web.yml", f"basic_auth_users:\n  prom: '{hashed}'\n"))
    exp = serve([Queue(None)], web=cfg)
    _prepared(exp)
    url = f"http://127.0.0.1:{exp.port}/metrics"
    good = {"Authorization": "Basic " + base64.b64encode(b"prom:s3cret").decode()}
    bad = {"Authorization": "Basic " + base64.b64encode(b"prom:wrong").decode()}
    served = exp.scrape.ready_scrapes
    assert _get(url, headers=good)[0] == 200     # bcrypt on its lane, then the general path
    assert exp.scrape.ready_scrapes == served
    for _ in range(3):
        assert _get(url, headers=good)[0] == 200   # the cached verdict: answered on the loop
    assert exp.scrape.ready_scrapes == served + 3
    for headers in (bad, bad, {}):
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(url, headers=headers)
        assert err.value.code == 401
    assert exp.scrape.ready_scrapes == served + 3


def test_max_requests_bounds_scrapes_answered_on_the_loop_too(serve):
    slow, release, entered = _blocking_collector()
    exp = serve([slow, Queue(None)], max_requests=1, scrape_timeout=60)
    _prepared(exp)
    base = f"http://127.0.0.1:{exp.port}/metrics"
    assert _get(base + "?collect[]=queue")[0] == 200
    first = threading.Thread(target=_get, args=(base + "?collect[]=slow",), kwargs={"timeout": 60})
    first.start()
    assert entered.wait(30), "the first scrape never reached the collector"
    try:
        with pytest.raises(urllib.error.HTTPError) as err:
            _get(base + "?collect[]=queue")
        assert err.value.code == 503
        assert _get(f"http://127.0.0.1:{exp.port}/-/healthy")[0] == 200   # not a scrape: no slot needed
    finally:
        release.set()
        first.join()
    assert _get(base + "?collect[]=queue")[0] == 200


def test_pipelined_scrapes_are_answered_in_order_on_one_connection(serve):
    exp = serve([Queue(None)])
    _prepared(exp)
    with socket.create_connection(("127.0.0.1", exp.port), timeout=30) as s:
        s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n" * 3
                  + b"GET /-/healthy HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        data = b""
        while chunk := s.recv(65536):
            data += chunk
    assert data.count(b"HTTP/1.1 200 OK\r\n") == 4 and data.endswith(b"OK\n")
    assert data.count(b"hpc_scheduler_test_jobs{") == 6
