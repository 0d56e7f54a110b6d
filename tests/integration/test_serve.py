"""The serving core over real HTTP on loopback: scrapes, health families, deadlines, TLS, basic auth,
request limits, web-config errors and SIGTERM."""

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
from hpcwatch.exporters.registry import Collector, load_all
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
    hung = Hung(None, release)
    exp = serve([Steady(None), hung], scrape_timeout=0.3)
    try:
        t0 = time.monotonic()
        _get(f"http://127.0.0.1:{exp.port}/metrics")
        _, text = _get(f"http://127.0.0.1:{exp.port}/metrics")
        # The second scrape does not wait for the still-running first collect.
        assert time.monotonic() - t0 < 5
        assert collector_success(text)["hung"] == 0
        assert values(text, "hpcwatch_collector_duration_seconds", collector="hung") == [0.0]
    finally:
        release.set()
    time.sleep(0.1)
    _, text = _get(f"http://127.0.0.1:{exp.port}/metrics")
    assert collector_success(text)["hung"] == 1  # released: it recovers by itself


def test_landing_page_404_gzip_and_custom_path(serve):
    exp = serve([Steady(None)], telemetry_path="/custom")
    status, body = _get(f"http://127.0.0.1:{exp.port}/")
    assert status == 200 and "/custom" in body
    with pytest.raises(urllib.error.HTTPError) as err:
        _get(f"http://127.0.0.1:{exp.port}/metrics")
    assert err.value.code == 404
    status, text = _get(f"http://127.0.0.1:{exp.port}/custom", headers={"Accept-Encoding": "gzip"})
    assert "hpc_node_test_value" in text


def test_max_requests_rejects_with_503(serve):
    release = threading.Event()

    class Slow(Collector):
        name = "slow"

        def collect(self):
            release.wait(10)
            return iter(())

    exp = serve([Slow(None)], max_requests=1, scrape_timeout=20)
    first = threading.Thread(target=_get, args=(f"http://127.0.0.1:{exp.port}/metrics",))
    first.start()
    time.sleep(0.3)
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
    for name in ("server", "client"):
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
    proc = subprocess.Popen([f"{VENV_BIN}/hpcwatch", "serve", "--collector.disable-defaults",
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


def test_every_registered_collector_has_flags_in_help():
    out = subprocess.run([f"{VENV_BIN}/hpcwatch", "serve", "--help"], capture_output=True, text=True,
                         timeout=60).stdout
    for name, cls in load_all().items():
        assert f"--collector.{name} " in out or f"--collector.{name}\n" in out
        for opt in cls.options:
            assert f"--collector.{name}.{opt.name}" in out


@pytest.mark.parametrize(("addr", "want"), [(":19466", ("0.0.0.0", 19466)), ("127.0.0.1:1", ("127.0.0.1", 1)),
                                            ("[::1]:9", ("::1", 9))])
def test_parse_listen_address(addr, want):
    assert parse_listen_address(addr) == want


@pytest.mark.parametrize("addr", ["19466", "host:", "host:http", ":99999"])
def test_parse_listen_address_rejects(addr):
    with pytest.raises(ValueError, match="expected \\[host\\]:port"):
        parse_listen_address(addr)


def test_absent_source_skipped_with_one_log_line(caplog):
    import argparse
    import logging

    from hpcwatch.exporters.serve import add_serve_arguments, build_collectors

    class Absent(Collector):
        name = "absentsrc"
        default_agents = frozenset({"node"})

        def available(self):
            return "/sys/class/infiniband not found"

    class Exploding(Collector):
        name = "exploding"
        default_agents = frozenset({"node"})

        def __init__(self, ctx):
            raise RuntimeError("bad option value")

    registry = {"absentsrc": Absent, "exploding": Exploding, "steady": Steady}
    p = argparse.ArgumentParser()
    add_serve_arguments(p, registry)
    args = p.parse_args(["--collector.steady"])
    with caplog.at_level(logging.INFO, logger="hpcwatch.serve"):
        active = build_collectors(args, registry)
    assert [c.name for c in active] == ["steady"]
    skipped = [r.getMessage() for r in caplog.records if "absentsrc" in r.getMessage()]
    assert skipped == ["collector=absentsrc skipped: /sys/class/infiniband not found"]
    assert any("collector=exploding disabled: bad option value" in r.getMessage() for r in caplog.records)
    # --no-collector wins over the agent default; --collector.disable-defaults keeps only named ones.
    assert build_collectors(p.parse_args(["--no-collector.steady"]), registry) == []
    assert [c.name for c in build_collectors(p.parse_args(["--collector.disable-defaults",
                                                           "--collector.steady"]), registry)] == ["steady"]
