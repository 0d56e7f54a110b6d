"""Prometheus-ecosystem daemons on 127.0.0.1 free ports with storage in a work directory.

Prometheus, Alertmanager, Pushgateway, VictoriaMetrics, vmagent, vmalert and node_exporter (Debian packages).
Each waits until its readiness endpoint answers 200; a failed start raises DaemonError with the log tail.
"""

from __future__ import annotations

import json
import os
import urllib.parse
import urllib.request
from collections.abc import Sequence
from typing import Any

import yaml

from hpcwatch.harness.util import Daemon, DaemonError, Process, free_port, http_get, wait_http, which


class HttpDaemon(Daemon):
    """A daemon with an HTTP port, its own directory under `workdir`, and a readiness path."""

    binary: tuple[str, ...] = ()
    ready_path = "/-/ready"

    def __init__(self, workdir: str) -> None:
        self.port = free_port()
        self.dir = os.path.join(os.path.abspath(workdir), f"{self.binary[0]}-{self.port}")
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: Process | None = None
        self.start_timeout = 60.0

    @property
    def log_path(self) -> str:
        return os.path.join(self.dir, "daemon.log")

    def argv(self, binary: str) -> list[str]:  # pragma: no cover - overridden
        raise NotImplementedError

    def prepare(self) -> None:
        """Write config files into self.dir before start (subclasses)."""

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        binary = which(*self.binary)
        try:
            self.prepare()
            self.process = Process(self.binary[0], self.argv(binary), self.log_path, cwd=self.dir).start()
            wait_http(self.url + self.ready_path, self.start_timeout, alive=self.process.dead)
        except DaemonError as exc:
            proc = self.process
            self.stop()
            raise (proc.failure(str(exc)) if proc else exc) from None
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self.process = None

    def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        url = self.url + path + ("?" + urllib.parse.urlencode(params) if params else "")
        status, body = http_get(url, timeout=30)
        if status != 200:
            raise DaemonError(f"GET {url}: HTTP {status}: {body[:500]!r}")
        return json.loads(body)

    def post(self, path: str, data: bytes = b"", content_type: str = "application/octet-stream") -> bytes:
        req = urllib.request.Request(self.url + path, data=data, method="POST",
                                     headers={"Content-Type": content_type})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.read()


class PromQLDaemon(HttpDaemon):
    """Shared PromQL query client (Prometheus and VictoriaMetrics speak the same /api/v1/query)."""

    def query(self, expr: str, time: float | None = None) -> list[dict[str, Any]]:
        """Instant query; the `data.result` list (vector samples as {"metric": ..., "value": [ts, "v"]})."""
        params = {"query": expr}
        if time is not None:
            params["time"] = f"{time:.3f}"
        doc = self.get_json("/api/v1/query", params)
        if doc.get("status") != "success":
            raise DaemonError(f"query {expr!r}: {doc}")
        return doc["data"]["result"]


def _yaml_text(config: str | dict) -> str:
    return config if isinstance(config, str) else yaml.safe_dump(config, sort_keys=False)


