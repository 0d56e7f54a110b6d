"""Sloth's SLO plugin chain: the built-in plugins that are pure rule transformations, run in Sloth's order.

Sloth runs, per SLO, the plugins of priority < 0, then its default chain (validate, SLI rules,
metadata rules, alert rules), then the plugins of priority >= 0 (internal/app/generate). Plugins
that are Go code loaded from disk (`--plugins-path`) cannot run here and are refused by id.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping

from hpcwatch.slo import conventions as c
from hpcwatch.slo.errors import SpecError
from hpcwatch.slo.generate import (
    Options,
    RuleGroup,
    SLORules,
    alert_rules,
    events_ratio,
    guard_recordings,
    input_recordings,
    merge_labels,
    meta_recordings,
    period_recording,
    rule,
    sli_recordings,
)
from hpcwatch.slo.goformat import go_float, label_filter, prom_duration
from hpcwatch.slo.model import SLO, EventsSLI, PluginCall, frozen_map
from hpcwatch.slo.validate import Fields, render_window

Run = Callable[[SLO, Mapping, Options, SLORules], None]
Parse = Callable[[Fields, dict, str], dict]


@dataclasses.dataclass(frozen=True)
class Plugin:
    """One built-in plugin: `parse` checks its config at load time, `run` transforms the rules."""

    id: str
    run: Run
    parse: Parse = lambda f, cfg, field: (f.only(cfg, field, set()), {})[1]
    events_only: bool = False


# --- the default chain -------------------------------------------------------------------------

def _sli(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    rules.sli.rules = sli_recordings(slo, opts.guard, optimized=not cfg.get("disableOptimized", False))
    if slo.inputs:
        rules.extra.append(RuleGroup(c.group_inputs(slo.id), slo.intervals.sli, input_recordings(slo)))


def _meta(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    rules.meta.rules = meta_recordings(slo, opts.sloth_version)


def _alerts(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    rules.alerts.rules = alert_rules(slo)
    guard = guard_recordings(slo)
    if guard and rules.alerts.rules:
        rules.extra.append(RuleGroup(c.group_guard(slo.id), slo.intervals.sli, guard))


def _nothing(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    """Validation happens when specs load; debug output is Sloth's log, not rules."""


def _parse_sli(f: Fields, cfg: dict, field: str) -> dict:
    f.only(cfg, field, {"disableOptimized"})
    return {"disableOptimized": f.boolean(cfg, "disableOptimized", field + ".disableOptimized")}


def _parse_debug(f: Fields, cfg: dict, field: str) -> dict:
    f.only(cfg, field, {"msg", "result", "request"})
    return {}


# --- contrib ----------------------------------------------------------------------------------

