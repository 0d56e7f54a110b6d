"""The configs hpcwatch ships, run for real on loopback: what the tests and `hpcwatch demo` start.

- ShippedPrometheus runs deploy/prometheus/prometheus.yml and deploy/prometheus/rules/*.yml byte for
  byte (as `hpcwatch generate` writes them); the only files it writes are the ones an operator
  writes, targets/*.yml for file_sd: addresses and target labels (`cluster`, and optionally
  Prometheus' own `__scrape_interval__`/`__scrape_timeout__` to compress time).
- ShippedVictoriaMetrics scrapes with the same prometheus.yml and targets, as vmagent would.
- shipped_alertmanager() is deploy/alertmanager/alertmanager.yml with only the receivers' endpoints
  redirected to loopback (PagerDuty/Opsgenie API URL, webhook URL, key files); routing, grouping,
  timers and inhibitions stay as shipped.
- NotificationReceiver answers those endpoints and keeps every notification, whether Alertmanager
  sent webhook JSON or a PagerDuty Events v2 event, as one Notification shape.
"""

from __future__ import annotations

import copy
import dataclasses
import glob
import http.server
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Self

import yaml

from hpcwatch.exporters.atomicfile import write_atomically
from hpcwatch.harness.prometheus import Alertmanager, Prometheus, VictoriaMetrics
from hpcwatch.promconfig import TARGET_FILES


@dataclasses.dataclass(frozen=True)
class Target:
    """One file_sd target: `host:port` and its target labels."""

    address: str
    labels: Mapping[str, str] = dataclasses.field(default_factory=dict)


def target_file(job: str) -> str:
    """The file_sd file (relative to prometheus.yml) the shipped glob of `job` reads."""
    return TARGET_FILES[job].replace("*", "harness")


def write_targets(directory: str, job: str, targets: Sequence[Target]) -> str:
    """Write a file_sd file for `job` under `directory` (prometheus.yml's folder); its path."""
    path = os.path.join(directory, target_file(job))
    doc = [{"targets": [t.address], **({"labels": dict(t.labels)} if t.labels else {})} for t in targets]
    text = yaml.safe_dump(doc, sort_keys=False).encode("utf-8")
    write_atomically(path, lambda fh: fh.write(text))  # file_sd must never read a half-written file
    return path


class ShippedPrometheus(Prometheus):
    """Prometheus on deploy/prometheus/ as shipped; targets ({job: [Target]}) through file_sd.

    `extra_rules` are the operator's own rule files (e.g. `hpcwatch slo generate` output): they are
    copied into rules/ next to the shipped ones, so only a name the shipped `rules/*.yml` glob
    matches is loaded, as it would be in production.
    """

    def __init__(self, workdir: str, deploy_dir: str, targets: Mapping[str, Sequence[Target]],
                 extra_rules: Sequence[str] = ()) -> None:
        super().__init__(workdir, {})
        self.deploy_dir = os.path.abspath(deploy_dir)
        self.target_lists = {job: list(ts) for job, ts in targets.items()}  # not `targets`: that is the API method
        self.extra_rules = [os.path.abspath(p) for p in extra_rules]

    def prepare(self) -> None:
        src = os.path.join(self.deploy_dir, "prometheus")
        shutil.copyfile(os.path.join(src, "prometheus.yml"), self.config_path)
        rules = os.path.join(self.dir, "rules")
        os.makedirs(rules, exist_ok=True)
        for path in sorted(glob.glob(os.path.join(src, "rules", "*.yml"))) + self.extra_rules:
            shutil.copyfile(path, os.path.join(rules, os.path.basename(path)))
        for job, targets in self.target_lists.items():
            write_targets(self.dir, job, targets)

    def set_targets(self, job: str, targets: Sequence[Target]) -> None:
        """Change one job's targets while running (file_sd notices the file within seconds)."""
        self.target_lists[job] = list(targets)
        write_targets(self.dir, job, targets)

    def loaded_rule_files(self) -> list[str]:
        """Base names of the rule files Prometheus loaded."""
        return sorted({os.path.basename(g["file"]) for g in self.rules()})


class ShippedVictoriaMetrics(VictoriaMetrics):
    """VictoriaMetrics scraping with a shipped prometheus.yml (e.g. a ShippedPrometheus's config_path):
    the same jobs, relabelling and file_sd targets (Prometheus-only sections such as rule_files are
    skipped: strictParse off), as vmagent or VictoriaMetrics would run it at a site."""

    def __init__(self, workdir: str, prometheus_yml: str) -> None:
        super().__init__(workdir)
        self.prometheus_yml = os.path.abspath(prometheus_yml)

    def argv(self, binary: str) -> list[str]:
        return [*super().argv(binary), f"-promscrape.config={self.prometheus_yml}",
                "-promscrape.config.strictParse=false"]


# --- Alertmanager ----------------------------------------------------------------------------------

# Where each integration posts, and the secret it reads, in Alertmanager's config.
ENDPOINTS = {"pagerduty_configs": "url", "opsgenie_configs": "api_url", "webhook_configs": "url"}
SECRET_FILES = {"pagerduty_configs": ("routing_key_file", "routing_key"),
                "opsgenie_configs": ("api_key_file", "api_key")}
KINDS = {"pagerduty_configs": "pagerduty", "opsgenie_configs": "opsgenie", "webhook_configs": "webhook"}
CLOSED_SMTP = "127.0.0.1:1"  # email integrations: a loopback port nothing listens on


