"""The `lustre_health` collector (node agent, live): health_check's verdict, LBUG, and the devices it
names, on Lustre clients and servers alike. The parser is lustre.health; the files, lustre.reader."""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator

from hpcwatch.exporters import labels
from hpcwatch.exporters.families import FamilyTable, gauge
from hpcwatch.exporters.files import log_once, read_text
from hpcwatch.exporters.lustre.health import HealthCheck, parse_health_check
from hpcwatch.exporters.lustre.reader import first_readable, lnet_paths, verdict_paths
from hpcwatch.exporters.registry import Collector, CollectorContext, register
from hpcwatch.exporters.selfmetrics import record_parse_error
from prometheus_client.metrics_core import Metric

log = logging.getLogger("hpcwatch.collector.lustre_health")

FAMILIES = FamilyTable([
    gauge("hpc_lustre_healthy",
          "1 when Lustre's health_check reports every device of this host healthy, 0 when it does not (NOT HEALTHY,"
          " LBUG or a device named)."),
    gauge("hpc_lustre_lbug",
          "1 after a Lustre assertion failure (LBUG) on this host: the kernel module is wedged until the node "
          "reboots."),
    gauge("hpc_lustre_unhealthy_device",
          "1 for each Lustre device health_check reports unhealthy (2.15+ debugfs health_check, procfs before "
          "2.10).", "device"),
])


@register
class LustreHealthCollector(Collector):
    name = "lustre_health"
    help = "Lustre health_check of this host (client or server): verdict, LBUG, devices reported unhealthy"
    kind = "live"
    default_agents = frozenset({"node"})
    families = FAMILIES

    def __init__(self, ctx: CollectorContext) -> None:
        super().__init__(ctx)
        self.paths = ctx.paths

    def available(self) -> str | None:
        if any(os.path.isfile(p) for p in verdict_paths(self.paths)):
            return None
        return "no health_check under /sys/fs/lustre or /proc/fs/lustre (Lustre modules not loaded)"

    def read(self) -> HealthCheck:
        found = first_readable(verdict_paths(self.paths))
        if found is None:
            raise RuntimeError("health_check vanished from /sys/fs/lustre and /proc/fs/lustre")
        path, text = found
        devices = read_text(self.paths.sys("kernel", "debug", "lustre", "health_check")) or ""

        def bad(reason: str) -> None:
            record_parse_error("lustre_health_check")
            log_once(log, f"health:{reason}", "%s: %s", path, reason)
        check = parse_health_check(text + "\n" + devices, bad)
        catastrophe = first_readable(lnet_paths(self.paths, "catastrophe"))
        if catastrophe is not None and catastrophe[1].strip() == "1":
            check = HealthCheck(False, True, check.unhealthy_devices)
        return check

    def collect(self) -> Iterator[Metric]:
        check = self.read()
        healthy = FAMILIES.new("hpc_lustre_healthy")
        if check.healthy is not None:
            healthy.add_metric([], 1 if check.healthy else 0)
        lbug = FAMILIES.new("hpc_lustre_lbug")
        lbug.add_metric([], 1 if check.lbug else 0)
        devices = FAMILIES.new("hpc_lustre_unhealthy_device")
        for d in check.unhealthy_devices:
            devices.add_metric([labels.value(d)], 1)
        yield from (healthy, lbug, devices)