def _denominator(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    """sloth.dev/contrib/denominator_corrected_rules/v1: errors weighted by the window's share of the
    period's traffic, so quiet hours burn less; adds slo:numerator_correction:ratio<w> recordings."""
    assert isinstance(slo.sli, EventsSLI)
    ids = c.id_labels(slo)
    flt = label_filter(ids)
    period = prom_duration(slo.period_s)
    out = []
    windows = slo.sli_windows()
    for w in windows:
        win = prom_duration(w)
        total = render_window(slo.sli.total_query, win)
        error = (f"\n{c.NUMERATOR_CORRECTION}{win}{flt}\n* on()\n"
                 f"{render_window(slo.sli.error_query, win)}\n")
        out.append(rule(record=c.sli_error_metric(w), expr=events_ratio(error, total, opts.guard),
                        labels=merge_labels(ids, {c.LABEL_WINDOW: win}, slo.labels)))
    if slo.period_s not in windows:
        if cfg.get("disableOptimized"):
            expr = render_window(events_ratio(slo.sli.error_query, slo.sli.total_query, opts.guard), period)
            out.append(rule(record=c.sli_error_metric(slo.period_s), expr=expr,
                            labels=merge_labels(ids, {c.LABEL_WINDOW: period}, slo.labels)))
        else:
            out.append(period_recording(slo))
    rules.sli.rules = out
    for w in windows:
        num, den = render_window(slo.sli.total_query, prom_duration(w)), render_window(slo.sli.total_query, period)
        rules.meta.rules.append(rule(record=f"{c.NUMERATOR_CORRECTION}{prom_duration(w)}",
                                     expr=f"({num})/({den})", labels=merge_labels(ids, slo.labels)))


def _budget_exhausted(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    """sloth.dev/contrib/error_budget_exhausted_alert/v1: alert when the period's budget is spent."""
    sel = {c.LABEL_SLO: slo.name, c.LABEL_SERVICE: slo.service, c.LABEL_ID: f"{slo.service}-{slo.name}",
           **slo.labels, **cfg["selector_labels"]}
    rules.alerts.rules.append(rule(
        alert=cfg["alert_name"], for_s=cfg["for"],
        expr=f"{c.PERIOD_BUDGET_REMAINING}{label_filter(sel)} <= {go_float(cfg['threshold'])}",
        labels=dict(cfg["alert_labels"]) or None, annotations=dict(cfg["annotations"]) or None))


def _parse_budget_exhausted(f: Fields, cfg: dict, field: str) -> dict:
    f.only(cfg, field, {"threshold", "for", "annotations", "alert_name", "alert_labels", "selector_labels"})
    name = f.string(cfg, "alert_name", field + ".alert_name", required=False) or "ErrorBudgetExhausted"
    return {"threshold": f.number(cfg, "threshold", field + ".threshold", -math.inf, 1, required=False,
                                  default=0.0),
            "for": f.duration(cfg.get("for"), field + ".for", required=False) or 300,
            "alert_name": name,
            "annotations": f.labels(cfg.get("annotations"), field + ".annotations", annotations=True),
            "alert_labels": f.labels(cfg.get("alert_labels"), field + ".alert_labels"),
            "selector_labels": f.labels(cfg.get("selector_labels"), field + ".selector_labels")}


def _info_labels(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    """sloth.dev/contrib/info_labels/v1: extra labels on the info series (or another meta recording)."""
    for r in rules.meta.rules:
        if r.get("record") == cfg["metricName"]:
            r["labels"] = merge_labels(r.get("labels", {}), cfg["labels"])
            break


def _parse_info_labels(f: Fields, cfg: dict, field: str) -> dict:
    f.only(cfg, field, {"labels", "metricName"})
    labels = f.labels(cfg.get("labels"), field + ".labels")
    if not labels:
        raise f.fail(field + ".labels", "at least one label", cfg.get("labels"))
    return {"labels": labels,
            "metricName": f.string(cfg, "metricName", field + ".metricName", required=False) or c.SLO_INFO}


def _remove_labels(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    """sloth.dev/contrib/remove_labels/v1: only the id labels (and window) on SLI and meta recordings."""
    keep = {c.LABEL_WINDOW, *c.id_labels(slo), *cfg["preserveLabels"]}
    skip = {c.SLO_INFO, *cfg["skipMetrics"]}
    for group, kept in ((rules.sli, keep), (rules.meta, keep - {c.LABEL_WINDOW})):
        for r in group.rules:
            if r.get("record") not in skip and "labels" in r:
                r["labels"] = {k: v for k, v in r["labels"].items() if k in kept}


def _parse_remove_labels(f: Fields, cfg: dict, field: str) -> dict:
    f.only(cfg, field, {"preserveLabels", "skipMetrics"})
    out = {}
    for key in ("preserveLabels", "skipMetrics"):
        v = cfg.get(key, [])
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            raise f.fail(f"{field}.{key}", "a list of names", v)
        out[key] = tuple(v)
    return out


def _rule_intervals(slo: SLO, cfg: Mapping, opts: Options, rules: SLORules) -> None:
    """sloth.dev/contrib/rule_intervals/v1: evaluation interval of the SLI, metadata and alert groups."""
    rules.sli.interval = cfg["sliError"] or cfg["default"]
    rules.meta.interval = cfg["metadata"] or cfg["default"]
    rules.alerts.interval = cfg["alert"] or cfg["default"]


def _parse_rule_intervals(f: Fields, cfg: dict, field: str) -> dict:
    f.only(cfg, field, {"interval"})
    iv = f.mapping(cfg.get("interval"), field + ".interval")
    f.only(iv, field + ".interval", {"default", "sliError", "metadata", "alert"})
    out = {k: f.duration(iv.get(k), f"{field}.interval.{k}", required=k == "default")
           for k in ("default", "sliError", "metadata", "alert")}
    return out


CORE_VALIDATE = "sloth.dev/core/validate/v1"
CORE_SLI = "sloth.dev/core/sli_rules/v1"
CORE_META = "sloth.dev/core/metadata_rules/v1"
CORE_ALERTS = "sloth.dev/core/alert_rules/v1"
VALIDATE_VM = "sloth.dev/contrib/validate_victoria_metrics/v1"

PLUGINS: dict[str, Plugin] = {p.id: p for p in (
    Plugin(CORE_VALIDATE, _nothing),
    Plugin(CORE_SLI, _sli, _parse_sli),
    Plugin(CORE_META, _meta),
    Plugin(CORE_ALERTS, _alerts),
    Plugin("sloth.dev/core/noop/v1", _nothing),
    Plugin("sloth.dev/core/debug/v1", _nothing, _parse_debug),
    Plugin("sloth.dev/contrib/denominator_corrected_rules/v1", _denominator, _parse_sli, events_only=True),
    Plugin("sloth.dev/contrib/error_budget_exhausted_alert/v1", _budget_exhausted, _parse_budget_exhausted),
    Plugin("sloth.dev/contrib/info_labels/v1", _info_labels, _parse_info_labels),
    Plugin("sloth.dev/contrib/remove_labels/v1", _remove_labels, _parse_remove_labels),
    Plugin("sloth.dev/contrib/rule_intervals/v1", _rule_intervals, _parse_rule_intervals),
    # MetricsQL: queries are not parsed as PromQL when this replaces core/validate (see `metricsql`).
    Plugin(VALIDATE_VM, _nothing),
)}
DEFAULT_CHAIN = tuple(PluginCall(i) for i in (CORE_VALIDATE, CORE_SLI, CORE_META, CORE_ALERTS))


def parse_call(f: Fields, obj: object, field: str) -> PluginCall:
    """One chain entry `{id, config, priority}`; an id we do not implement is refused by name."""
    m = f.mapping(obj, field)
    f.only(m, field, {"id", "config", "priority"})
    pid = f.string(m, "id", field + ".id")
    if pid not in PLUGINS:
        raise f.fail(field + ".id", f"one of Sloth's built-in sloth.dev/core or sloth.dev/contrib plugins; not "
                     f"supported: Sloth SLO plugin `{pid}` (hpcwatch does not run Go plugins)", pid)
    cfg = f.mapping(m.get("config"), field + ".config", required=False)
    priority = m.get("priority", 0)
    if isinstance(priority, bool) or not isinstance(priority, int):
        raise f.fail(field + ".priority", "a whole number (negative runs before Sloth's default plugins)",
                     priority)
    return PluginCall(pid, frozen_map(PLUGINS[pid].parse(f, cfg, field + ".config")), priority)


def parse_chain(f: Fields, obj: object, field: str) -> tuple[tuple[PluginCall, ...], bool]:
    """Sloth's `{overridePrevious, chain: [...]}` block: (calls, overridePrevious)."""
    m = f.mapping(obj, field, required=False)
    f.only(m, field, {"overridePrevious", "chain"})
    chain = m.get("chain", [])
    if not isinstance(chain, list):
        raise f.fail(field + ".chain", "a list of plugins ({id, config, priority})", chain)
    override = bool(f.boolean(m, "overridePrevious", field + ".overridePrevious"))
    if override and not chain:
        raise f.fail(field + ".chain", "at least one plugin when overridePrevious is set", chain)
    return tuple(parse_call(f, p, f"{field}.chain[{i}]") for i, p in enumerate(chain)), override


def metricsql(calls: tuple[PluginCall, ...], override: bool) -> bool:
    """True when the chain swaps Sloth's PromQL validation for VictoriaMetrics' (MetricsQL queries)."""
    ids = {c.id for c in calls}
    return override and CORE_VALIDATE not in ids and VALIDATE_VM in ids


def check_plugins(slo: SLO, calls: tuple[PluginCall, ...], where: str) -> None:
    for call in calls:
        if PLUGINS[call.id].events_only and not isinstance(slo.sli, EventsSLI):
            raise SpecError(slo.source, slo.name, where, f"an events SLI for plugin `{call.id}` "
                            "(it corrects the events ratio's numerator)", "raw SLI")


def run_chain(slo: SLO, opts: Options, rules: SLORules) -> None:
    """Run the SLO's plugins, sorted by priority (stable), around Sloth's default chain."""
    calls = list(slo.plugins) if slo.override_plugins else [*opts.cli_plugins, *slo.plugins]
    check_plugins(slo, tuple(opts.cli_plugins), "--slo-plugins")
    calls.sort(key=lambda p: p.priority)
    defaults = list(DEFAULT_CHAIN) if opts.default_plugins and not slo.override_plugins else []
    for call in [p for p in calls if p.priority < 0] + defaults + [p for p in calls if p.priority >= 0]:
        PLUGINS[call.id].run(slo, call.config, opts, rules)
