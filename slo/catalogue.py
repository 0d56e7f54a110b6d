"""The HPC SLI catalogue (`apiVersion: hpcwatch/v1`): job success, queue wait, preemption rate, time to
result, node and scheduler availability and GPU utilisation, per cluster and queue, expanded to queries
over the scheduler-neutral families (and, for GPU utilisation, the node agents' GPU series)."""

from __future__ import annotations

from hpcwatch.exporters.scheduler.model import DEFAULT_TURNAROUND_BUCKETS, DEFAULT_WAIT_BUCKETS
from hpcwatch.exporters.scheduler.outcomes import CAUSES, NEUTRAL_PAIRS, OUTCOMES
from hpcwatch.slo import conventions as c
from hpcwatch.slo.goformat import go_float, go_quote
from hpcwatch.slo.model import SLO, AlertMeta, EventsSLI, SpecObject, frozen_map
from hpcwatch.slo.spec_sloth import _intervals
from hpcwatch.slo.validate import Fields
from hpcwatch.slo.windows import WindowsCatalogue

from hpcwatch import metric_names

__all__ = ["DEFAULT_TURNAROUND_BUCKETS", "DEFAULT_WAIT_BUCKETS", "SLI_TYPES", "load_catalogue"]

CATALOGUE_API = "hpcwatch/v1"
FINISHED = metric_names.SCHED_JOBS_FINISHED
WAIT = metric_names.SCHED_QUEUE_WAIT
# A histogram of how long the jobs pending now have waited (gauge buckets): `_bucket{le}` and `_count`.
PENDING_WAIT = metric_names.SCHED_PENDING_WAIT
NODES = metric_names.SCHED_NODES
UP = metric_names.SCHED_UP
TURNAROUND = metric_names.SCHED_TURNAROUND
GPU_JOB_INFO = metric_names.GPU_JOB_INFO
GPU_UTIL = metric_names.GPU_UTILIZATION
JOB_INFO = metric_names.JOB_INFO
MAINT = metric_names.SCHED_NODE_MAINT_STATE

SLI_TYPES = ("job-success", "queue-wait", "preemption-rate", "time-to-result", "node-availability",
             "scheduler-availability", "gpu-utilisation")
JOB_SLIS = frozenset({"job-success", "queue-wait", "preemption-rate", "time-to-result"})
DEFAULT_MIN_EVENTS = 10
DEFAULT_UNAVAILABLE_STATES = ("down", "drained", "fail", "unknown")
W = "{{.window}}"


def le_label(edge: float) -> str:
    """The `le` value the exporter writes for a bucket edge (3600 -> '3600.0')."""
    return f"{int(edge)}.0" if float(edge) == int(edge) else repr(float(edge))


def _sel(**labels: str | None) -> str:
    parts = []
    for k, v in labels.items():
        if v is None:
            continue
        op, val = ("=~", v[1:]) if v.startswith("~") else ("!~", v[1:]) if v.startswith("!") else ("=", v)
        parts.append(f"{k}{op}{go_quote(val)}")
    return "{" + ",".join(parts) + "}"


def owner_withdrawn(pairs: tuple[tuple[str, str], ...] = NEUTRAL_PAIRS) -> tuple[tuple[str, str], ...]:
    """The (outcome, cause) pairs the exporter writes for jobs their owner withdrew: cause `none`
    (nobody to blame) without success; today only the owner's cancel, `cancelled/none`. Read from
    the exporter's own table so the catalogue follows it when it changes."""
    return tuple(p for p in pairs if p[1] == "none" and p[0] != "success")


