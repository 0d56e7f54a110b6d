"""A per-node cap on per-job series: above `--collector.<name>.max-jobs` jobs, the excess jobs' series are
left out and counted in `hpcwatch_jobs_not_exported{collector}`.

Which jobs are kept is deterministic and stable across scrapes: the `limit` lowest job ids (numeric ids
in numeric order, then any others such as SLUIDs in text order). Slurm hands out ids in submission order,
so the jobs kept are the oldest ones, and a kept job stays kept until it ends; a new job past the cap
never displaces one whose series Prometheus already holds. Every collector that emits per-job series
(jobs, gpu, energy) applies the same rule to the jobs it sees.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.registry import Option
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.metrics_core import Metric

DEFAULT_MAX_JOBS = 128  # a 128-core node full of one-core jobs; docs/scaling.md "Protections"
JOBID = "jobid"
NOT_EXPORTED = "hpcwatch_jobs_not_exported"

MAX_JOBS_OPTION = Option(
    "max-jobs", DEFAULT_MAX_JOBS,
    "most jobs on this node with per-job series; the jobs past it (highest job ids first) are left out and "
    f"counted in {NOT_EXPORTED}; 0 means no limit", type=opt.count)


def jobid_order(jobid: str) -> tuple[int, int, str]:
    """Sort key: numeric job ids by number (oldest first), then any other id by its text (ties by text)."""
    return (0, int(jobid), jobid) if jobid.isascii() and jobid.isdigit() else (1, 0, jobid)


def kept_jobs(jobids: Iterable[str], limit: int) -> set[str] | None:
    """The job ids to keep, or None when all of them fit (`limit` 0 means no limit)."""
    distinct = set(jobids)
    if limit <= 0 or len(distinct) <= limit:
        return None
    return set(sorted(distinct, key=jobid_order)[:limit])


class JobCap:
    """One collector's cap: filters each scrape's families and remembers how many jobs it left out."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.not_exported = 0

    def apply(self, families: Iterable[Metric]) -> Iterator[Metric]:
        """The families with only the kept jobs' samples (samples without a job all stay)."""
        if self.limit <= 0:  # no cap: nothing to scan
            self.not_exported = 0
            yield from families
            return
        families = list(families)
        keep = kept_jobs((s.labels[JOBID] for f in families for s in f.samples if s.labels.get(JOBID)), self.limit)
        if keep is None:
            self.not_exported = 0
            yield from families
            return
        dropped: set[str] = set()
        for fam in families:
            samples = []
            for s in fam.samples:
                jobid = s.labels.get(JOBID)
                if not jobid or jobid in keep:  # no jobid label, or "" (a process in no job)
                    samples.append(s)
                else:
                    dropped.add(jobid)
            fam.samples = samples  # families are built fresh per scrape: filtering in place is safe
            yield fam
        self.not_exported = len(dropped)


def not_exported_family(caps: Iterable[tuple[str, JobCap]]) -> GaugeMetricFamily:
    """`hpcwatch_jobs_not_exported{collector}` for the (collector name, cap) pairs of a scrape."""
    fam = GaugeMetricFamily(
        NOT_EXPORTED,
        "Jobs running on this node whose per-job series the collector left out of its last scrape, past "
        "--collector.<collector>.max-jobs (the lowest job ids are kept).",
        labels=["collector"])
    for collector, cap in caps:
        fam.add_metric([collector], cap.not_exported)
    return fam
