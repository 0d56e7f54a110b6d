"""The alert model: one infrastructure alert, its runbook, and the two promtool cases that prove it.

Each alert carries a firing and a non-firing case, so the generated promtool tests are written from
the same object as the rule and cannot drift from it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

SEVERITIES = ("critical", "warning", "info")
# Who an alert is for: operators (routed by severity) or the owner of the job it names (the `users`
# receiver); only the latter carry an `audience` label.
AUDIENCES = ("ops", "user")
COMPONENTS = ("exporter", "node", "jobs", "gpu", "fabric", "filesystem", "scheduler")
DEFAULT_RUNBOOK_BASE = "https://github.com/hpcwatch/hpcwatch/blob/main/docs/runbooks"
MAINTENANCE = "hpc_scheduler_maintenance"   # metric_names.SCHED_MAINTENANCE: nodes under maintenance now


@dataclass(frozen=True)
class Case:
    """A promtool case: input series (1m interval), when to evaluate, and what should fire.

    `labels` are the labels the firing alert carries besides alertname, severity and component;
    `value` is how the annotations render `{{ $value | ... }}` for this case.
    """

    series: tuple[tuple[str, str], ...]
    eval_time: str
    labels: dict[str, str] = field(default_factory=dict)
    value: str = ""


@dataclass(frozen=True)
class AlertRule:
    name: str
    expr: str
    severity: str
    component: str
    summary: str
    description: str
    fire: Case
    quiet: Case
    for_: str = "0m"
    audience: str = "ops"

    def __post_init__(self) -> None:
        if self.severity not in SEVERITIES:
            raise ValueError(f"alert {self.name}: severity {self.severity!r} not in {SEVERITIES}")
        if self.component not in COMPONENTS:
            raise ValueError(f"alert {self.name}: component {self.component!r} not in {COMPONENTS}")
        if self.audience not in AUDIENCES:
            raise ValueError(f"alert {self.name}: audience {self.audience!r} not in {AUDIENCES}")
        if not re.fullmatch(r"[A-Z][A-Za-z0-9]+", self.name):
            raise ValueError(f"alert {self.name!r}: use an UpperCamelCase name")

    @property
    def per_node(self) -> bool:
        """An operators' alert about one node (its firing case names the node): silent while the node is
        under maintenance."""
        return self.audience == "ops" and "node" in self.fire.labels

    @property
    def rule_expr(self) -> str:
        """The expression the rule file holds: a per-node alert drops the nodes the scheduler has under
        maintenance (`unless` in the rule rather than an Alertmanager inhibition: see docs/alerts.md)."""
        if not self.per_node:
            return self.expr
        return f"({self.expr}) unless on (cluster, node) {MAINTENANCE}"

    @property
    def labels(self) -> dict[str, str]:
        extra = {"audience": self.audience} if self.audience != "ops" else {}
        return {"severity": self.severity, "component": self.component, **extra}

    def runbook_url(self, base: str = DEFAULT_RUNBOOK_BASE) -> str:
        return f"{base.rstrip('/')}/{self.name}.md"

    def annotations(self, base: str = DEFAULT_RUNBOOK_BASE) -> dict[str, str]:
        return {"summary": self.summary, "description": self.description, "runbook_url": self.runbook_url(base)}


_TEMPLATE = re.compile(r"\{\{\s*(\$labels\.(\w+)|\$value(\s*\|\s*\w+)?)\s*\}\}")


def render_template(text: str, labels: dict[str, str], value: str) -> str:
    """Expand the two template forms our annotations use, as Prometheus would, for promtool's expectations.

    Only `{{ $labels.NAME }}` and `{{ $value }}` / `{{ $value | humanizeX }}` are allowed; the case
    states how the value renders, so the Go formatting is written down once, in the case.
    """
    def sub(m: re.Match[str]) -> str:
        if m.group(2):
            return labels.get(m.group(2), "")
        if not value:
            raise ValueError(f"template {m.group(0)!r} needs the case's expected value text")
        return value

    out = _TEMPLATE.sub(sub, text)
    if "{{" in out:
        raise ValueError(f"unsupported template in {text!r}: use $labels.NAME or $value only")
    return out


def read_mapping(text: str, expected: str, error: type[ValueError]) -> dict:
    """A YAML config document as a mapping ({} when empty); `error` says `not YAML` or what was expected."""
    import yaml

    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise error(f"not YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise error(f"expected a mapping with {expected}")
    return raw
