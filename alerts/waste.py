"""Waste caught while it happens: alerts to the owner of a running job that holds GPUs or memory it does not use.

Off by default (they e-mail users about their own jobs, which a site decides to do); switched on in
the alert config (`hpcwatch alerts rules --config alerts.yml`, `waste: {enabled: true}`), where the
thresholds are set. Every alert is per job, labelled cluster, jobid, user and account, and carries
`audience="user"` so Alertmanager sends it to the `users` receiver (and to `hpcwatch act`), not to
the operators' ticket queue.

The joins (ARCHITECTURE.md, "Job attribution"): GPU series are per GPU; `hpc_gpu_job_info{gpu,uuid,
jobid}` ties a GPU to the jobs on it (from the processes' cgroups, and from the Slurm prolog's map for
GPUs no process has opened); identity lives once in `hpc_job_info{jobid,user,account,...}`, one per node
the job runs on, so it is collapsed to one row per job before the join (the real account wherever one
node knows it, from the Slurm prolog's file; `unknown` only where none does). Matching is on (cluster, instance, uuid)
within a node and (cluster, jobid) across nodes, so a multi-node job is one alert.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Any

from hpcwatch.alerts.model import AlertRule, Case, read_mapping
from hpcwatch.slo.goformat import go_float, parse_duration, prom_duration

from hpcwatch import metric_names as n

GROUP = "hpcwatch-waste"
# Alerts `hpcwatch act` may act on by default: GPUs held idle. Memory over-asking costs less and is
# fixed next time; it is e-mailed, never cancelled, unless a site lists it.
GPU_ALERTS = ("HpcJobGpuIdle", "HpcJobGpuUnused")

EXAMPLE_CONFIG = """\
# hpcwatch alerts rules --config this-file   (and the same for `hpcwatch alerts tests`)
waste:
  enabled: true                # off unless set: these alerts e-mail users about their own running jobs
  gpu_idle:                    # a GPU of a running job whose processes leave it idle
    utilisation_below: 0.05    # 15-minute average of hpc_gpu_utilization_ratio under this ...
    for: 1h                    # ... for this long
  gpu_unused:                  # a GPU allocated to a running job with no process on it at all
    for: 30m
  memory_unused:               # a job whose peak memory is a small share of what it asked for (--mem)
    used_below: 0.2            # peak / requested under this ...
    min_requested: 8GiB        # ... on jobs that asked for at least this much ...
    for: 1h                    # ... for this long
