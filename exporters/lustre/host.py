"""Host-wide Lustre state on clients and servers alike (node agent, live):

- `lustre_health`: health_check's verdict, LBUG, and the devices it names.
- `lnet`: LNet's global message, byte, drop and error counters, and with lnetctl the health counters.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterator
from typing import NamedTuple

from hpcwatch.exporters.command import run_command
from hpcwatch.exporters.files import log_once, read_text
from hpcwatch.exporters.lustre.health import HealthCheck, parse_health_check
from hpcwatch.exporters.lustre.lnet import parse_lnet_stats, parse_lnetctl_stats
from hpcwatch.exporters.registry import Collector, CollectorContext, Option, Paths, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.lustre_host")


def _first(paths: list[str]) -> tuple[str, str] | None:
    """(path, text) of the first readable file."""
    for p in paths:
        text = read_text(p)
        if text is not None:
            return p, text
    return None


# ---------------------------------------------------------------------------------------- health_check
def verdict_paths(paths: Paths) -> list[str]:
    return [paths.sys("fs", "lustre", "health_check"), paths.proc("fs", "lustre", "health_check")]


def lnet_paths(paths: Paths, name: str) -> list[str]:
    """An LNet/libcfs parameter file: debugfs from 2.12, /proc/sys/lnet before."""
    return [paths.sys("kernel", "debug", "lnet", name), paths.proc("sys", "lnet", name)]


@register
class LustreHealthCollector(Collector):
    name = "lustre_health"
    help = "Lustre health_check of this host (client or server): verdict, LBUG, devices reported unhealthy"
    kind = "live"
    default_agents = frozenset({"node"})

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.paths = ctx.paths

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """A 2.15 server whose health_check names one unhealthy OST."""
        root = os.path.join(repo, "tests", "fixtures", "lustre", "host_tree_2.15")
        return [cls(CollectorContext(paths=Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"))))]

    def available(self) -> str | None:
        if any(os.path.isfile(p) for p in verdict_paths(self.paths)):
            return None
        return "no health_check under /sys/fs/lustre or /proc/fs/lustre (Lustre modules not loaded)"

    def read(self) -> HealthCheck:
        found = _first(verdict_paths(self.paths))
        if found is None:
            raise RuntimeError("health_check vanished from /sys/fs/lustre and /proc/fs/lustre")
        path, text = found
        devices = read_text(self.paths.sys("kernel", "debug", "lustre", "health_check")) or ""

        def bad(reason: str) -> None:
            record_parse_error("lustre_health_check")
            log_once(log, f"health:{reason}", "%s: %s", path, reason)
        check = parse_health_check(text + "\n" + devices, bad)
        catastrophe = _first(lnet_paths(self.paths, "catastrophe"))
        if catastrophe is not None and catastrophe[1].strip() == "1":
            check = HealthCheck(False, True, check.unhealthy_devices)
        return check

    def collect(self) -> Iterator[Metric]:
        check = self.read()
        healthy = GaugeMetricFamily("hpc_lustre_healthy", "1 when Lustre's health_check reports every device of "
                                    "this host healthy, 0 when it does not (NOT HEALTHY, LBUG or a device named).")
        if check.healthy is not None:
            healthy.add_metric([], 1 if check.healthy else 0)
        lbug = GaugeMetricFamily("hpc_lustre_lbug", "1 after a Lustre assertion failure (LBUG) on this host: the "
                                 "kernel module is wedged until the node reboots.")
        lbug.add_metric([], 1 if check.lbug else 0)
        devices = GaugeMetricFamily("hpc_lustre_unhealthy_device", "1 for each Lustre device health_check reports "
                                    "unhealthy (2.15+ debugfs health_check, procfs before 2.10).", labels=["device"])
        for d in check.unhealthy_devices:
            devices.add_metric([d[:128]], 1)
        yield from (healthy, lbug, devices)


# ---------------------------------------------------------------------------------------- LNet
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


def lnet_families(counters: dict[str, int]) -> Iterator[Metric]:
    for spec in LNET_FAMILIES:
        cls = CounterMetricFamily if spec.kind == "counter" else GaugeMetricFamily
        fam = cls(spec.family, spec.help, labels=[spec.label] if spec.label else [])
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
    options = (
        Option("source", "auto", "where to read: file (the stats file), lnetctl (`lnetctl stats show`, adds the "
                                 "health counters), auto (the file when readable, else lnetctl)",
               choices=("auto", "file", "lnetctl")),
        Option("lnetctl", "lnetctl", "lnetctl binary"),
        Option("timeout", 5.0, "seconds `lnetctl stats show` may take", type=float),
    )

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.paths = ctx.paths
        self.source = ctx.option("source")
        self.lnetctl = ctx.option("lnetctl")
        self.timeout = float(ctx.option("timeout"))

    @classmethod
    def doc_examples(cls, repo: str) -> list[Collector]:
        """The 2.15 debugfs stats file of a busy client, and `lnetctl stats show` replayed by a stand-in."""
        import tempfile

        fixtures = os.path.join(repo, "tests", "fixtures", "lustre")
        root = os.path.join(fixtures, "host_tree_2.15")
        paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"))
        opts = {o.name: o.default for o in cls.options}
        lnetctl = os.path.join(tempfile.mkdtemp(prefix="hpcwatch-doc-lnetctl-"), "lnetctl")
        with open(lnetctl, "w") as fh:
            fh.write(f'#!/bin/sh\nexec cat "{fixtures}/lnetctl_stats_2.15.txt"\n')
        os.chmod(lnetctl, 0o755)
        return [cls(CollectorContext(paths=paths, options=opts | {"source": "file"})),
                cls(CollectorContext(paths=paths, options=opts | {"source": "lnetctl", "lnetctl": lnetctl}))]

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
            found = _first(lnet_paths(self.paths, "stats"))
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
