"""Every rule, group and label name the SLO engine writes, in one place (Sloth's conventions)."""

from __future__ import annotations

from hpcwatch.slo.goformat import prom_duration

# Labels Sloth puts on every SLO series; Sloth's dashboards select on them.
LABEL_ID = "sloth_id"
LABEL_SERVICE = "sloth_service"
LABEL_SLO = "sloth_slo"
LABEL_WINDOW = "sloth_window"
LABEL_SEVERITY = "sloth_severity"
LABEL_VERSION = "sloth_version"
LABEL_MODE = "sloth_mode"
LABEL_SPEC = "sloth_spec"
LABEL_OBJECTIVE = "sloth_objective"
RESERVED_LABELS = frozenset({LABEL_ID, LABEL_SERVICE, LABEL_SLO, LABEL_WINDOW, LABEL_SEVERITY, LABEL_VERSION,
                             LABEL_MODE, LABEL_SPEC, LABEL_OBJECTIVE})

SEVERITY_PAGE = "page"
SEVERITY_TICKET = "ticket"

# Metadata recordings.
OBJECTIVE_RATIO = "slo:objective:ratio"
ERROR_BUDGET_RATIO = "slo:error_budget:ratio"
TIME_PERIOD_DAYS = "slo:time_period:days"
CURRENT_BURN_RATE = "slo:current_burn_rate:ratio"
PERIOD_BURN_RATE = "slo:period_burn_rate:ratio"
PERIOD_BUDGET_REMAINING = "slo:period_error_budget_remaining:ratio"
SLO_INFO = "sloth_slo_info"
# hpcwatch's own recordings: calendar periods (OpenSLO) and the denominator-corrected plugin's factor.
CALENDAR_INDEX = "slo:calendar_period:index"
CALENDAR_ELAPSED = "slo:calendar_period_elapsed:ratio"
NUMERATOR_CORRECTION = "slo:numerator_correction:ratio"

# The window template variable Sloth specs use in their queries.
WINDOW_VAR = "window"


def sli_error_metric(window_s: int) -> str:
    """`slo:sli_error:ratio_rate5m`: the error ratio over one window."""
    return f"slo:sli_error:ratio_rate{prom_duration(window_s)}"


def sli_calendar_metric(duration: str) -> str:
    """`slo:sli_error:ratio_calendar1M`: the error ratio since the calendar period's last boundary."""
    return f"slo:sli_error:ratio_calendar{duration}"


def sli_events_metric(window_s: int) -> str:
    """`slo:sli_events:count1h`: how many events the SLI saw in a window (hpcwatch's low-traffic guard)."""
    return f"slo:sli_events:count{prom_duration(window_s)}"


def group_sli(slo_id: str) -> str:
    return f"sloth-slo-sli-recordings-{slo_id}"


def group_meta(slo_id: str) -> str:
    return f"sloth-slo-meta-recordings-{slo_id}"


def group_alerts(slo_id: str) -> str:
    return f"sloth-slo-alerts-{slo_id}"


def group_guard(slo_id: str) -> str:
    """hpcwatch's own group, so the three Sloth groups stay as Sloth writes them."""
    return f"hpcwatch-slo-guard-recordings-{slo_id}"


def group_inputs(slo_id: str) -> str:
    """hpcwatch's group of the recordings an SLI reads (SLO.inputs)."""
    return f"hpcwatch-slo-input-recordings-{slo_id}"


# Input recordings of the gpu-utilisation SLI: allocated GPUs, and those at or above its threshold, now.
GPU_ALLOCATED = "slo:hpc_gpu_allocated:count"
GPU_BUSY = "slo:hpc_gpu_busy:count"


def slo_id(service: str, name: str) -> str:
    return f"{service}-{name}"


def id_labels(slo) -> dict[str, str]:
    """The three labels that identify an SLO's series (Sloth's GetSLOIDPromLabels)."""
    return {LABEL_ID: slo.id, LABEL_NAME_KEY: slo.name, LABEL_SERVICE: slo.service}


LABEL_NAME_KEY = LABEL_SLO

# Sloth's `sloth_mode` and `sloth_spec` info labels per input kind.
MODE_PROM = "cli-gen-prom"
MODE_K8S = "cli-gen-k8s"
MODE_OPENSLO = "cli-gen-openslo"
