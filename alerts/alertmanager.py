"""Generate the Alertmanager routing tree and inhibitions from a small receiver config.

page / critical  -> the on-call receiver (PagerDuty, Opsgenie or a webhook)
ticket / warning -> the ticket receiver
info             -> recorded only (a receiver with no integrations)
Grouped by cluster, alertname and SLO (sloth_slo). Inhibitions: scheduler down silences job-failure
alerts; an exporter down silences the other alerts of that instance; a page silences the ticket of
the same SLO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import yaml
from hpcwatch.alerts.rules import dump_yaml, header

RECEIVER_TYPES = ("pagerduty", "opsgenie", "webhook")
ONCALL, TICKET, RECORD = "oncall", "ticket", "record-only"
GROUP_BY = ["cluster", "alertname", "sloth_slo"]
# Alerts whose labels say "a job failed": the infra spike alert and the job-success SLO alerts.
JOB_FAILURE_COMPONENT = "jobs"

EXAMPLE_CONFIG = """\
# hpcwatch alerts alertmanager --config this-file
oncall:
  type: pagerduty              # pagerduty | opsgenie | webhook
  routing_key_file: /etc/alertmanager/secrets/pagerduty-routing-key
ticket:
  type: webhook
  url: http://ticket-bridge.example:8080/alertmanager
job_failure_slos: [job-success] # SLO names (sloth_slo) silenced while the scheduler is down
"""


class ConfigError(ValueError):
    """A receiver config that cannot produce a valid Alertmanager config; says which field."""


@dataclass(frozen=True)
class ReceiverConfig:
    type: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RoutingConfig:
    oncall: ReceiverConfig
    ticket: ReceiverConfig
    job_failure_slos: tuple[str, ...] = ("job-success",)
    group_wait: str = "30s"
    group_interval: str = "5m"
    page_repeat: str = "4h"
    ticket_repeat: str = "24h"


REQUIRED = {"pagerduty": (("routing_key", "routing_key_file"),), "opsgenie": (("api_key", "api_key_file"),),
            "webhook": (("url",),)}


def _receiver(where: str, raw: Any) -> ReceiverConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `type` and its settings")
    kind = raw.get("type")
    if kind not in RECEIVER_TYPES:
        raise ConfigError(f"{where}.type: expected one of {', '.join(RECEIVER_TYPES)}, got {kind!r}")
    settings = {k: v for k, v in raw.items() if k != "type"}
    for one_of in REQUIRED[kind]:
        if not any(settings.get(k) for k in one_of):
            raise ConfigError(f"{where}: a {kind} receiver needs {' or '.join(one_of)}")
    return ReceiverConfig(kind, settings)


def load_config(text: str) -> RoutingConfig:
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError("expected a mapping with `oncall` and `ticket`")
    unknown = set(raw) - {"oncall", "ticket", "job_failure_slos", "group_wait", "group_interval", "page_repeat",
                          "ticket_repeat"}
    if unknown:
        raise ConfigError(f"unknown fields: {', '.join(sorted(unknown))}")
    slos = raw.get("job_failure_slos", ["job-success"])
    if not isinstance(slos, list) or not all(isinstance(s, str) and s for s in slos):
        raise ConfigError("job_failure_slos: expected a list of SLO names")
    extra = {k: str(raw[k]) for k in ("group_wait", "group_interval", "page_repeat", "ticket_repeat") if k in raw}
    return RoutingConfig(_receiver("oncall", raw.get("oncall")), _receiver("ticket", raw.get("ticket")),
                         tuple(slos), **extra)


def _integration(r: ReceiverConfig, send_resolved: bool) -> dict[str, Any]:
    key = {"pagerduty": "pagerduty_configs", "opsgenie": "opsgenie_configs", "webhook": "webhook_configs"}[r.type]
    body = {"send_resolved": send_resolved, **r.settings}
    return {key: [body]}


_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def _regex_alternatives(values: tuple[str, ...]) -> str:
    """An RE2 alternation matching exactly these names (SLO names may hold regex characters)."""
    return "|".join("".join("\\" + c if c in _RE2_SPECIAL else c for c in v) for v in values)


def build(cfg: RoutingConfig) -> dict[str, Any]:
    def route(receiver: str, matcher: str, repeat: str) -> dict[str, Any]:
        return {"receiver": receiver, "matchers": [matcher], "repeat_interval": repeat}

    slos = _regex_alternatives(cfg.job_failure_slos)
    return {
        "route": {
            "receiver": TICKET,  # anything unlabelled still reaches a person, at ticket priority
            "group_by": GROUP_BY,
            "group_wait": cfg.group_wait, "group_interval": cfg.group_interval, "repeat_interval": cfg.ticket_repeat,
            "routes": [
                route(ONCALL, 'sloth_severity="page"', cfg.page_repeat),
                route(TICKET, 'sloth_severity="ticket"', cfg.ticket_repeat),
                route(ONCALL, 'severity="critical"', cfg.page_repeat),
                route(TICKET, 'severity="warning"', cfg.ticket_repeat),
                route(RECORD, 'severity="info"', cfg.ticket_repeat),
            ],
        },
        "inhibit_rules": [
            {"source_matchers": ['alertname="HpcSchedulerDown"'],
             "target_matchers": [f'component="{JOB_FAILURE_COMPONENT}"'], "equal": ["cluster"]},
            {"source_matchers": ['alertname="HpcSchedulerDown"'],
             # The HPC catalogue names SLOs <sli>-<cluster>[-<queue>]: match the name and its scoped forms.
             "target_matchers": [f'sloth_slo=~"({slos})(-.+)?"'], "equal": ["cluster"]},
            {"source_matchers": ['alertname="HpcwatchExporterDown"'],
             "target_matchers": ['alertname!="HpcwatchExporterDown"'], "equal": ["cluster", "instance"]},
            {"source_matchers": ['sloth_severity="page"'], "target_matchers": ['sloth_severity="ticket"'],
             "equal": ["sloth_id"]},
        ],
        "receivers": [
            {"name": ONCALL, **_integration(cfg.oncall, True)},
            {"name": TICKET, **_integration(cfg.ticket, True)},
            {"name": RECORD},
        ],
    }


def render(cfg: RoutingConfig, command: str = "hpcwatch alerts alertmanager") -> str:
    return header(command).replace("alerts/catalog.py", "the receiver config") + dump_yaml(build(cfg))


# (description, labels, receiver) for every kind of alert we send; the tests run each through amtool.
ROUTING_CASES: tuple[tuple[str, dict[str, str], str], ...] = (
    ("SLO page", {"alertname": "JobSuccessBurnRate", "sloth_severity": "page", "sloth_slo": "job-success",
                  "cluster": "c1"}, ONCALL),
    ("SLO ticket", {"alertname": "JobSuccessBurnRate", "sloth_severity": "ticket", "sloth_slo": "job-success",
                    "cluster": "c1"}, TICKET),
    ("critical infrastructure", {"alertname": "HpcGpuLost", "severity": "critical", "cluster": "c1"}, ONCALL),
    ("warning infrastructure", {"alertname": "HpcNodeOOMKills", "severity": "warning", "cluster": "c1"}, TICKET),
    ("info infrastructure", {"alertname": "HpcFabricCounterSaturated", "severity": "info"}, RECORD),
    ("unlabelled", {"alertname": "SomethingElse"}, TICKET),
)
