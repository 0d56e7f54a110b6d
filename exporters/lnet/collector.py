"""The `lnet` collector (node agent, live): LNet's global message, byte, drop and error counters of this
host, and with lnetctl the LNet health counters. The parsers are lustre.lnet; the files, lustre.reader."""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from typing import NamedTuple

from hpcwatch.exporters import options as opt
from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.families import FamilySpec, FamilyTable
from hpcwatch.exporters.files import log_once
from hpcwatch.exporters.lustre.lnet import parse_lnet_stats, parse_lnetctl_stats
from hpcwatch.exporters.lustre.reader import first_readable, lnet_paths
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.lnet")



class LnetSpec(NamedTuple):
    """One LNet family: name, type, its label ('' for none), help, and (counter, label value) pairs."""

    family: str
    kind: str
    label: str
    help: str
    fields: tuple[tuple[str, str], ...]


_HEALTH_EVENTS = ("resend", "response_timeout", "local_interrupt", "local_dropped", "local_aborted",
                  "local_no_route", "local_timeout", "local_error", "remote_dropped", "remote_error",
                  "remote_timeout", "network_timeout")
LNET_FAMILIES = (
    LnetSpec("hpc_lustre_lnet_messages_allocated", "gauge", "", "LNet messages allocated now (msgs_alloc).",
             (("msgs_alloc", ""),)),
    LnetSpec("hpc_lustre_lnet_messages_allocated_max", "gauge", "",
             "Most LNet messages allocated at once since the counters were reset (msgs_max).", (("msgs_max", ""),)),
    LnetSpec("hpc_lustre_lnet_errors", "counter", "", "LNet errors (errors).", (("errors", ""),)),
    LnetSpec("hpc_lustre_lnet_messages", "counter", "direction",
             "LNet messages this host sent, received, or routed for others.",
             (("send_count", "sent"), ("recv_count", "received"), ("route_count", "routed"))),
    LnetSpec("hpc_lustre_lnet_bytes", "counter", "direction",
             "Bytes of LNet messages this host sent, received, or routed for others.",
             (("send_length", "sent"), ("recv_length", "received"), ("route_length", "routed"))),
    LnetSpec("hpc_lustre_lnet_dropped_messages", "counter", "", "LNet messages dropped (drop_count).",
             (("drop_count", ""),)),
    LnetSpec("hpc_lustre_lnet_dropped_bytes", "counter", "", "Bytes of LNet messages dropped (drop_length).",
             (("drop_length", ""),)),
    LnetSpec("hpc_lustre_lnet_response_trackers", "gauge", "",
             "LNet response trackers allocated now (rst_alloc; lnetctl, 2.12+).", (("rst_alloc", ""),)),
    LnetSpec("hpc_lustre_lnet_health_events", "counter", "event",
             "LNet health events: resends and failed sends by cause (lnetctl stats, 2.12+).",
             tuple((f"{e}_count", e) for e in _HEALTH_EVENTS)),
)


FAMILIES = FamilyTable(FamilySpec(s.family + ("_total" if s.kind == "counter" else ""), s.kind, s.help,
                                  (s.label,) if s.label else ()) for s in LNET_FAMILIES)


def lnet_families(counters: dict[str, int]) -> Iterator[Metric]:
    for spec in LNET_FAMILIES:
        fam = FAMILIES.new(spec.family + ("_total" if spec.kind == "counter" else ""))
        for field, value in spec.fields:
            if field in counters:
                fam.add_metric([value] if spec.label else [], counters[field])
        yield fam


@register
class LnetCollector(Collector):
    name = "lnet"
    help = "LNet message, byte, drop and error counters of this host; with lnetctl also the LNet health counters"
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES
    options = (
        Option("source", "auto", "where to read: file (the stats file), lnetctl (`lnetctl stats show`, adds the "
                                 "health counters), auto (the file when readable, else lnetctl)",
               choices=("auto", "file", "lnetctl")),
        Option("lnetctl", "lnetctl", "lnetctl binary"),
        Option("timeout", 5.0, "how long `lnetctl stats show` may take", type=opt.duration),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.paths = ctx.paths
        self.source = ctx.option("source")
        self.lnetctl = ctx.option("lnetctl")
        self.timeout = ctx.option("timeout")

    def available(self) -> str | None:
        if self.source != "lnetctl" and any(os.path.isfile(p) for p in lnet_paths(self.paths, "stats")):
            return None
        if self.source == "file":
            return "no LNet stats under /sys/kernel/debug/lnet or /proc/sys/lnet (LNet not loaded or debugfs unmounted)"
        if shutil.which(self.lnetctl) is None:
            return "no LNet stats file and no lnetctl (LNet not loaded)"
        return None

    def read(self) -> dict[str, int]:
        if self.source != "lnetctl":
            found = first_readable(lnet_paths(self.paths, "stats"))
            if found is not None:
                counters = parse_lnet_stats(found[1])
                if counters is None:
                    record_parse_error("lnet_stats")
                    raise ValueError(f"{found[0]}: expected 11 non-negative integers "
                                     f"(msgs_alloc ... drop_length), got {found[1].strip()[:120]!r}")
                return counters
            if self.source == "file":
                raise RuntimeError("LNet stats file vanished")
        out = run_command([self.lnetctl, "stats", "show"], self.timeout)

        def bad(reason: str) -> None:
            record_parse_error("lnet_stats")
            log_once(log, "lnetctl", "lnetctl stats show: %s", reason)
        counters = parse_lnetctl_stats(out, bad)
        if counters is None:
            raise ValueError(f"lnetctl stats show printed no `statistics:` block: {out.strip()[:120]!r}")
        return counters

    def collect(self) -> Iterator[Metric]:
        yield from lnet_families(self.read())