"""


class ConfigError(ValueError):
    """An alert config field that cannot be used; the message names the field and what was expected."""


@dataclasses.dataclass(frozen=True)
class WasteConfig:
    enabled: bool = False
    gpu_idle_below: float = 0.05
    gpu_idle_for_s: int = 3600
    gpu_unused_for_s: int = 1800
    memory_used_below: float = 0.2
    memory_min_requested: int = 8 << 30
    memory_for_s: int = 3600


_UNITS = {"": 1, "b": 1, "kb": 10**3, "mb": 10**6, "gb": 10**9, "tb": 10**12, "kib": 1 << 10, "mib": 1 << 20,
          "gib": 1 << 30, "tib": 1 << 40}


def _bytes(field: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    m = re.fullmatch(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([KMGT]i?B|B)?\s*", str(value), re.I)
    if isinstance(value, bool) or not m:
        raise ConfigError(f"{field}: expected a size such as 8GiB or 16000000000, got {value!r}")
    return int(float(m.group(1)) * _UNITS[(m.group(2) or "").lower()])


def _ratio(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value < 1:
        raise ConfigError(f"{field}: expected a ratio between 0 and 1 (0.05 is 5%), got {value!r}")
    return float(value)


def _duration(field: str, value: Any) -> int:
    try:
        seconds = parse_duration(str(value))
    except ValueError:
        seconds = 0
    if isinstance(value, bool) or seconds < 60:
        raise ConfigError(f"{field}: expected a duration of a minute or more such as 30m or 1h, got {value!r}")
    return seconds


def _section(raw: dict, key: str, where: str, allowed: set[str]) -> dict:
    value = raw.get(key, {})
    if not isinstance(value, dict):
        raise ConfigError(f"{where}.{key}: expected a mapping")
    unknown = set(value) - allowed
    if unknown:
        raise ConfigError(f"{where}.{key}: unknown fields {', '.join(sorted(map(str, unknown)))} "
                          f"(known: {', '.join(sorted(allowed))})")
    return value


def load_waste(raw: Any) -> WasteConfig:
    """The `waste:` section of the alert config (a mapping or None) -> WasteConfig."""
    if raw is None:
        return WasteConfig()
    if not isinstance(raw, dict):
        raise ConfigError("waste: expected a mapping (enabled, gpu_idle, gpu_unused, memory_unused)")
    top = {"enabled", "gpu_idle", "gpu_unused", "memory_unused"}
    if set(raw) - top:
        raise ConfigError(f"waste: unknown fields {', '.join(sorted(map(str, set(raw) - top)))} "
                          f"(known: {', '.join(sorted(top))})")
    if not isinstance(raw.get("enabled", False), bool):
        raise ConfigError(f"waste.enabled: expected true or false, got {raw.get('enabled')!r}")
    d = WasteConfig()
    idle = _section(raw, "gpu_idle", "waste", {"utilisation_below", "for"})
    unused = _section(raw, "gpu_unused", "waste", {"for"})
    mem = _section(raw, "memory_unused", "waste", {"used_below", "min_requested", "for"})
    return WasteConfig(
        enabled=raw.get("enabled", False),
        gpu_idle_below=_ratio("waste.gpu_idle.utilisation_below", idle.get("utilisation_below", d.gpu_idle_below)),
        gpu_idle_for_s=_duration("waste.gpu_idle.for", idle.get("for", prom_duration(d.gpu_idle_for_s))),
        gpu_unused_for_s=_duration("waste.gpu_unused.for", unused.get("for", prom_duration(d.gpu_unused_for_s))),
        memory_used_below=_ratio("waste.memory_unused.used_below", mem.get("used_below", d.memory_used_below)),
        memory_min_requested=_bytes("waste.memory_unused.min_requested",
                                    mem.get("min_requested", d.memory_min_requested)),
        memory_for_s=_duration("waste.memory_unused.for", mem.get("for", prom_duration(d.memory_for_s))))


@dataclasses.dataclass(frozen=True)
class AlertConfig:
    """What `hpcwatch alerts rules|tests --config` reads; today only the waste alerts are switchable."""

    waste: WasteConfig = WasteConfig()


def load_config(text: str) -> AlertConfig:
    raw = read_mapping(text, "`waste`", ConfigError)
    if set(raw) - {"waste"}:
        raise ConfigError(f"unknown fields: {', '.join(sorted(map(str, set(raw) - {'waste'})))} (known: waste)")
    return AlertConfig(load_waste(raw.get("waste")))


# --- the rules ------------------------------------------------------------------------------------

UTIL_WINDOW = "15m"   # GPU utilisation is averaged over this before the threshold: one busy sample is not use
MEM_FALLBACK_WINDOW = "1h"   # where memory.peak is missing (cgroup v2 before 5.19), the highest usage seen in it
ON_GPU = "on (cluster, instance, uuid)"
ON_JOB = "on (cluster, jobid)"
# One identity per job: hpc_job_info is exported by every node the job runs on, and the nodes may
# disagree (one has the prolog's file, another not yet: account "" there). A join needs exactly one row
# per job, so the rows that know the account are weighted 2, those that do not 1 (account `unknown`
# rather than an empty label), topk keeps one per job, and group resets the value to 1.
_KNOWN = f'max by (cluster, jobid, user, account) ({n.JOB_INFO}{{account!=""}}) * 2'
_UNKNOWN = (f'label_replace(max by (cluster, jobid, user, account) ({n.JOB_INFO}{{account=""}}), '
            '"account", "unknown", "account", "")')
IDENTITY = f"group by (cluster, jobid, user, account) (topk by (cluster, jobid) (1, {_KNOWN} or {_UNKNOWN}))"


def _per_job(inner: str) -> str:
    """Count of the GPUs `inner` selects, per job, labelled with the job's user and account."""
    return f"count by (cluster, jobid) (\n  {inner}\n) * {ON_JOB} group_left (user, account) {IDENTITY}"


