"""`flux jobs --json` output (one document, JSON lines, or a document cut short) -> neutral job records.

Jobs are read and mapped by the exporter's own `parse_flux_jobs` and `flux_to_finished`, so results
and exceptions map to outcome and cause by the one Flux table. This module adds what a saved file
needs: JSON lines with bad lines among good ones, a truncated document, and counting.
"""

from __future__ import annotations

import json
from collections import Counter

from hpcwatch.exporters.flux.parse import FluxParseError, parse_flux_jobs
from hpcwatch.exporters.flux.parse import flux_to_finished as _to_finished
from hpcwatch.slo.history.records import InputReport, JobRecords, finish, frame_from_finished


def _salvage(text: str, report: InputReport) -> list[str]:
    """Objects of a `{"jobs": [...]` or `[...]` document that was cut short: each whole one, as JSON."""
    start = text.find("[")
    dec = json.JSONDecoder()
    out, pos = [], start + 1
    while start >= 0 and pos < len(text):
        while pos < len(text) and text[pos] in " \t\r\n,":
            pos += 1
        if pos >= len(text) or text[pos] == "]":
            break
        try:
            obj, pos = dec.raw_decode(text, pos)
        except ValueError:
            report.drop("truncated", 1, f"offset {pos}: {text[pos:pos + 60]}")
            break
        out.append(json.dumps(obj))
    return out


def _is_json(line: str) -> bool:
    try:
        json.loads(line)
    except ValueError:
        return False
    return True


def load_flux(text: str, source: str, cluster: str) -> JobRecords:
    report = InputReport(source, "flux")
    try:
        jobs, skipped = parse_flux_jobs(text)
        report.records += len(jobs) + skipped
        report.drop("malformed", skipped, None)
    except FluxParseError:
        # JSON lines with some bad lines, or one document cut short: read what is whole, count the rest.
        jobs = []
        lines = [ln for ln in text.splitlines() if ln.strip()]
        if lines and not _is_json(lines[0]):
            lines = _salvage(text, report)
            report.records += report.dropped["truncated"]
        for n, line in enumerate(lines, 1):
            try:
                got, skipped = parse_flux_jobs(line)
            except FluxParseError:
                report.records += 1
                cut = n == len(lines) and not text.endswith("\n")
                report.drop("truncated" if cut else "malformed", 1, f"line {n}: {line}")
                continue
            jobs.extend(got)
            report.records += len(got) + skipped
            report.drop("malformed", skipped, f"line {n}: {line}" if skipped else None)
    runs, unknown = _to_finished(jobs, cluster)
    report.drop("unknown_state", unknown, None)
    report.drop("not_finished", len(jobs) - len(runs) - unknown, None)
    ids = Counter(j.id for j in jobs)
    report.flag("requeued", sum(1 for n in ids.values() if n > 1))
    return finish(frame_from_finished(runs), report)
