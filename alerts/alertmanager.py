"""Generate the Alertmanager routing tree and inhibitions from a small receiver config.

page / critical  -> the on-call receiver (PagerDuty, Opsgenie or a webhook)
ticket / warning -> the ticket receiver
info             -> recorded only (a receiver with no integrations)
audience="user"  -> the `users` receiver (e-mail to the job's owner, or a webhook; recorded only when
                    none is configured), and GPU waste alerts also to `act` (`hpcwatch act`) when set
Grouped by cluster, alertname and SLO (sloth_slo); user alerts by cluster, user and job.
Inhibitions: scheduler down silences job-failure alerts; an exporter down silences the other alerts
of that instance; a page silences the ticket of the same SLO.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hpcwatch.alerts.model import read_mapping
from hpcwatch.alerts.rules import dump_yaml, header

RECEIVER_TYPES = ("pagerduty", "opsgenie", "webhook")
USER_RECEIVER_TYPES = ("email", "webhook")
ONCALL, TICKET, RECORD, USERS, ACT = "oncall", "ticket", "record-only", "users", "act"
GROUP_BY = ["cluster", "alertname", "sloth_slo"]
USER_GROUP_BY = ["cluster", "user", "jobid"]   # one message per job, whichever waste alerts it raised
ACT_GROUP_BY = ["cluster", "jobid", "alertname"]
USER_MATCHER = 'audience="user"'

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
users:                         # alerts about a user's own job (audience="user": the waste alerts)
  type: email                  # email | webhook; `to` is an Alertmanager template on the job's labels
  to: '{{ .CommonLabels.user }}@example.edu'
  from: hpcwatch@example.edu
  smarthost: smtp.example.edu:587
"""

# The e-mail a user gets: what the alerts say, when they started, what to do, and the job report
# command for the whole story (Alertmanager cannot run it; `hpcwatch act` renders it where it runs).
USER_EMAIL_SUBJECT = ('[hpcwatch] job {{ .CommonLabels.jobid }} on {{ .CommonLabels.cluster }}: '
                      '{{ if eq .Status "firing" }}{{ .Alerts.Firing | len }} warning(s){{ else }}resolved{{ end }}')
USER_EMAIL_TEXT = """Hello {{ .CommonLabels.user }},

{{ if eq .Status "firing" }}your running job {{ .CommonLabels.jobid }} on cluster {{ .CommonLabels.cluster }} \
(account {{ .CommonLabels.account }}) holds resources it is not using:
{{ range .Alerts.Firing }}
* {{ .Annotations.summary }} (since {{ .StartsAt.UTC.Format "2006-01-02 15:04 UTC" }})
  {{ .Annotations.description }}
  What it means and what to do: {{ .Annotations.runbook_url }}
{{ end }}{{ else }}the warnings about your job {{ .CommonLabels.jobid }} on cluster {{ .CommonLabels.cluster }} \
have cleared. Thank you.
{{ end }}{{ range .Alerts.Resolved }}
* resolved: {{ .Annotations.summary }}
{{ end }}
The job report shows its use of CPUs, memory and GPUs, its efficiency and what to change next time:

    hpcwatch job report {{ .CommonLabels.jobid }} --cluster {{ .CommonLabels.cluster }}
@ACT_NOTICE@
-- hpcwatch, on behalf of your HPC centre
"""
# A line for the message where `hpcwatch act` is configured: warned twice, a job may be cancelled.
ACT_NOTICE = ("If the GPUs stay idle, this warning repeats; a job still idle at the second warning may be "
              "cancelled by the centre's policy.")



class ConfigError(ValueError):
    """A receiver config that cannot produce a valid Alertmanager config; says which field."""


@dataclass(frozen=True)
class ReceiverConfig:
    type: str
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ActConfig:
    """Where `hpcwatch act` listens, which alerts it gets, and how often Alertmanager repeats them to it."""

    url: str
    alerts: tuple[str, ...]
    repeat: str = "1h"


