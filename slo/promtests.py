"""promtool unit tests for every SLO's alerts: one test case per alert condition, each driven so only
that condition can fire, so a wrong factor or window in any single condition fails its case.

The tests drive the alert rules from the SLI ratio series (the recordings' outputs), so they work for
any SLI query. Per condition (page quick, page slow, ticket quick, ticket slow, each OpenSLO burn-rate
condition): its windows just above the threshold fire it and nothing else (every other window sits
at 0); just below, or with only one of its two windows above, nothing fires; with min_events, N-1
events keep it silent. A factor off by more than 1%, or a condition reading another window, fails.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re

from hpcwatch.slo import conventions as c
from hpcwatch.slo import yamlout
from hpcwatch.slo.generate import SLOTH_VERSION, Options, alert_rules
from hpcwatch.slo.goformat import prom_duration
from hpcwatch.slo.model import SLO
from hpcwatch.slo.writer import HEADER

STEP = 1  # minutes between samples and evaluations
HORIZON = 20  # minutes each case runs
MARGIN = 0.01  # how far above/below a threshold the cases drive a window (a factor off by more fails)
_LABEL_TPL = re.compile(r"\{\{\s*\$labels\.([a-zA-Z_][a-zA-Z0-9_]*)\s*\}\}")
_CMP = {"lt": float.__lt__, "lte": float.__le__, "gt": float.__gt__, "gte": float.__ge__}


@dataclasses.dataclass(frozen=True)
class Condition:
    """One alert condition as the tests see it: which alert, which windows, what threshold."""

    title: str
    alert: int  # index into alert_rules(slo)
    windows: tuple[int, ...]
    threshold: float
    op: str = "gt"
    for_min: int = 0


def conditions(slo: SLO) -> list[Condition]:
    """The SLO's alert conditions in alert_rules() order: MWMB halves, then OpenSLO burn-rate alerts."""
    out = []
    for i, (severity, quick, slow) in enumerate(slo.burn_windows()):
        for speed, w in (("quick", quick), ("slow", slow)):
            out.append(Condition(f"{severity} {speed} ({prom_duration(w.short_s)}, {prom_duration(w.long_s)})",
                                 i, (w.short_s, w.long_s), w.factor * slo.error_budget))
    base = len(slo.burn_windows())
    for j, a in enumerate(slo.burn_alerts):
        if not a.no_data:
            out.append(Condition(f"{a.name} ({a.op} {a.threshold:g}x over {prom_duration(a.window_s)})", base + j,
                                 (a.window_s,), a.threshold * slo.error_budget, a.op, -(-a.for_s // 60)))
    return out


def _fires(slo: SLO, cond_of: dict[int, list[Condition]], idx: int, values: dict[int, float],
           events: float | None) -> bool:
    """Whether alert `idx` fires for constant window `values` (None = absent), as the rule reads them."""
    if idx >= len(slo.burn_windows()) and slo.burn_alerts[idx - len(slo.burn_windows())].no_data:
        return values.get(slo.burn_alerts[idx - len(slo.burn_windows())].window_s) is None
    for cond in cond_of.get(idx, []):
        vals = [values.get(w) for w in cond.windows]
        if any(v is None for v in vals):
            continue
        ok = all(_CMP[cond.op](float(v), cond.threshold) for v in vals)
        if ok and cond.op == "gt" and slo.min_events and idx < len(slo.burn_windows()):
            ok = events is not None and events >= slo.min_events
        if ok:
            return True
    return False


def _expand(text: str, labels: dict[str, str]) -> str | None:
    out = _LABEL_TPL.sub(lambda m: labels.get(m.group(1), ""), text)
    return None if "{{" in out else out


def _sel(labels: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())) + "}"


def _cases(slo: SLO, conds: list[Condition]) -> list[tuple[str, dict[int, float], float | None, int]]:
    """(title, {window: ratio} (missing = absent), events per long window, eval minute)."""
    zero = dict.fromkeys(slo.sli_windows(), 0.0)
    n = slo.min_events * 10 if slo.min_events else None
    cases = [("healthy: every window at 0", zero, n, STEP * 2)]
    for cond in conds:
        if cond.op in ("gt", "gte") and cond.threshold >= 1:
            cases.append((f"{cond.title}: every window at ratio 1 (threshold {cond.threshold:g} is out of reach)",
                          dict.fromkeys(zero, 1.0), n, STEP * 2))
            continue
        up, down = cond.threshold * (1 + MARGIN), cond.threshold * (1 - MARGIN)
        hit, miss = (up, down) if cond.op in ("gt", "gte") else (down, up)
        at = cond.for_min + STEP * 2
        cases.append((f"{cond.title}: {MARGIN:.0%} past its threshold fires it alone",
                      {**zero, **dict.fromkeys(cond.windows, hit)}, n, at))
        cases.append((f"{cond.title}: {MARGIN:.0%} short of its threshold stays silent",
                      {**zero, **dict.fromkeys(cond.windows, miss)}, n, at))
        if len(cond.windows) == 2:
            for w in cond.windows:
                cases.append((f"{cond.title}: only the {prom_duration(w)} window past it stays silent",
                              {**zero, w: hit}, n, at))
            if slo.min_events:
                cases.append((f"{cond.title}: past it with {slo.min_events - 1} events (min_events guard)",
                              {**zero, **dict.fromkeys(cond.windows, hit)}, slo.min_events - 1, at))
    for a in slo.burn_alerts:
        if a.no_data:
            values = {w: v for w, v in zero.items() if w != a.window_s}
            cases.append((f"{a.name}: no {prom_duration(a.window_s)} ratio fires it", values, n,
                          -(-a.for_s // 60) + STEP * 2))
    return cases


def slo_test(slo: SLO, rule_file: str) -> dict | None:
    """The promtool test document for one SLO, or None when it has no alerts or unpredictable annotations."""
    alerts = alert_rules(slo)
    if not alerts:
        return None
    ids = c.id_labels(slo)
    base = {**ids, **slo.labels}
    expected = []
    for i, r in enumerate(alerts):
        no_data = i >= len(slo.burn_windows()) and slo.burn_alerts[i - len(slo.burn_windows())].no_data
        # max(...) without (sloth_window) keeps the SLO's labels; absent() keeps only the id labels.
        labels = dict(sorted({**(ids if no_data else base), **r.get("labels", {})}.items()))
        ann = {k: _expand(v, labels) for k, v in r.get("annotations", {}).items()}
        if any(v is None for v in ann.values()):
            return None
        expected.append((r["alert"], labels, dict(sorted(ann.items()))))
    conds = conditions(slo)
    cond_of: dict[int, list[Condition]] = {}
    for cond in conds:
        cond_of.setdefault(cond.alert, []).append(cond)
    tests = []
    for title, values, events, at in _cases(slo, conds):
        samples = max(HORIZON, at + HORIZON) // STEP  # the series outlive the check (`for:` delays it)
        series = [{"series": c.sli_error_metric(w) + _sel({**base, c.LABEL_WINDOW: prom_duration(w)}),
                   "values": f"{v!r}x{samples}"} for w, v in sorted(values.items())]
        if slo.min_events and events is not None:
            series += [{"series": c.sli_events_metric(w) + _sel({**base, c.LABEL_WINDOW: prom_duration(w)}),
                        "values": f"{events!r}x{samples}"} for w in slo.windows.long_windows()]
        by_name: dict[str, list] = {}
        for i, (name, labels, ann) in enumerate(expected):
            by_name.setdefault(name, [])
            if _fires(slo, cond_of, i, values, events):
                by_name[name].append({"exp_labels": labels, **({"exp_annotations": ann} if ann else {})})
        checks = [{"eval_time": f"{at}m", "alertname": name, "exp_alerts": exp} for name, exp in by_name.items()]
        tests.append({"name": f"{slo.id}: {title}", "interval": f"{STEP}m", "input_series": series,
                      "alert_rule_test": checks})
    return {"rule_files": [rule_file], "evaluation_interval": f"{STEP}m", "tests": tests}


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
