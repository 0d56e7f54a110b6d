"""hpcwatch.dashboards: Grafana 10 dashboards as code, one module per dashboard."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from hpcwatch.dashboards import (
    cluster,
    executive,
    fabric,
    filesystems,
    gpu,
    job,
    jobs,
    node,
    scheduler,
    slo_detail,
    slo_overview,
)
from hpcwatch.dashboards.helpers import Dashboard, dumps, to_json
from hpcwatch.dashboards.slo_detail import SLORef

FIXED = (cluster, node, jobs, job, gpu, fabric, filesystems, scheduler, slo_overview, executive)

__all__ = ["SLORef", "build_all", "render_all", "slo_refs"]


def slo_refs(slos: Iterable[Any]) -> list[SLORef]:
    """SLORefs from SLO engine models (anything with .service, .name and optionally .description)."""
    return [SLORef(s.service, s.name, getattr(s, "description", "") or "") for s in slos]


def build_all(slos: Iterable[SLORef] = ()) -> list[Dashboard]:
    """Every dashboard: the fixed ones, then one detail dashboard per SLO."""
    out = [m.build() for m in FIXED]
    out += [slo_detail.build(ref) for ref in sorted(set(slos), key=lambda r: r.sloth_id)]
    uids = [d.uid for d in out]
    dupes = sorted({u for u in uids if uids.count(u) > 1})
    if dupes:
        raise ValueError(f"dashboard uids collide: {', '.join(dupes)}")
    return out


def render_all(slos: Iterable[SLORef] = ()) -> dict[str, str]:
    """{file name: JSON text} for every dashboard, named by uid."""
    return {f"{d.uid}.json": dumps(to_json(d)) for d in build_all(slos)}