@dataclass(frozen=True)
class RoutingConfig:
    oncall: ReceiverConfig
    ticket: ReceiverConfig
    job_failure_slos: tuple[str, ...] = ("job-success",)
    users: ReceiverConfig | None = None
    act: ActConfig | None = None
    users_repeat: str = "24h"
    group_wait: str = "30s"
    group_interval: str = "5m"
    # On-call learns within a minute that a page resolved (PagerDuty closes the incident then), and
    # new alerts joining a paged group are not held back five minutes.
    page_group_interval: str = "1m"
    page_repeat: str = "4h"
    ticket_repeat: str = "24h"


REQUIRED = {"pagerduty": (("routing_key", "routing_key_file"),), "opsgenie": (("api_key", "api_key_file"),),
            "webhook": (("url",),), "email": (("to",), ("from",), ("smarthost",))}


def _receiver(where: str, raw: Any, types: tuple[str, ...] = RECEIVER_TYPES) -> ReceiverConfig:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where}: expected a mapping with `type` and its settings")
    kind = raw.get("type")
    if kind not in types:
        raise ConfigError(f"{where}.type: expected one of {', '.join(types)}, got {kind!r}")
    settings = {k: v for k, v in raw.items() if k != "type"}
    for one_of in REQUIRED[kind]:
        if not any(settings.get(k) for k in one_of):
            article = "an" if kind[0] in "aeiou" else "a"
            raise ConfigError(f"{where}: {article} {kind} receiver needs {' or '.join(one_of)}")
    return ReceiverConfig(kind, settings)


def load_config(text: str) -> RoutingConfig:
    raw = read_mapping(text, "`oncall` and `ticket`", ConfigError)
    timers = ("group_wait", "group_interval", "page_group_interval", "page_repeat", "ticket_repeat", "users_repeat")
    unknown = set(raw) - {"oncall", "ticket", "job_failure_slos", "users", "act", *timers}
    if unknown:
        raise ConfigError(f"unknown fields: {', '.join(sorted(unknown))}")
    slos = raw.get("job_failure_slos", ["job-success"])
    if not isinstance(slos, list) or not all(isinstance(s, str) and s for s in slos):
        raise ConfigError("job_failure_slos: expected a list of SLO names")
    extra = {k: str(raw[k]) for k in timers if k in raw}
    users = _receiver("users", raw["users"], USER_RECEIVER_TYPES) if raw.get("users") is not None else None
    act = _act(raw["act"]) if raw.get("act") is not None else None
    return RoutingConfig(_receiver("oncall", raw.get("oncall")), _receiver("ticket", raw.get("ticket")),
                         tuple(slos), users, act, **extra)


def _act(raw: Any) -> ActConfig:
    from hpcwatch.alerts.waste import GPU_ALERTS
    if not isinstance(raw, dict) or not isinstance(raw.get("url"), str) or not raw["url"]:
        raise ConfigError("act: expected a mapping with the `url` hpcwatch act listens on "
                          "(e.g. http://127.0.0.1:19468/alertmanager)")
    unknown = set(raw) - {"url", "alerts", "repeat"}
    if unknown:
        raise ConfigError(f"act: unknown fields {', '.join(sorted(map(str, unknown)))} (known: url, alerts, repeat)")
    alerts = raw.get("alerts", list(GPU_ALERTS))
    if not isinstance(alerts, list) or not alerts or not all(isinstance(a, str) and a.isalnum() for a in alerts):
        raise ConfigError(f"act.alerts: expected a list of alert names, got {alerts!r}")
    return ActConfig(raw["url"], tuple(alerts), str(raw.get("repeat", "1h")))


def _integration(r: ReceiverConfig, send_resolved: bool) -> dict[str, Any]:
    key = {"pagerduty": "pagerduty_configs", "opsgenie": "opsgenie_configs", "webhook": "webhook_configs",
           "email": "email_configs"}[r.type]
    body = {"send_resolved": send_resolved, **r.settings}
    return {key: [body]}