def _job_success(f: Fields, s: dict, field: str, cluster: str, queue: str | None) -> EventsSLI:
    causes = _choices(f, s, "error_causes", field, CAUSES, ("system",))
    outcomes = _choices(f, s, "error_outcomes", field, OUTCOMES, OUTCOMES)
    ignored = _choices(f, s, "ignore_outcomes", field, OUTCOMES, ())
    user_cancels = f.boolean(s, "count_user_cancels", field + ".count_user_cancels")
    skip = "!" + "|".join(ignored) if ignored else None
    base = {"cluster": cluster, "queue": queue, "outcome": skip}
    err_sel = {**base, "cause": "~" + "|".join(causes)}
    if set(outcomes) != set(OUTCOMES):
        err_sel["outcome"] = "~" + "|".join(o for o in outcomes if o not in ignored)
    error = f"(sum(increase({FINISHED}{_sel(**err_sel)}[{W}])) or vector(0))"
    total = f"sum(increase({FINISHED}{_sel(**base)}[{W}]))"
    withdrawn = [p for p in owner_withdrawn() if p[0] not in ignored and p[1] not in causes]
    if not user_cancels and withdrawn:
        # A job its owner withdrew says nothing about the service: out of the total.
        out_sel = _sel(cluster=cluster, queue=queue, outcome="~" + "|".join(sorted({o for o, _ in withdrawn})),
                       cause="~" + "|".join(sorted({c for _, c in withdrawn})))
        total = f"{total}\n-\n(sum(increase({FINISHED}{out_sel}[{W}])) or vector(0))"
    return EventsSLI(error, total)


def _bucket_threshold(f: Fields, s: dict, field: str, buckets: tuple[float, ...], what: str) -> str:
    """The `le` label value of the spec's threshold, which must be a bucket edge of the histogram."""
    threshold = s.get("threshold")
    if isinstance(threshold, str):
        threshold = f.duration(threshold, field + ".threshold")
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or float(threshold) not in buckets:
        raise f.fail(field + ".threshold", f"a bucket edge of the {what} histogram (seconds or a duration): " +
                     ", ".join(f"{b:g}" for b in buckets), s.get("threshold"))
    return le_label(threshold)


def _queue_wait(f: Fields, s: dict, field: str, cluster: str, queue: str | None,
                buckets: tuple[float, ...]) -> EventsSLI:
    le = _bucket_threshold(f, s, field, buckets, "wait")
    sel = _sel(cluster=cluster, queue=queue)
    sel_le = _sel(cluster=cluster, queue=queue, le=le)
    started = f"(sum(increase({WAIT}_count{sel}[{W}])) or vector(0))"
    late = (f"(sum(increase({WAIT}_count{sel}[{W}])) - sum(increase({WAIT}_bucket{sel_le}[{W}])) "
            "or vector(0))")
    if not f.boolean(s, "include_pending", field + ".include_pending"):
        return EventsSLI(late, started)
    # Jobs still waiting past the threshold are late already; count them now, not when they start.
    pending_late = (f"(sum({PENDING_WAIT}_count{sel}) - sum({PENDING_WAIT}_bucket{sel_le}) or vector(0))")
    return EventsSLI(f"{late}\n+\n{pending_late}", f"{started}\n+\n{pending_late}")


def _preemption_rate(cluster: str, queue: str | None) -> EventsSLI:
    """Runs preempted among the runs that started: a preempted run ends with outcome `preempted`; every
    run that starts is observed once by the queue-wait histogram, so its _count counts the runs that ran."""
    preempted = _sel(cluster=cluster, queue=queue, outcome="preempted")
    return EventsSLI(f"(sum(increase({FINISHED}{preempted}[{W}])) or vector(0))",
                     f"sum(increase({WAIT}_count{_sel(cluster=cluster, queue=queue)}[{W}]))")


def _time_to_result(f: Fields, s: dict, field: str, cluster: str, queue: str | None,
                    buckets: tuple[float, ...]) -> EventsSLI:
    """Successful runs whose submit-to-end took longer than `threshold` (the turnaround histogram observes
    each success once, at its end); with include_failures, runs that failed for any cause count as late."""
    le = _bucket_threshold(f, s, field, buckets, "turnaround")
    sel = _sel(cluster=cluster, queue=queue)
    done = f"sum(increase({TURNAROUND}_count{sel}[{W}]))"
    late = (f"({done} - sum(increase({TURNAROUND}_bucket{_sel(cluster=cluster, queue=queue, le=le)}[{W}])) "
            "or vector(0))")
    if not f.boolean(s, "include_failures", field + ".include_failures"):
        return EventsSLI(late, done)
    # A run that never gave a result: every outcome but success and its owner's withdrawal.
    out = {"success"} | {o for o, _ in owner_withdrawn()}
    failed = (f"(sum(increase({FINISHED}{_sel(cluster=cluster, queue=queue, outcome='!' + '|'.join(sorted(out)))}"
              f"[{W}])) or vector(0))")
    return EventsSLI(f"{late}\n+\n{failed}", f"({done} or vector(0))\n+\n{failed}")


