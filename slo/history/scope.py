"""Does each SLO's cluster and queue match anything in the job records? If not, say what the records hold.

A spec for cluster `beta` replayed over a dump of cluster `alpha` would otherwise report 0 events and
"no data" for every SLO, and exit 0: a typo in a queue name looks like an idle queue.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from hpcwatch.slo.history.events import scope_rows
from hpcwatch.slo.history.query import UnsupportedQuery, parse_sli_query
from hpcwatch.slo.model import SLO, EventsSLI


class ScopeError(ValueError):
    """SLOs whose cluster or queue selects no job record; the message lists what the records hold."""


def holdings(frame: pd.DataFrame, limit: int = 12) -> str:
    """'cluster alpha: queue batch (2,991 runs), gpu (3,009 runs); cluster beta: ...' (runs weighted by count)."""
    if not len(frame):
        return "no finished runs"
    runs = frame.groupby(["cluster", "queue"], observed=True, dropna=False)["count"].sum()
    parts = []
    for cluster, per_queue in runs.groupby(level=0, observed=True, dropna=False):
        items = [(str(q) if isinstance(q, str) else "(none)", int(n)) for (_, q), n in per_queue.items() if n]
        items.sort(key=lambda x: -x[1])
        shown = ", ".join(f"{q} ({n:,} runs)" for q, n in items[:limit])
        more = f", and {len(items) - limit} more queues" if len(items) > limit else ""
        name = cluster if isinstance(cluster, str) else "(none)"
        parts.append(f"cluster {name}: queue {shown}{more}")
    return "; ".join(parts)


def _scope(slo: SLO) -> str:
    """How the SLO selects: its cluster and queue matchers as written in the total query."""
    try:
        q = parse_sli_query(slo.sli.total_query)
    except UnsupportedQuery:
        return ""
    seen = []
    for term, _ in q.terms:
        for m in term.matchers:
            text = f'{m.label}{m.op}"{m.value}"'
            if m.label in ("cluster", "queue") and text not in seen:
                seen.append(text)
    return "{" + ",".join(seen) + "}" if seen else "{}"


def unmatched(slos: list[SLO], frame: pd.DataFrame) -> list[SLO]:
    """SLOs answerable from job records whose total query selects none of the records' clusters and queues."""
    out = []
    for slo in slos:
        if not isinstance(slo.sli, EventsSLI):
            continue
        try:
            q = parse_sli_query(slo.sli.total_query)
            hit = any(scope_rows(frame, term).any() for term, _ in q.terms) if len(frame) else False
        except UnsupportedQuery:
            continue    # replayed elsewhere or listed as skipped, with its own reason
        if q.terms and not hit:
            out.append(slo)
    return out


def check_scope(slos: list[SLO], frame: pd.DataFrame, range_note: str = "") -> None:
    """Raise ScopeError naming every SLO that matches no record and what the records hold."""
    bad = unmatched(slos, frame)
    if not bad:
        return
    names = "; ".join(f"{s.id} {_scope(s)}" for s in bad)
    total = int(np.sum(frame["count"])) if len(frame) else 0
    raise ScopeError(f"{len(bad)} SLO(s) match no job record{range_note}: {names}. "
                     f"The records ({total:,} runs) hold {holdings(frame)}. "
                     "Fix the spec's clusters/queues, or label records without a cluster with --cluster NAME")