def gpu_idle_expr(below: float) -> str:
    idle = f"avg_over_time({n.GPU_UTILIZATION}[{UTIL_WINDOW}]) < {go_float(below)}"
    # The no-process case is its own alert (HpcJobGpuUnused): left out here, so a job gets one of the two.
    return _per_job(f"{n.GPU_JOB_INFO} * {ON_GPU} group_left () ({idle})\n"
                    f"  unless {ON_GPU} ({n.GPU_PROCESSES} == 0)")


def gpu_unused_expr() -> str:
    return _per_job(f"{n.GPU_JOB_INFO} * {ON_GPU} group_left () ({n.GPU_PROCESSES} == 0)")


def memory_unused_expr(below: float, min_requested: int) -> str:
    peak = (f"sum by (cluster, jobid) ({n.JOB_MEMORY_MAX_USAGE} or "
            f"max_over_time({n.JOB_MEMORY_USAGE}[{MEM_FALLBACK_WINDOW}]))")
    asked = f"sum by (cluster, jobid) ({n.JOB_MEMORY_LIMIT})"
    return (f"(\n  {peak}\n  / {asked} < {go_float(below)}\n  and {ON_JOB} {asked} >= {min_requested}\n)\n"
            f"* {ON_JOB} group_left (user, account) {IDENTITY}")


# Test series: one node, one GPU, one job of alice in account physics.
NODE = 'cluster="c1",instance="n1:19466",job="hpcwatch-node"'
GPU = f'{NODE},gpu="0",uuid="GPU-0"'
JOB = {"cluster": "c1", "jobid": "4242", "user": "alice", "account": "physics"}
JOB_INFO = (f'{n.JOB_INFO}{{{NODE},jobid="4242",user="alice",uid="1001",account="physics",partition="gpu"}}')
GPU_MAP = f'{n.GPU_JOB_INFO}{{{GPU},jobid="4242"}}'


def _minutes(seconds: int) -> int:
    return seconds // 60


def _gpu_cases(cfg: WasteConfig) -> tuple[Case, Case, Case, Case]:
    low, high = go_float(cfg.gpu_idle_below / 2), go_float(min(1.0, cfg.gpu_idle_below * 4 + 0.2))
    m_idle, m_unused = _minutes(cfg.gpu_idle_for_s) + 30, _minutes(cfg.gpu_unused_for_s) + 30
    at_idle, at_unused = f"{m_idle - 10}m", f"{m_unused - 10}m"

    def series(util: str, procs: str, m: int) -> tuple[tuple[str, str], ...]:
        return ((JOB_INFO, f"1x{m}"), (GPU_MAP, f"1x{m}"), (f"{n.GPU_UTILIZATION}{{{GPU}}}", util),
                (f"{n.GPU_PROCESSES}{{{GPU}}}", procs))

    idle_fire = Case(series(f"{low}x{m_idle}", f"1x{m_idle}", m_idle), at_idle, JOB, "1")
    # Idle for a while, then the job got to work: it recovered before the alert's time was up.
    half = _minutes(cfg.gpu_idle_for_s) // 2
    idle_quiet = Case(series(f"{low}x{half} {high}x{m_idle - half}", f"1x{m_idle}", m_idle), at_idle)
    unused_fire = Case(series(f"0x{m_unused}", f"0x{m_unused}", m_unused), at_unused, JOB, "1")
    half = _minutes(cfg.gpu_unused_for_s) // 2
    unused_quiet = Case(series(f"0x{half} {high}x{m_unused - half}", f"0x{half} 1x{m_unused - half}", m_unused),
                        at_unused)
    return idle_fire, idle_quiet, unused_fire, unused_quiet