def _gpu_utilisation(f: Fields, s: dict, field: str, cluster: str, queue: str | None,
                     ids: dict[str, str]) -> tuple[EventsSLI, tuple[tuple[str, str], ...]]:
    """GPU-samples: the share of allocated GPU-time at or above a utilisation threshold.

    Whether a GPU counts depends on two series at the same instant (its job allocation and its
    utilisation), which PromQL cannot count over a window without a subquery, so two input recordings
    count, at every evaluation, the GPUs jobs hold and those of them at or above the threshold; the SLI
    sums those counts over its windows (GPU-samples, as node-availability counts node-samples). A queue
    is the partition of the job holding the GPU (hpc_job_info)."""
    thr = s.get("threshold")
    if isinstance(thr, bool) or not isinstance(thr, (int, float)) or not 0 < thr <= 1:
        raise f.fail(field + ".threshold", "a utilisation between 0 and 1 (0.5 = 50%)", thr)
    held = f"{GPU_JOB_INFO}{_sel(cluster=cluster)}"
    if queue is not None:
        held += (f" * on (cluster, instance, jobid) group_left () "
                 f"{JOB_INFO}{_sel(cluster=cluster, partition=queue)}")
    gpus = f"count by (cluster, instance, uuid) ({held})"   # a GPU shared by two jobs counts once
    inputs = ((c.GPU_ALLOCATED, f"count({gpus}) or vector(0)"),
              (c.GPU_BUSY, f"count({gpus} and on (cluster, instance, uuid) {GPU_UTIL}{_sel(cluster=cluster)} "
                           f">= {go_float(float(thr))}) or vector(0)"))
    own = _sel(**ids)
    held_samples = f"sum(sum_over_time({c.GPU_ALLOCATED}{own}[{W}]))"
    busy_samples = f"sum(sum_over_time({c.GPU_BUSY}{own}[{W}]))"
    return EventsSLI(f"{held_samples}\n-\n{busy_samples}", held_samples), inputs


def _node_availability(f: Fields, s: dict, field: str, cluster: str, queue: str | None) -> EventsSLI:
    states = s.get("unavailable_states", list(DEFAULT_UNAVAILABLE_STATES))
    if not isinstance(states, list) or not states or not all(isinstance(x, str) and x.isidentifier()
                                                             for x in states):
        raise f.fail(field + ".unavailable_states", "a list of node state names", states)
    if MAINT in states:
        raise f.fail(field + ".unavailable_states", f"node states other than {MAINT} (nodes under maintenance are "
                     "left out of the SLI, never counted unavailable)", states)
    bad = _sel(cluster=cluster, queue=queue, state="~" + "|".join(states))
    # Node-samples: a node down for a tenth of the window is a tenth of a node's worth of errors. A node under
    # maintenance (state maint: a maintenance window or a drain for maintenance) is out of both sides.
    return EventsSLI(f"(sum(sum_over_time({NODES}{bad}[{W}])) or vector(0))",
                     f"sum(sum_over_time({NODES}{_sel(cluster=cluster, queue=queue, state='!' + MAINT)}[{W}]))")


def _scheduler_availability(cluster: str) -> EventsSLI:
    sel = _sel(cluster=cluster)
    return EventsSLI(f"sum(count_over_time({UP}{sel}[{W}])) - sum(sum_over_time({UP}{sel}[{W}]))",
                     f"sum(count_over_time({UP}{sel}[{W}]))")


