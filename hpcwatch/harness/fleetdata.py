"""What the simulated fleet serves: our collectors' output on the fixture trees, rendered once, as templates.

The node agent template is the node agent's default collectors on a CPU node (the kernel 6 fixture
tree for `node`, the cgroup v2 tree for `jobs`: the other defaults find no source there, as on a plain
compute node). Lines of the fixture's job 77 become the per-job template; the rest are node series.
The cluster agent template is the Slurm collector on output captured from Slurm 22.05, with the
fixture cluster renamed to the simulated one and its `debug` partition to `batch` (the SLO
catalogue's queue). `Template.render` varies values per node and over time (see hpcwatch.harness.fleet).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass, field

FIXED, GAUGE, COUNTER, TIMESTAMP = 0, 1, 2, 3
TEMPLATE_JOB = "77"  # the cgroup v2 fixture's job whose series stand for every simulated job
_COUNTER_TYPES = ("counter", "histogram", "summary")
# Histograms of a current state, rebuilt on each refresh (docs/metrics.md): they hold still, like gauges.
GAUGE_HISTOGRAMS = frozenset({"hpc_scheduler_pending_wait_seconds"})
# Counters start where an agent running for a day would have them: large against one scrape's growth,
# as on a real fleet (VictoriaMetrics reads a small first value as a counter that just started at 0).
COUNTER_AGE_SECONDS = 86400.0
_GOLDEN = 0.6180339887498949  # golden-ratio steps spread per-node and per-series phases evenly over [0, 1)
_PLASTIC = 0.7548776662466927


def repo_root() -> str:
    """The source tree the package runs from (the fixture trees live in its tests/fixtures)."""
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@dataclass
class Template:
    """Exposition families as (header, rows): node rows are (text before the value, value, kind); job rows
    are (text before the job id, text after it up to the value, value, kind)."""

    families: list[tuple[str, list[tuple[str, float, int]], list[tuple[str, str, float, int]]]] = \
        field(default_factory=list)

    @property
    def per_node(self) -> int:
        return sum(len(rows) for _, rows, _ in self.families)

    @property
    def per_job(self) -> int:
        return sum(len(jobs) for _, _, jobs in self.families)

    def series(self, jobs: int) -> int:
        """Series one agent serves with `jobs` running jobs."""
        return self.per_node + jobs * self.per_job

    def render(self, i: int, nodes: int, elapsed: float, jobs: int, job_seconds: float, now: float) -> bytes:
        """Agent i's exposition `elapsed` seconds after the fleet started, at Unix time `now`.

        Gauges other than 0 and 1 carry a fixed per-node offset of up to 10 %; counters (histograms too,
        all buckets by one factor, so they stay cumulative) grow by 0.1-0.2 % of the fixture's value a
        second, from a day's worth (COUNTER_AGE_SECONDS);
        `*_timestamp_seconds` gauges read `now` (a source that just refreshed);
        job slot s runs job ((epoch * nodes + i) * jobs + s + 1000) whose counters grow over its run.
        """
        phase = (i * _GOLDEN) % 1.0
        growth = 1.0 + 0.001 * (1.0 + phase) * (COUNTER_AGE_SECONDS + elapsed)
        running = []
        for s in range(jobs):
            t = elapsed / job_seconds + (phase + s / jobs) % 1.0
            epoch = math.floor(t)
            running.append((str(((epoch * nodes + i) * jobs) + s + 1000), 0.05 + t - epoch))
        out: list[str] = []
        w = 0.0
        for header, rows, job_rows in self.families:
            out.append(header)
            for prefix, value, kind in rows:
                w = (w + _PLASTIC) % 1.0
                if kind == COUNTER:
                    value *= growth
                elif kind == GAUGE:
                    value *= 1.0 + 0.1 * ((phase + w) % 1.0)
                elif kind == TIMESTAMP:
                    value = now
                out.append(f"{prefix} {value!r}\n")
            for jobid, progress in running:
                for before, after, value, kind in job_rows:
                    if kind == COUNTER:
                        value *= progress
                    out.append(f"{before}{jobid}{after} {value!r}\n")
        return "".join(out).encode()


def parse_template(text: str, template_job: str | None = None, drop_other_jobs: bool = True,
                   rename: dict[str, str] | None = None) -> Template:
    """A Template from exposition text; `rename` maps label assignments (`cluster="capt"`) to new ones."""
    tpl = Template()
    kind_of = GAUGE
    job_label = f'jobid="{template_job}"' if template_job else None
    for line in text.splitlines():
        for old, new in (rename or {}).items():
            line = line.replace(old, new)
        if not line:
            continue
        if line.startswith("#"):
            if line.startswith("# HELP "):
                tpl.families.append((line + "\n", [], []))
            elif line.startswith("# TYPE "):
                header, rows, jobs = tpl.families[-1]
                tpl.families[-1] = (header + line + "\n", rows, jobs)
                _, _, name, kind_name = line.split(" ", 3)
                kind_of = COUNTER if kind_name in _COUNTER_TYPES and name not in GAUGE_HISTOGRAMS else GAUGE
            continue
        head, _, text = line.rpartition(" ")  # label values may hold spaces; the value never does
        try:
            value = float(text)
        except ValueError:
            raise ValueError(f"fleet template: not a sample line: {line!r}") from None
        kind = kind_of if kind_of == COUNTER or value not in (0.0, 1.0) else FIXED
        if head.split("{", 1)[0].endswith("_timestamp_seconds"):
            kind = TIMESTAMP
        _, rows, jobs = tpl.families[-1]
        if job_label and job_label in head:
            before, after = head.split(job_label, 1)
            jobs.append((before + 'jobid="', '"' + after, value, kind))
        elif drop_other_jobs and 'jobid="' in head:
            continue
        else:
            rows.append((head, value, kind))
    return tpl


def _render(collectors: list) -> str:
    """One scrape of `collectors` as the node agent's HTTP path renders it (health families included)."""
    from hpcwatch.exporters.scrape import ScrapeCollector

    for c in collectors:
        for source in c.sources():  # snapshot collectors: one refresh, as the background loop would
            source.refresh_now()
    scrape = ScrapeCollector(collectors)
    try:
        return b"".join(scrape.render("text")).decode()
    finally:
        scrape.close()
        for c in collectors:
            c.close()