def redirect_receivers(config: Mapping[str, Any], base_url: str, secrets_dir: str) -> dict[str, Any]:
    """A copy of an Alertmanager config whose integrations post to base_url/<receiver>/<kind> (email to a
    closed loopback port); key files it names are replaced by files in secrets_dir. Nothing else changes."""
    out = copy.deepcopy(dict(config))
    for receiver in out.get("receivers") or []:
        for integration in receiver.get("email_configs") or []:
            integration["smarthost"] = CLOSED_SMTP  # mail stays on this machine: nothing listens there
        for key, kind in KINDS.items():
            for integration in receiver.get(key) or []:
                url = f"{base_url}/{receiver['name']}/{kind}"
                integration[ENDPOINTS[key]] = url + ("/" if kind == "opsgenie" else "")
                file_key, inline_key = SECRET_FILES.get(key, (None, None))
                if file_key and file_key in integration:
                    path = os.path.join(secrets_dir, f"{receiver['name']}-{kind}-key")
                    os.makedirs(secrets_dir, exist_ok=True)
                    with open(path, "w", encoding="utf-8") as fh:
                        fh.write("harness-key\n")
                    integration[file_key] = path
                elif inline_key and inline_key in integration:
                    integration[inline_key] = "harness-key"
    return out


def endpoints_masked(config: Mapping[str, Any]) -> dict[str, Any]:
    """The config with every endpoint and secret blanked: equal for a shipped and a redirected config."""
    out = copy.deepcopy(dict(config))
    for receiver in out.get("receivers") or []:
        for integration in receiver.get("email_configs") or []:
            integration.pop("smarthost", None)
        for key in KINDS:
            for integration in receiver.get(key) or []:
                for field in (ENDPOINTS[key], *SECRET_FILES.get(key, ())):
                    integration.pop(field, None)
    return out


def shipped_alertmanager(workdir: str, deploy_dir: str, base_url: str) -> Alertmanager:
    """An Alertmanager (not started) on deploy/alertmanager/alertmanager.yml, receivers sent to base_url."""
    with open(os.path.join(deploy_dir, "alertmanager", "alertmanager.yml"), encoding="utf-8") as fh:
        shipped = yaml.safe_load(fh)
    config = redirect_receivers(shipped, base_url, os.path.join(os.path.abspath(workdir), "am-secrets"))
    return Alertmanager(workdir, yaml.safe_dump(config, sort_keys=False))


# --- notifications ---------------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Notification:
    """One notification as a receiver got it, whatever the integration."""

    at: float                         # wall-clock time it arrived
    path: str                         # /[prefix/]<receiver>/<kind>
    kind: str                         # pagerduty | webhook | opsgenie
    status: str                       # firing | resolved
    alerts: tuple[dict[str, Any], ...]  # each {"status", "labels", "annotations"}
    doc: dict[str, Any]               # the body as sent

    @property
    def receiver(self) -> str:
        return self.path.rstrip("/").split("/")[-2]


def _text_alerts(text: str, status: str) -> list[dict[str, Any]]:
    """Alerts from Alertmanager's default text list (`Labels:\\n - k = v ... Annotations: ... Source:`)."""
    alerts: list[dict[str, Any]] = []
    section = None
    for line in text.splitlines():
        if line.startswith("Labels:"):
            alerts.append({"status": status, "labels": {}, "annotations": {}})
            section = "labels"
        elif line.startswith("Annotations:"):
            section = "annotations"
        elif line.startswith("Source:"):
            section = None
        elif line.startswith(" - ") and alerts and section:
            name, _, value = line[3:].partition(" = ")
            alerts[-1][section][name] = value
    return alerts


def parse_notification(at: float, path: str, doc: dict[str, Any]) -> Notification:
    """A Notification from an Alertmanager webhook body or a PagerDuty Events v2 event."""
    if "event_action" in doc:  # PagerDuty Events API v2
        details = (doc.get("payload") or {}).get("custom_details") or {}
        alerts = _text_alerts(str(details.get("firing", "")), "firing") + \
            _text_alerts(str(details.get("resolved", "")), "resolved")
        status = "resolved" if doc["event_action"] == "resolve" else "firing"
        return Notification(at, path, "pagerduty", status, tuple(alerts), doc)
    alerts = tuple({"status": a.get("status"), "labels": a.get("labels", {}),
                    "annotations": a.get("annotations", {})} for a in doc.get("alerts", []))
    kind = "webhook" if "alerts" in doc else "opsgenie"
    return Notification(at, path, kind, str(doc.get("status", "")), alerts, doc)


class NotificationReceiver:
    """Loopback HTTP endpoints for Alertmanager's integrations; keeps every notification in order."""

    def __init__(self, on_notify: Callable[[Notification], None] | None = None) -> None:
        self.notifications: list[Notification] = []
        self.lock = threading.Lock()
        self.on_notify = on_notify
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    doc = json.loads(body)
                except ValueError:
                    doc = {"unparsed": body.decode("utf-8", "replace")}
                note = parse_notification(time.time(), self.path, doc)
                with receiver.lock:
                    receiver.notifications.append(note)
                # PagerDuty answers 202 with a small JSON document; webhooks take any 2xx.
                self.send_response(202 if note.kind == "pagerduty" else 200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b'{"status":"success","message":"Event processed"}')
                if receiver.on_notify is not None:
                    receiver.on_notify(note)

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, name="notifications", daemon=True)

    def __enter__(self) -> Self:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def received(self, prefix: str = "") -> list[Notification]:
        """Every notification so far whose path starts with `prefix`."""
        with self.lock:
            return [n for n in self.notifications if n.path.startswith(prefix)]