class Prometheus(PromQLDaemon):
    """Prometheus with `config_yaml` (text or dict); `rule_files` are added to its rule_files list."""

    binary = ("prometheus",)

    def __init__(self, workdir: str, config_yaml: str | dict, rule_files: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.config_yaml = config_yaml
        self.rule_files = [os.path.abspath(p) for p in rule_files]
        self.config_path = os.path.join(self.dir, "prometheus.yml")

    def prepare(self) -> None:
        cfg = yaml.safe_load(_yaml_text(self.config_yaml)) or {}
        if self.rule_files:
            cfg["rule_files"] = list(cfg.get("rule_files") or []) + self.rule_files
        with open(self.config_path, "w") as fh:
            yaml.safe_dump(cfg, fh, sort_keys=False)

    def argv(self, binary: str) -> list[str]:
        return [binary, f"--config.file={self.config_path}", f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={self.dir}/data", "--web.enable-lifecycle", "--web.enable-admin-api",
                f"--web.external-url={self.url}"]

    def reload(self) -> None:
        """Re-read the configuration (and rules) after the caller rewrote them (POST /-/reload)."""
        self.prepare()
        self.post("/-/reload")

    def targets(self) -> list[dict[str, Any]]:
        return self.get_json("/api/v1/targets")["data"]["activeTargets"]

    def rules(self) -> list[dict[str, Any]]:
        return self.get_json("/api/v1/rules")["data"]["groups"]


class Alertmanager(HttpDaemon):
    """Alertmanager (clustering off) with `config_yaml`; `.alerts()` lists what it holds (API v2)."""

    binary = ("prometheus-alertmanager", "alertmanager")

    def __init__(self, workdir: str, config_yaml: str | dict) -> None:
        super().__init__(workdir)
        self.config_yaml = config_yaml
        self.config_path = os.path.join(self.dir, "alertmanager.yml")

    def prepare(self) -> None:
        with open(self.config_path, "w") as fh:
            fh.write(_yaml_text(self.config_yaml))

    def argv(self, binary: str) -> list[str]:
        return [binary, f"--config.file={self.config_path}", f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.path={self.dir}/data", "--cluster.listen-address=",
                f"--web.external-url={self.url}"]

    def alerts(self) -> list[dict[str, Any]]:
        return self.get_json("/api/v2/alerts")

    def reload(self) -> None:
        self.prepare()
        self.post("/-/reload")


class Pushgateway(HttpDaemon):
    """Pushgateway without persistence; push with `push(job, text)`."""

    binary = ("prometheus-pushgateway", "pushgateway")

    def argv(self, binary: str) -> list[str]:
        return [binary, f"--web.listen-address=127.0.0.1:{self.port}"]

    def push(self, job: str, text: str) -> None:
        self.post(f"/metrics/job/{urllib.parse.quote(job, safe='')}", text.encode(), "text/plain")


class VictoriaMetrics(PromQLDaemon):
    """Single-node VictoriaMetrics; `.url` takes remote-write at /api/v1/write and PromQL at /api/v1/query."""

    binary = ("victoria-metrics",)
    ready_path = "/health"

    def __init__(self, workdir: str, latency_offset: str = "0s") -> None:
        super().__init__(workdir)
        # 0 s: tests query what they just wrote instead of waiting the default 30 s. Data arriving by
        # remote write needs a few seconds: a scrape's samples may come in more than one request.
        self.latency_offset = latency_offset

    def argv(self, binary: str) -> list[str]:
        return [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-storageDataPath={self.dir}/data",
                "-retentionPeriod=1", f"-search.latencyOffset={self.latency_offset}", "-loggerLevel=WARN"]

    def import_prometheus(self, text: str) -> None:
        """Ingest exposition text (/api/v1/import/prometheus) and make it searchable now."""
        self.post("/api/v1/import/prometheus", text.encode(), "text/plain")
        http_get(self.url + "/internal/force_flush")


class VMAlert(HttpDaemon):
    """vmalert evaluating `rule_files` against `datasource_url`, sending alerts to `notifier_url`."""

    binary = ("vmalert",)
    ready_path = "/health"

    def __init__(self, workdir: str, rule_files: Sequence[str], datasource_url: str, notifier_url: str,
                 evaluation_interval: str = "5s", extra_args: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.rule_files = [os.path.abspath(p) for p in rule_files]
        self.datasource_url = datasource_url
        self.notifier_url = notifier_url
        self.evaluation_interval = evaluation_interval
        self.extra_args = list(extra_args)

    def argv(self, binary: str) -> list[str]:
        return [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-datasource.url={self.datasource_url}",
                f"-notifier.url={self.notifier_url}", f"-evaluationInterval={self.evaluation_interval}",
                "-loggerLevel=WARN", *[f"-rule={p}" for p in self.rule_files], *self.extra_args]

    def alerts(self) -> list[dict[str, Any]]:
        return self.get_json("/api/v1/alerts")["data"]["alerts"]

    def groups(self) -> list[dict[str, Any]]:
        return self.get_json("/api/v1/rules")["data"]["groups"]


class NodeExporter(HttpDaemon):
    """prometheus-node-exporter on a free port; `args` are extra flags (e.g. --path.sysfs=...)."""

    binary = ("prometheus-node-exporter", "node_exporter")
    ready_path = "/metrics"

    def __init__(self, workdir: str, args: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.args = list(args)

    def argv(self, binary: str) -> list[str]:
        return [binary, f"--web.listen-address=127.0.0.1:{self.port}", *self.args]

    def metrics(self) -> str:
        status, body = http_get(self.url + "/metrics", timeout=30)
        if status != 200:
            raise DaemonError(f"GET {self.url}/metrics: HTTP {status}")
        return body.decode()


class VMAgent(HttpDaemon):
    """vmagent scraping with `config_yaml` and remote-writing to `remote_write_url`; `args` add flags
    (e.g. -promscrape.cluster.membersCount=2 -promscrape.cluster.memberNum=0)."""

    binary = ("vmagent",)
    ready_path = "/health"

    def __init__(self, workdir: str, config_yaml: str | dict, remote_write_url: str, args: Sequence[str] = ()) -> None:
        super().__init__(workdir)
        self.config_yaml = config_yaml
        self.remote_write_url = remote_write_url
        self.args = list(args)
        self.config_path = os.path.join(self.dir, "scrape.yml")

    def prepare(self) -> None:
        with open(self.config_path, "w") as fh:
            fh.write(_yaml_text(self.config_yaml))

    def argv(self, binary: str) -> list[str]:
        return [binary, f"-httpListenAddr=127.0.0.1:{self.port}", f"-promscrape.config={self.config_path}",
                f"-remoteWrite.url={self.remote_write_url}", f"-remoteWrite.tmpDataPath={self.dir}/queue",
                "-loggerLevel=WARN", *self.args]

    def targets(self) -> list[dict[str, Any]]:
        """Active targets in Prometheus' /api/v1/targets shape."""
        return self.get_json("/api/v1/targets")["data"]["activeTargets"]