def _memory_cases(cfg: WasteConfig) -> tuple[Case, Case]:
    m = _minutes(cfg.memory_for_s) + 70
    asked = cfg.memory_min_requested * 4
    used = asked * cfg.memory_used_below / 2

    def series(limit: float, peak: float) -> tuple[tuple[str, str], ...]:
        return ((JOB_INFO, f"1x{m}"), (f'{n.JOB_MEMORY_LIMIT}{{{NODE},jobid="4242"}}', f"{go_float(limit)}x{m}"),
                (f'{n.JOB_MEMORY_MAX_USAGE}{{{NODE},jobid="4242"}}', f"{go_float(peak)}x{m}"))

    share = go_float(round(cfg.memory_used_below / 2 * 100, 6))
    fire = Case(series(asked, used), f"{m - 10}m", JOB, f"{share}%")
    # The same share of a request below min_requested: too small to be worth an e-mail.
    small = cfg.memory_min_requested / 2
    quiet = Case(series(small, small * cfg.memory_used_below / 2), f"{m - 10}m")
    return fire, quiet


def waste_alerts(cfg: WasteConfig) -> list[AlertRule]:
    """The waste alerts at the configured thresholds ([] when switched off)."""
    if not cfg.enabled:
        return []
    idle_fire, idle_quiet, unused_fire, unused_quiet = _gpu_cases(cfg)
    mem_fire, mem_quiet = _memory_cases(cfg)
    pct = f"{cfg.gpu_idle_below * 100:g}%"
    who = "job {{ $labels.jobid }} of {{ $labels.user }} (account {{ $labels.account }}) on {{ $labels.cluster }}"
    return [
        AlertRule(
            "HpcJobGpuIdle", gpu_idle_expr(cfg.gpu_idle_below), "warning", "jobs",
            "Job {{ $labels.jobid }} keeps {{ $value }} GPU(s) idle",
            f"{{{{ $value }}}} GPU(s) allocated to {who} have run below {pct} utilisation for "
            f"{prom_duration(cfg.gpu_idle_for_s)} while the job's processes hold them: other jobs are waiting "
            "for them. Check the job (hpcwatch job report {{ $labels.jobid }}) and cancel or fix it.",
            idle_fire, idle_quiet, prom_duration(cfg.gpu_idle_for_s), "user"),
        AlertRule(
            "HpcJobGpuUnused", gpu_unused_expr(), "warning", "jobs",
            "Job {{ $labels.jobid }} holds {{ $value }} GPU(s) it never opened",
            f"{{{{ $value }}}} GPU(s) allocated to {who} have had no process on them for "
            f"{prom_duration(cfg.gpu_unused_for_s)}: the job asked for GPUs its programs do not use. "
            "Check the job (hpcwatch job report {{ $labels.jobid }}); resubmit without --gres=gpu, or fix "
            "the program's device selection.",
            unused_fire, unused_quiet, prom_duration(cfg.gpu_unused_for_s), "user"),
        AlertRule(
            "HpcJobMemoryUnused",
            memory_unused_expr(cfg.memory_used_below, cfg.memory_min_requested), "warning", "jobs",
            "Job {{ $labels.jobid }} uses {{ $value | humanizePercentage }} of the memory it asked for",
            f"The peak memory of {who} is {{{{ $value | humanizePercentage }}}} of what it asked for (under "
            f"{cfg.memory_used_below * 100:g}% for {prom_duration(cfg.memory_for_s)}); the rest is held from "
            "other jobs. Ask for less next time (hpcwatch job report {{ $labels.jobid }} says how much).",
            mem_fire, mem_quiet, prom_duration(cfg.memory_for_s), "user"),
    ]


def groups(cfg: AlertConfig) -> list[tuple[str, list[AlertRule]]]:
    """(rule group, alerts) the config adds to the catalogue."""
    alerts = waste_alerts(cfg.waste)
    return [(GROUP, alerts)] if alerts else []
