"""One plain-language paragraph per replayed SLO: did it hold, how much budget is left, what would have paged.

Written for a reader who does not know what a burn rate is: whole sentences, dates, counts of jobs,
"the budget" explained once by what it allows. The wording of each catalogue SLI is one table row.
"""

from __future__ import annotations

import time

from hpcwatch.slo.history.compute import SLOHistory

# Catalogue SLI -> (what it is, what is counted, what a good one did, what a bad one did).
WORDING: dict[str, tuple[str, str, str, str]] = {
    "job-success": ("Job success", "jobs", "finished without a failure caused by the system",
                    "failed because of the system"),
    "queue-wait": ("Queue wait", "jobs", "started within the wait threshold", "waited longer"),
    "preemption-rate": ("Preemption rate", "job runs that started", "ran without being preempted", "were preempted"),
    "time-to-result": ("Time to result", "jobs", "gave their result within the threshold after submission",
                       "gave it late"),
    "gpu-utilisation": ("GPU utilisation", "GPU-samples of allocated GPUs", "found the GPU at or above the "
                        "utilisation threshold", "found it below"),
    "node-availability": ("Node availability", "node-samples", "found the node usable", "found it down or drained"),
    "scheduler-availability": ("Scheduler availability", "checks", "found the scheduler answering",
                               "found it unreachable"),
}
GENERIC = ("The objective", "events", "were good", "were errors")


def wording(h: SLOHistory) -> tuple[str, str, str, str]:
    """The catalogue SLI's wording (its names start with the SLI), or the generic one for Sloth/OpenSLO specs."""
    if h.slo.spec.startswith("hpcwatch/"):
        for kind, words in WORDING.items():
            if h.slo.name == kind or h.slo.name.startswith(kind + "-"):
                return words
    return GENERIC


def day(t: float) -> str:
    return time.strftime("%-d %b %Y", time.gmtime(t))


def when(t: float) -> str:
    return time.strftime("%-d %b %Y %H:%M UTC", time.gmtime(t))


def pct(x: float, digits: int = 1) -> str:
    return f"{x * 100:.{digits}f}%"


def span(seconds: float) -> str:
    """A duration in words a reader can picture: '3 days', '5 hours', '40 minutes'."""
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds >= size:
            n = round(seconds / size, 1 if unit == "day" and seconds < 10 * 86400 else 0)
            n = int(n) if float(n).is_integer() else n
            return f"{n} {unit}{'' if n == 1 else 's'}"
    return f"{int(seconds)} seconds"


def _scope(h: SLOHistory) -> str:
    labels = h.slo.labels
    parts = [f"queue {labels['queue']}" if labels.get("queue") else "",
             f"cluster {labels['cluster']}" if labels.get("cluster") else ""]
    text = " of ".join(p for p in parts if p)
    return f" ({text})" if text else f" ({h.slo.id})"


def _outcome(h: SLOHistory, end: int) -> str:
    s, slo = h.summary, h.slo
    what, unit, good, bad = wording(h)
    covered = span(end - max(s["start"], s["data_start"]))
    head = f"{what}{_scope(h)}"
    if s["met"] is None:
        return f"{head} has no events in the {covered} covered, so whether it met its {slo.objective:g}% objective " \
               "cannot be said."
    verb = "met" if s["met"] else "missed"
    if s["events"] is None:
        return (f"{head} {verb} its {slo.objective:g}% objective over the {covered} covered: the SLI averaged "
                f"{pct(s['attained'], 2)}.")
    return (f"{head} {verb} its {slo.objective:g}% objective over the {covered} covered: "
            f"{pct(s['attained'], 2)} of {s['events']:,.0f} {unit} {good}, and {s['error_events']:,.0f} {bad} "
            f"(the objective allows at most {pct(1 - slo.objective_ratio, 2 if slo.objective > 99 else 0)}).")


def _budget(h: SLOHistory) -> str:
    s, slo = h.summary, h.slo
    period = span(slo.period_s).replace(" days", "-day").replace(" day", "-day")
    if not s["budget_complete"]:
        done = span(max(0, s["end"] - s["data_start"]))
        return (f"The data cover {done} of the {period} budget period, so the error budget cannot be judged yet "
                f"(a full period is in the data from {day(s['budget_from'])}).")
    out = []
    left = s["budget_remaining_end"]
    if left is not None:
        out.append(f"At the end, {pct(max(left, 0.0), 0)} of the {period} error budget was left"
                   if left >= 0 else f"At the end, the {period} error budget was overspent by {pct(-left, 0)}")
    low, at = s["budget_remaining_min"], s["budget_remaining_min_at"]
    if low is not None and at is not None and (left is None or low < left - 0.005):
        out.append(f"it was lowest on {day(at)}, with {pct(low, 0)} left" if low >= 0
                   else f"it was most overspent on {day(at)} ({pct(-low, 0)} over)")
    if s["budget_exhausted_s"]:
        out.append(f"it was exhausted for {span(s['budget_exhausted_s'])} in all")
    text = "; ".join(out)
    if s["warmup_s"]:
        text += f" (counted from {day(s['budget_from'])}, once the data held a full {period} period)"
    return text + "." if text else ""


def _times(n: int) -> str:
    return "once" if n == 1 else "twice" if n == 2 else f"{n} times"


def _alerts(h: SLOHistory, end: int) -> str:
    s = h.summary
    out = []
    for sev, lead in (("page", "On-call would have been paged"), ("ticket", "A ticket would have been opened")):
        eps = [e for e in h.episodes if e.severity == sev]
        if eps:
            worst = max(e.peak_burn for e in eps)
            out.append(f"{lead} {_times(len(eps))}, first on {when(eps[0].fired)}, with the alert on for "
                       f"{span(s[f'{sev}_firing_s'])} in all and the budget burning at worst {worst:.0f} times "
                       "faster than the objective allows.")
    if not out:
        out.append("No page or ticket alert would have fired.")
    if s["alerts_from"] > s["start"]:
        longs = sorted({c.long_s for c in h.conditions}) or [s["alerts_from"] - s["data_start"]]
        out.append(f"Each alert condition is replayed once its long window ({span(longs[0])}"
                   f"{' to ' + span(longs[-1]) if len(longs) > 1 else ''}) is full of data.")
    return " ".join(out)


def verdict(h: SLOHistory, end: int) -> str:
    """The SLO's paragraph: outcome, budget, alerts."""
    if not len(h.frame):
        return f"{wording(h)[0]}{_scope(h)}: no time in the report range."
    return " ".join(p for p in (_outcome(h, end), _budget(h), _alerts(h, end)) if p)
