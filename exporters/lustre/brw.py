"""OSD `brw_stats` (bulk read/write histograms of an OST or MDT): a pure parser and its families.

Layout (display_brw_stats, lustre/osd-*/osd_lproc.c in 2.10-2.14, obdclass/lprocfs_status_server.c
from 2.15): a `snapshot_time:` header (2.15: also `start_time:` and `elapsed_time:`), then per table

                               read      |     write
    disk I/O size          ios   % cum % |  ios         % cum %
    4K:		         0   0   0   |  153   0   0
    8K:		        12  52 100   |  157   0   0

Rows run from the first non-empty one to the one where both columns reach their totals. A scaled
table's row `2^i` (printed 1, 2, ... 512, 1K, ... 1M, ...) counts values in (2^(i-1), 2^i]
(lprocfs_oh_tally_log2), and a linear table's row `i` counts the value i: either way the row label is
an inclusive upper bound, which is what a Prometheus histogram's `le` means. So each table becomes a
histogram: cumulative buckets at the printed rows plus `+Inf`, and `_count`; brw_stats keeps no sums,
so there is no `_sum`. Lustre folds every value past its last slot (index 31) into that slot, so a
linear table's row 31 counts 31 and more and only reaches `+Inf`.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from hpcwatch.exporters.families import FamilyTable, histogram
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample

ErrorCallback = Callable[[str], None]


class BrwSpec(NamedTuple):
    """How one brw_stats table is exported: family name, help, unit scale, and whether rows are linear."""

    family: str
    help: str
    scale: float
    linear: bool


# Table title as Lustre prints it -> family. 2.16 (and DDN 2.14) added `block maps msec`; unknown titles
# are skipped.
BRW_TABLES: dict[str, BrwSpec] = {
    "pages per bulk r/w": BrwSpec(
        "hpc_lustre_brw_pages_per_rpc", "Pages per bulk read or write RPC a Lustre target served (brw_stats).",
        1, False),
    "discontiguous pages": BrwSpec(
        "hpc_lustre_brw_discontiguous_pages", "Breaks in file offset between the pages of one bulk RPC "
        "(brw_stats discontiguous pages).", 1, True),
    "discontiguous blocks": BrwSpec(
        "hpc_lustre_brw_discontiguous_blocks", "Breaks in on-disk block allocation within one bulk RPC "
        "(brw_stats discontiguous blocks, ldiskfs).", 1, True),
    "disk fragmented I/Os": BrwSpec(
        "hpc_lustre_brw_fragmented_ios", "Disk I/Os one bulk RPC was split into (brw_stats disk fragmented "
        "I/Os, ldiskfs).", 1, True),
    "disk I/Os in flight": BrwSpec(
        "hpc_lustre_brw_ios_in_flight", "Disk I/Os already in flight on a Lustre target when one was submitted "
        "(brw_stats).", 1, True),
    "I/O time (1/1000s)": BrwSpec(
        "hpc_lustre_brw_io_time_seconds", "Time a Lustre target's disk I/Os took to complete (brw_stats I/O time, "
        "millisecond buckets).", 1e-3, False),
    "disk I/O size": BrwSpec(
        "hpc_lustre_brw_io_size_bytes", "Size of the disk I/Os a Lustre target issued (brw_stats disk I/O size).",
        1, False),
    "block maps msec": BrwSpec(
        "hpc_lustre_brw_block_map_time_seconds", "Time a Lustre target spent mapping blocks for one bulk I/O "
        "(brw_stats block maps msec, 2.16+ and DDN 2.14).", 1e-3, False),
}
CLAMP_INDEX = 31  # OBD_HIST_MAX - 1: the slot every larger value lands in
_SUFFIX = {"": 1, "K": 1 << 10, "M": 1 << 20}

_COLUMNS = re.compile(r"^\s*read\s*\|\s*write\s*$")
_TITLE = re.compile(r"^(?P<title>\S.*?)\s+(?P<unit>[a-z]+)\s+%\s+cum\s+%\s+\|\s+(?P=unit)\s+%\s+cum\s+%\s*$")
_ROW = re.compile(r"^(?P<n>\d+)(?P<sfx>[KM]?):\s+(?P<r>\d+)\s+\d+\s+\d+\s+\|\s+(?P<w>\d+)\s+\d+\s+\d+\s*$")
_HEADER = re.compile(r"^(?:snapshot_time|start_time|elapsed_time):\s+\d+(?:\.\d+)?\s*(?:\(?secs\.[nu]secs\)?)?$")


class BrwTable(NamedTuple):
    """One table: its title, unit (rpcs, ios, maps) and (bucket bound, reads, writes) rows in order."""

    title: str
    unit: str
    rows: list[tuple[int, int, int]]


def parse_brw_stats(text: str, on_error: ErrorCallback | None = None) -> list[BrwTable]:
    """The tables of one brw_stats file; lines that fit no part of the layout are reported and skipped."""
    tables: list[BrwTable] = []
    current: BrwTable | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or _COLUMNS.match(line) or _HEADER.match(line):
            continue
        m = _ROW.match(line)
        if m is not None and current is not None:
            bound = int(m.group("n")) * _SUFFIX[m.group("sfx")]
            current.rows.append((bound, int(m.group("r")), int(m.group("w"))))
            continue
        m = _TITLE.match(line)
        if m is not None:
            current = BrwTable(m.group("title"), m.group("unit"), [])
            tables.append(current)
            continue
        if on_error is not None:
            on_error(f"unreadable brw_stats line: {line[:80]!r}")
    return tables


def _buckets(rows: list[tuple[int, int]], spec: BrwSpec) -> tuple[list[tuple[str, float]], int]:
    """Cumulative (le, count) pairs ending in +Inf, and the total."""
    clamp = CLAMP_INDEX if spec.linear else 1 << CLAMP_INDEX
    out: list[tuple[str, float]] = []
    running = 0
    for bound, n in sorted(rows):
        running += n
        if bound != clamp:
            out.append((_le(bound * spec.scale), running))
    out.append(("+Inf", running))
    return out, running


def _le(value: float) -> str:
    return repr(float(value))


# The histogram families the tables become (the lustre_server collector declares them with its own).
BRW_FAMILIES = FamilyTable({spec.family: histogram(spec.family, spec.help, "target", "operation")
                            for spec in BRW_TABLES.values()}.values())


def brw_families(brw: dict[str, list[BrwTable]]) -> Iterator[Metric]:
    """One histogram family per known table, labelled by target and operation (read, write)."""
    fams: dict[str, Metric] = {name: spec.new() for name, spec in BRW_FAMILIES.items()}
    for target, tables in sorted(brw.items()):
        for table in tables:
            spec = BRW_TABLES.get(table.title)
            if spec is None:
                continue
            fam = fams[spec.family]
            for op, column in (("read", 1), ("write", 2)):
                buckets, total = _buckets([(row[0], row[column]) for row in table.rows], spec)
                fam.add_metric([target, op], buckets, None)
                # brw_stats has no sums; _count still lets rate(_count) count RPCs / I/Os.
                fam.samples.append(Sample(spec.family + "_count", {"target": target, "operation": op}, total))
    yield from fams.values()