def node_agent_text(repo: str | None = None) -> str:
    """The node agent's default collectors on the fixture trees: what one CPU compute node serves."""
    from hpcwatch.exporters.jobs.collector import JobsCollector
    from hpcwatch.exporters.node.collector import NodeCollector
    from hpcwatch.exporters.registry import CollectorContext, Paths

    fix = os.path.join(repo or repo_root(), "tests", "fixtures")
    node_root, jobs_root = os.path.join(fix, "node", "real"), os.path.join(fix, "jobs", "v2")
    node_paths = Paths(procfs=os.path.join(node_root, "proc"), sysfs=os.path.join(node_root, "sys"))
    jobs_paths = Paths(procfs=os.path.join(jobs_root, "proc"), sysfs=os.path.join(jobs_root, "sys"))
    disk = os.statvfs_result((4096, 4096, 1 << 26, 1 << 25, 1 << 24, 1 << 22, 1 << 21, 1 << 21, 0, 255))
    return _render([NodeCollector(CollectorContext.of(NodeCollector, node_paths), stat=lambda _path: disk),
                    JobsCollector(CollectorContext.of(JobsCollector, jobs_paths))])


def cluster_agent_text(repo: str | None = None) -> str:
    """The cluster agent's Slurm collector on Slurm 22.05 output (hpcwatch.docexamples.slurm)."""
    from hpcwatch import docexamples

    return _render(docexamples.slurm(repo or repo_root()))


def node_template() -> Template:
    return parse_template(node_agent_text(), TEMPLATE_JOB)


def cluster_template(cluster: str) -> Template:
    return parse_template(cluster_agent_text(), rename={'cluster="capt"': f'cluster="{cluster}"',
                                                        'queue="debug"': 'queue="batch"'})