def _choices(f: Fields, s: dict, key: str, field: str, allowed: tuple[str, ...], default) -> tuple[str, ...]:
    value = s.get(key, list(default))
    if not isinstance(value, list) or any(v not in allowed for v in value) or (key != "ignore_outcomes"
                                                                              and not value):
        raise f.fail(f"{field}.{key}", "a list of: " + ", ".join(allowed), value)
    return tuple(value)


SLO_KEYS = {"sli", "name", "objective", "queues", "min_events", "labels", "alert_name", "description",
            "error_causes", "error_outcomes", "ignore_outcomes", "count_user_cancels", "threshold",
            "include_pending", "include_failures", "unavailable_states", "page_alert", "ticket_alert"}


def load_catalogue(doc: dict, path: str, default_period_s: int, catalogue: WindowsCatalogue,
                   extra: dict, index: int = 0) -> list[SLO]:
    f = Fields(path)
    f.only(doc, None, {"apiVersion", "kind", "metadata", "spec"})
    if doc.get("kind") != "SLOCatalogue":
        raise f.fail("kind", "SLOCatalogue", doc.get("kind"))
    spec = f.mapping(doc.get("spec"), "spec")
    f.only(spec, "spec", {"service", "clusters", "period", "labels", "min_events", "buckets", "turnaround_buckets",
                          "alerting", "slos", "interval"})
    service = f.name(spec, "service", "spec.service") if "service" in spec else "hpc"
    clusters = spec.get("clusters")
    if not isinstance(clusters, list) or not clusters or not all(isinstance(x, str) and x for x in clusters):
        raise f.fail("spec.clusters", "a list of cluster names (the `cluster` label)", clusters)
    period_s = f.duration(spec.get("period"), "spec.period", required=False) or default_period_s
    if period_s % 86400:
        raise f.fail("spec.period", "whole days such as 28d or 30d", spec.get("period"))
    labels = f.labels(spec.get("labels"), "spec.labels")
    # Sloth's rule-group evaluation intervals ({all, slierror, metadata, alert}), for every SLO here.
    intervals = _intervals(f, spec.get("interval"), "spec.interval")
    min_default = f.integer(spec, "min_events", "spec.min_events", default=DEFAULT_MIN_EVENTS)
    buckets = _edges(f, spec, "buckets", DEFAULT_WAIT_BUCKETS)
    turnaround_buckets = _edges(f, spec, "turnaround_buckets", DEFAULT_TURNAROUND_BUCKETS)
    alerting = f.mapping(spec.get("alerting"), "spec.alerting", required=False)
    f.only(alerting, "spec.alerting", {"labels", "annotations", "page_alert", "ticket_alert"})
    slos_raw = f.items(spec.get("slos"), "spec.slos", "SLO")
    origin = SpecObject(path, index, CATALOGUE_API)
    out = []
    for i, raw in enumerate(slos_raw):
        field = f"spec.slos[{i}]"
        s = f.mapping(raw, field)
        f.only(s, field, SLO_KEYS)
        kind = s.get("sli")
        if kind not in SLI_TYPES:
            raise f.fail(field + ".sli", "one of " + ", ".join(SLI_TYPES), kind)
        base = f.name(s, "name", field + ".name") if "name" in s else kind
        sf = Fields(path, base)
        objective = sf.percent(s, "objective", field + ".objective")
        queues = s.get("queues", [None])
        if kind == "scheduler-availability" and "queues" in s:
            raise sf.fail(field + ".queues", "no queues (the scheduler is up or down for the whole cluster)")
        if not isinstance(queues, list) or not queues or not all(q is None or (isinstance(q, str) and q)
                                                                 for q in queues):
            raise sf.fail(field + ".queues", "a list of queue (partition) names", queues)
        min_events = sf.integer(s, "min_events", field + ".min_events",
                                default=min_default if kind in JOB_SLIS else None)
        slo_labels = {**labels, **sf.labels(s.get("labels"), field + ".labels")}
        alert_name = s.get("alert_name", "".join(p.capitalize() for p in kind.split("-")) + "SLO")
        metas = _alerts(sf, alerting, s, field, alert_name)
        for cluster in clusters:
            for queue in queues:
                name = "-".join(p for p in (base, cluster, queue) if p)
                inputs: tuple[tuple[str, str], ...] = ()
                if kind == "job-success":
                    sli = _job_success(sf, s, field, cluster, queue)
                elif kind == "queue-wait":
                    sli = _queue_wait(sf, s, field, cluster, queue, buckets)
                elif kind == "preemption-rate":
                    sli = _preemption_rate(cluster, queue)
                elif kind == "time-to-result":
                    sli = _time_to_result(sf, s, field, cluster, queue, turnaround_buckets)
                elif kind == "gpu-utilisation":
                    ids = {c.LABEL_ID: c.slo_id(service, name), c.LABEL_SLO: name, c.LABEL_SERVICE: service}
                    sli, inputs = _gpu_utilisation(sf, s, field, cluster, queue, ids)
                elif kind == "node-availability":
                    sli = _node_availability(sf, s, field, cluster, queue)
                else:
                    sli = _scheduler_availability(cluster)
                scope = {"cluster": cluster, **({"queue": queue} if queue else {})}
                out.append(SLO(
                    id=c.slo_id(service, name), name=name, service=service, objective=objective,
                    period_s=period_s, sli=sli, windows=catalogue.get(period_s),
                    labels=frozen_map({**slo_labels, **scope, **extra}),
                    description=s.get("description") if isinstance(s.get("description"), str) else "",
                    page_alert=_scoped(metas[0], scope), ticket_alert=_scoped(metas[1], scope),
                    min_events=min_events or None,
                    events_per_second=False, low_traffic=kind in JOB_SLIS, source=path,
                    spec=CATALOGUE_API, mode=c.MODE_PROM, origin=origin, intervals=intervals, inputs=inputs))
    return out


