"""promtool unit tests for every SLO's alerts: synthetic SLI series burning the budget at about 15x, 7x,
3.5x, 1.2x and 0.5x assert when page and ticket fire and stay silent, and that min_events holds.

The tests drive the alert rules from the SLI ratio series (the recordings' outputs), so they work for
any SLI query: each window's ratio ramps up as a real step change in error rate would fill it.
"""

from __future__ import annotations

import os
import re

from hpcwatch.slo import conventions as c
from hpcwatch.slo import yamlout
from hpcwatch.slo.generate import SLOTH_VERSION, Options, alert_rules
from hpcwatch.slo.goformat import prom_duration
from hpcwatch.slo.model import SLO
from hpcwatch.slo.writer import HEADER

BURNS = (15.0, 7.0, 3.5, 1.2, 0.5)
START = 60  # minutes of healthy history before the burn starts
STEP = 5  # minutes between samples and between evaluations (a 1m step makes promtool 5x slower)
_LABEL_TPL = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")


def _ratio(slo: SLO, burn: float) -> float:
    return min(1.0, burn * slo.error_budget)


def _series_values(level: float, window_min: int, horizon: int) -> tuple[str, dict[int, float]]:
    """promtool values text for a window's ratio after a step to `level` at START, and {minute: value}."""
    n = max(1, window_min // STEP)
    step = level / n
    rest = (horizon - START - n * STEP) // STEP
    text = f"0x{START // STEP - 1} 0+{step!r}x{n} {level!r}x{rest}"
    vals = {m * STEP: 0.0 for m in range(START // STEP)}
    v = 0.0
    for i in range(n + 1):
        vals[START + i * STEP] = v
        v += step
    for i in range(1, rest + 1):
        vals[START + n * STEP + i * STEP] = level
    return text, vals


def _expand(text: str, labels: dict[str, str]) -> str | None:
    out = _LABEL_TPL.sub(lambda m: labels.get(m.group(1), ""), text)
    return None if "{{" in out else out


def _checkpoints(slo: SLO) -> list[int]:
    longest = max(slo.windows.windows()) // 60
    points = {START - STEP, START + 30, START + 60, START + 120, START + 360, START + 720, START + 1440,
              START + 2880, START + longest, START + longest + 60}
    return sorted(p for p in points if p <= START + longest + 60 and p % STEP == 0)


def _expected(slo: SLO, vals: dict[int, list[float]], t: int, events_ok: bool) -> dict[str, bool] | None:
    """{severity: fires} at minute t, or None when a ratio sits too close to a threshold to assert."""
    out = {}
    for severity, quick, slow in slo.burn_windows():
        fires = False
        for w in (quick, slow):
            thr = w.factor * slo.error_budget
            ok = True
            for win in (w.short_s, w.long_s):
                r = vals[win][t]
                if thr > 0 and abs(r / thr - 1) < 0.02:
                    return None
                ok = ok and r > thr
            fires = fires or (ok and events_ok)
        out[severity] = fires
    return out


def slo_test(slo: SLO, rule_file: str) -> dict | None:
    """The promtool test document for one SLO, or None when it has no alerts or unpredictable annotations."""
    alerts = alert_rules(slo)
    if not alerts:
        return None
    ids = c.id_labels(slo)
    base_labels = {**ids, **slo.labels}
    expected_alerts = {}
    for rule, (severity, _, _) in zip(alerts, slo.burn_windows()):
        labels = dict(sorted({**base_labels, **rule["labels"]}.items()))
        ann = {}
        for k, v in rule["annotations"].items():
            ann[k] = _expand(v, labels)
            if ann[k] is None:
                return None
        expected_alerts[severity] = (rule["alert"], labels, dict(sorted(ann.items())))
    horizon = START + max(slo.windows.windows()) // 60 + 60 + STEP
    scenarios = [(f"burn {b:g}x budget", b, True) for b in BURNS]
    if slo.min_events:
        scenarios.append((f"burn 15x budget with {slo.min_events - 1} events: min_events guard", 15.0, False))
    tests = []
    for title, burn, events_ok in scenarios:
        series, vals = [], {}
        for w in slo.windows.windows():
            text, vals[w] = _series_values(_ratio(slo, burn), w // 60, horizon)
            labels = {**base_labels, c.LABEL_WINDOW: prom_duration(w)}
            series.append({"series": c.sli_error_metric(w) + _sel(labels), "values": text})
        if slo.min_events:
            count = slo.min_events * 10 if events_ok else slo.min_events - 1
            for w in slo.windows.long_windows():
                labels = {**base_labels, c.LABEL_WINDOW: prom_duration(w)}
                series.append({"series": c.sli_events_metric(w) + _sel(labels), "values": f"{count}x{horizon // STEP}"})
        checks = []
        for t in _checkpoints(slo):
            exp = _expected(slo, vals, t, events_ok)
            if exp is None:
                continue
            by_name: dict[str, list] = {}
            for severity, _, _ in slo.burn_windows():
                name, labels, ann = expected_alerts[severity]
                by_name.setdefault(name, [])
                if exp[severity]:
                    by_name[name].append({"exp_labels": labels, "exp_annotations": ann})
            for name, exp_alerts in by_name.items():
                checks.append({"eval_time": f"{t}m", "alertname": name, "exp_alerts": exp_alerts})
        tests.append({"name": f"{slo.id}: {title}", "interval": f"{STEP}m", "input_series": series,
                      "alert_rule_test": checks})
    return {"rule_files": [rule_file], "evaluation_interval": f"{STEP}m", "tests": tests}


def _sel(labels: dict[str, str]) -> str:
    import json

    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def promtool_test_files(slos: list[SLO], tests_dir: str,
                        sloth_version: str | Options = SLOTH_VERSION) -> dict[str, str]:
    """{path: text}: per SLO an alerts-only rule file and its promtool test file."""
    files = {}
    for slo in slos:
        rule_name = f"{slo.id}.alerts.yml"
        doc = slo_test(slo, rule_name)
        if doc is None:
            continue
        rules = {"groups": [{"name": c.group_alerts(slo.id), "rules": alert_rules(slo)}]}
        files[os.path.join(tests_dir, rule_name)] = HEADER + yamlout.dump(rules)
        files[os.path.join(tests_dir, f"{slo.id}.test.yml")] = HEADER + yamlout.dump(doc)
    return files
