"""`job report` output: a summary and its notes as text (terminals, e-mail) or JSON, with the dashboard link."""

from __future__ import annotations

import dataclasses
import datetime
import json
import urllib.parse
from typing import Any

from hpcwatch.accounting.record import JobSummary
from hpcwatch.accounting.rules import Note, fmt_bytes, fmt_duration, notes

DASHBOARD_UID = "hpcwatch-job"


def dashboard_link(s: JobSummary, grafana_url: str = "") -> str:
    """The per-job dashboard for the job's cluster, id and run time (a path when no Grafana URL is given)."""
    params = {"var-cluster": s.cluster, "var-jobid": s.jobid}
    if s.start is not None:
        params["from"] = str(int(s.start * 1000) - 60_000)
        params["to"] = str(int((s.end or s.start + (s.elapsed_s or 0)) * 1000) + 60_000) if s.end else "now"
    return f"{grafana_url.rstrip('/')}/d/{DASHBOARD_UID}/?{urllib.parse.urlencode(params)}"


def _ts(t: float | None) -> str:
    if t is None:
        return "?"
    return datetime.datetime.fromtimestamp(t, datetime.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def _pct(x: float | None) -> str:
    return "?" if x is None else f"{x:.0%}"


def _energy(j: float | None) -> str:
    if j is None:
        return "?"
    for unit, size in (("MJ", 1e6), ("kJ", 1e3)):
        if j >= size:
            return f"{j / size:.1f} {unit}"
    return f"{j:.0f} J"


def _money(x: float | None, currency: str) -> str:
    return "?" if x is None else f"{x:.2f} {currency}".strip()


def printable(line: str) -> str:
    """A line safe for a terminal: each non-printable character (escape sequences, a newline or carriage return
    inside a job name, bidi overrides) written as its Python escape ('\\x1b', '\\n', '\\u202e')."""
    if line.isprintable():
        return line
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in line)


def render_text(s: JobSummary, source: str, grafana_url: str = "") -> str:
    """The report as plain text (80 columns, no colour: it goes into e-mail too); names are user data, so
    every line is passed through printable()."""
    state = f"{s.state or '?'} ({s.outcome}{', ' + s.cause if s.cause else ''})" if s.outcome else (s.state or "?")
    lines = [
        f"Job {s.jobid}" + (f" ({s.name})" if s.name else "") + f" on cluster {s.cluster}: {state}",
        f"  user {s.user or '?'}, account {s.account or '?'}, partition {s.partition or '?'}, QOS {s.qos or '?'}",
        f"  nodes {s.nodes or '?'} ({s.nnodes if s.nnodes is not None else '?'}), exit code {s.exit_code or '?'}",
        f"  submitted {_ts(s.submit)}, waited {fmt_duration(s.queue_wait_s)}, ran {fmt_duration(s.elapsed_s)}"
        + (f" of a {fmt_duration(s.time_limit_s)} limit" if s.time_limit_s else " (no time limit)"),
        f"  from: {source}",
        "",
        f"CPU      {s.cpus_alloc if s.cpus_alloc is not None else '?'} CPUs, "
        f"{s.cpu_time_s if s.cpu_time_s is not None else 0:.1f} CPU-seconds used, efficiency {_pct(s.cpu_efficiency)}",
        f"Memory   asked {fmt_bytes(s.mem_req_bytes)}, peak {fmt_bytes(s.mem_peak_bytes)}"
        + (f" ({s.mem_peak_source})" if s.mem_peak_source else ""),
        "GPUs     " + (f"{s.gpus_alloc} {s.gpu_model}".rstrip() + f", utilisation {_pct(s.gpu_util_mean)}, "
                       f"SM active {_pct(s.gpu_sm_active_mean)}, memory peak {fmt_bytes(s.gpu_mem_peak_bytes)}"
                       if s.gpus_alloc else "none"),
        f"Energy   {_energy(s.energy_j)}"
        + (f" (CPU and node {_energy(s.energy_cpu_j)}, GPU {_energy(s.energy_gpu_j)})" if s.energy_cpu_j is not None
           else "") + (f" [{s.energy_source}]" if s.energy_source else ""),
        f"I/O      read {fmt_bytes(s.fs_read_bytes)}, written {fmt_bytes(s.fs_write_bytes)}",
        f"Cost     {_money(s.cost, s.currency)}"
        + (f" (CPU {_money(s.cost_cpu, '')}, memory {_money(s.cost_mem, '')}, GPU {_money(s.cost_gpu, '')}, "
           f"energy {_money(s.cost_energy, '')})" if s.cost is not None else " (no price table)"),
    ]
    if s.per_node:
        lines += ["", "Per node", f"  {'node':<24} {'CPUs':>5} {'CPU time':>10} {'eff.':>5} {'mem peak':>10} "
                  f"{'mem limit':>10} {'energy':>9}"]
        for n in s.per_node:
            eff = (n.cpu_time_s / (n.cpus * s.elapsed_s)) if n.cpu_time_s is not None and n.cpus and s.elapsed_s \
                else None
            lines.append(f"  {n.node[:24]:<24} {n.cpus if n.cpus is not None else '?':>5} "
                         f"{fmt_duration(n.cpu_time_s):>10} {_pct(eff):>5} {fmt_bytes(n.mem_peak_bytes):>10} "
                         f"{fmt_bytes(n.mem_limit_bytes):>10} {_energy(n.energy_j):>9}")
    if s.per_gpu:
        lines += ["", "Per GPU", f"  {'node':<20} {'gpu':>6} {'model':<24} {'util':>5} {'SM act.':>7} {'mem peak':>10}"]
        for g in s.per_gpu:
            lines.append(f"  {g.node[:20]:<20} {g.gpu:>6} {g.model[:24]:<24} {_pct(g.util_mean):>5} "
                         f"{_pct(g.sm_active_mean):>7} {fmt_bytes(g.mem_peak_bytes):>10}")
    found = notes(s)
    lines += ["", "Notes"] + ([f"  {'!' if n.severity == 'warning' else '-'} {n.text}" for n in found]
                              or ["  none: the job used what it asked for."])
    if s.missing:
        lines += ["", "Not known"] + [f"  {m}" for m in s.missing]
    lines += ["", f"Dashboard: {dashboard_link(s, grafana_url)}"]
    return "\n".join(map(printable, lines)) + "\n"


def to_json(s: JobSummary, source: str, grafana_url: str = "") -> dict[str, Any]:
    """The report as a JSON document: the summary (ISO 8601 times), notes, where it came from, the link."""
    job = dataclasses.asdict(s)
    for name in ("submit", "eligible", "start", "end", "written_at"):
        v = job[name]
        job[name] = None if v is None else datetime.datetime.fromtimestamp(v, datetime.UTC).isoformat()
    found: list[Note] = notes(s)
    return {"job": job, "notes": [dataclasses.asdict(n) for n in found], "source": source,
            "dashboard": dashboard_link(s, grafana_url)}


def render_json(s: JobSummary, source: str, grafana_url: str = "") -> str:
    return json.dumps(to_json(s, source, grafana_url), indent=2, sort_keys=True) + "\n"