def _edges(f: Fields, spec: dict, key: str, default: tuple[float, ...]) -> tuple[float, ...]:
    edges = spec.get(key, list(default))
    if not isinstance(edges, list) or not edges or not all(
            isinstance(b, (int, float)) and not isinstance(b, bool) and b > 0 for b in edges):
        raise f.fail(f"spec.{key}", "a list of positive bucket edges in seconds", edges)
    return tuple(float(b) for b in edges)


def _scoped(meta: AlertMeta | None, scope: dict[str, str]) -> AlertMeta | None:
    """Cluster and queue on the alert rule too: one alert name per catalogue entry stays unique per scope."""
    if meta is None:
        return None
    return AlertMeta(meta.name, frozen_map({**meta.labels, **scope}), meta.annotations)


def _alerts(f: Fields, common: dict, s: dict, field: str, name: str) -> list[AlertMeta | None]:
    if not isinstance(name, str) or not name.replace("_", "a").isalnum():
        raise f.fail(field + ".alert_name", "an alert name of letters, digits and '_'", name)
    out = []
    for key in ("page_alert", "ticket_alert"):
        shared = f.mapping(common.get(key), f"spec.alerting.{key}", required=False)
        own = f.mapping(s.get(key), f"{field}.{key}", required=False)
        for obj, fld in ((shared, f"spec.alerting.{key}"), (own, f"{field}.{key}")):
            f.only(obj, fld, {"disable", "labels", "annotations"})
        if f.boolean(own, "disable", f"{field}.{key}.disable",
                     default=f.boolean(shared, "disable", f"spec.alerting.{key}.disable")):
            out.append(None)
            continue
        labels = {**f.labels(common.get("labels"), "spec.alerting.labels"),
                  **f.labels(shared.get("labels"), f"spec.alerting.{key}.labels"),
                  **f.labels(own.get("labels"), f"{field}.{key}.labels")}
        ann = {**f.labels(common.get("annotations"), "spec.alerting.annotations", annotations=True),
               **f.labels(shared.get("annotations"), f"spec.alerting.{key}.annotations", annotations=True),
               **f.labels(own.get("annotations"), f"{field}.{key}.annotations", annotations=True)}
        out.append(AlertMeta(name, frozen_map(labels), frozen_map(ann)))
    return out