def _user_integration(r: ReceiverConfig, act: ActConfig | None) -> dict[str, Any]:
    """The users receiver: an e-mail with our subject and text (unless the config sets its own), or a webhook."""
    out = _integration(r, True)
    if r.type == "email":
        body = out["email_configs"][0]
        text = user_email_text(act is not None)
        body.setdefault("headers", {}).setdefault("Subject", USER_EMAIL_SUBJECT)
        body.setdefault("text", text)
        body.setdefault("html", f"<pre>{text}</pre>")   # Alertmanager escapes the values it fills in
    return out


def user_email_text(act: bool) -> str:
    """The e-mail body template; with `act`, the line saying idle jobs may be cancelled."""
    return USER_EMAIL_TEXT.replace("@ACT_NOTICE@\n", f"\n{ACT_NOTICE}\n\n" if act else "\n")


_RE2_SPECIAL = set("\\.+*?()|[]{}^$")


def _regex_alternatives(values: tuple[str, ...]) -> str:
    """An RE2 alternation matching exactly these names (SLO names may hold regex characters)."""
    return "|".join("".join("\\" + c if c in _RE2_SPECIAL else c for c in v) for v in values)


def build(cfg: RoutingConfig) -> dict[str, Any]:
    def route(receiver: str, matcher: str, repeat: str) -> dict[str, Any]:
        r: dict[str, Any] = {"receiver": receiver, "matchers": [matcher]}
        if receiver == ONCALL:
            r["group_interval"] = cfg.page_group_interval
        return {**r, "repeat_interval": repeat}

    slos = _regex_alternatives(cfg.job_failure_slos)
    return {
        "route": {
            "receiver": TICKET,  # anything unlabelled still reaches a person, at ticket priority
            "group_by": GROUP_BY,
            "group_wait": cfg.group_wait, "group_interval": cfg.group_interval, "repeat_interval": cfg.ticket_repeat,
            "routes": [
                *_user_routes(cfg),
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
            *([{"name": USERS, **_user_integration(cfg.users, cfg.act)}] if cfg.users else []),
            # act must hear that an alert resolved: a job that recovered starts its warnings again.
            *([{"name": ACT, "webhook_configs": [{"send_resolved": True, "url": cfg.act.url}]}] if cfg.act else []),
        ],
    }


def _user_routes(cfg: RoutingConfig) -> list[dict[str, Any]]:
    """Alerts about a user's own job: to act (then on), and to the users receiver, never to the ticket queue."""
    out: list[dict[str, Any]] = []
    if cfg.act:
        out.append({"receiver": ACT, "matchers": [USER_MATCHER, f'alertname=~"{_regex_alternatives(cfg.act.alerts)}"'],
                    "group_by": ACT_GROUP_BY, "repeat_interval": cfg.act.repeat, "continue": True})
    out.append({"receiver": USERS if cfg.users else RECORD, "matchers": [USER_MATCHER], "group_by": USER_GROUP_BY,
                "repeat_interval": cfg.users_repeat})
    return out


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

# The same for alerts about a user's own job, with a users receiver and act configured: (description,
# labels, every receiver it must reach).
_WASTE = {"severity": "warning", "component": "jobs", "audience": "user", "cluster": "c1", "jobid": "42",
          "user": "alice", "account": "physics"}
USER_ROUTING_CASES: tuple[tuple[str, dict[str, str], tuple[str, ...]], ...] = (
    ("GPUs idle: act and the owner", {"alertname": "HpcJobGpuIdle", **_WASTE}, (ACT, USERS)),
    ("GPUs unused: act and the owner", {"alertname": "HpcJobGpuUnused", **_WASTE}, (ACT, USERS)),
    ("memory unused: the owner only", {"alertname": "HpcJobMemoryUnused", **_WASTE}, (USERS,)),
)
