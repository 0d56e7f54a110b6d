"""Cost of the fabric collectors.

1. `fabric` (node side): one collect() of 16 ConnectX-6 HDR ports with every counter, producing the
   prometheus_client families with all their samples (21 PMA counters and 20 hw_counters each, plus
   state, phys_state and rate: 704 files read per scrape; hw_counters/lifespan is a setting and is
   not read), on a sysfs-layout tree in a temporary folder. Goal: under 2 ms per scrape. Real sysfs
   adds the kernel's cost of each read (a PMA MAD per counters/ file), which no exporter can avoid.
2. `fabric_switches` (cluster side): parsing `ibnetdiscover --ports` and `perfquery -x -l` output of
   a 100-switch x 40-port fabric (2000 hosts), merging and rendering it. Goal: under 0.2 s.

    .venv/bin/python benchmarks/fabric.py
"""

from __future__ import annotations

import os
import shutil
import statistics
import tempfile
import time

from hpcwatch.exporters.fabric.collector import FabricCollector
from hpcwatch.exporters.fabric_switches.collector import FabricSnapshot, merge_counters, render
from hpcwatch.exporters.fabric_switches.parse import parse_perfquery, parse_ports_report
from hpcwatch.exporters.registry import CollectorContext, Paths

HERE = os.path.dirname(os.path.abspath(__file__))
TEMPLATE = os.path.join(HERE, "..", "tests", "fixtures", "fabric", "sysfs", "cx6_hdr", "class", "infiniband",
                        "mlx5_0")


def timed(fn, repeat: int) -> list[float]:
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return sorted(out)


def node_side(repeat: int = 500) -> list[tuple[str, float, float, int]]:
    root = tempfile.mkdtemp(prefix="hpcwatch-fabric-bench-")
    try:
        for i in range(16):
            shutil.copytree(TEMPLATE, os.path.join(root, "class", "infiniband", f"mlx5_{i}"))
        rows = []
        for label, held in (("held files (default)", "auto"), ("open/read/close", "0")):
            ctx = CollectorContext.of(FabricCollector, Paths(sysfs=root), **{"held-files": held})
            c = FabricCollector(ctx)
            samples = sum(len(m.samples) for m in c.collect())  # warm: lists the layout once
            t = timed(lambda c=c: list(c.collect()), repeat)
            rows.append((label, statistics.median(t), t[int(len(t) * 0.9)], samples))
            c.close()
        return rows
    finally:
        shutil.rmtree(root)


def fabric_text(switches: int = 100, ports: int = 40, hosts_per_switch: int = 20) -> tuple[str, dict[int, str]]:
    sw_guid = [f"0x7cfe9003{i:08x}" for i in range(switches)]
    lines, perf = [], {}
    host = 0
    for s in range(switches):
        lid = s + 1
        for p in range(ports, 0, -1):
            if p <= hosts_per_switch:
                host += 1
                hg = f"0x1070fd03{host:08x}"
                lines.append(f"SW {lid:5d} {p:2d} {sw_guid[s]} 4x HDR - CA {1000 + host:5d}  1 {hg}"
                             f" ( 'sw{s:03d}' - 'cn{host:04d} mlx5_0' )")
                lines.append(f"CA {1000 + host:5d}  1 {hg} 4x HDR - SW {lid:5d} {p:2d} {sw_guid[s]}"
                             f" ( 'cn{host:04d} mlx5_0' - 'sw{s:03d}' )")
            else:
                r = (s + p) % switches
                lines.append(f"SW {lid:5d} {p:2d} {sw_guid[s]} 4x HDR - SW {r + 1:5d} {p:2d} {sw_guid[r]}"
                             f" ( 'sw{s:03d}' - 'sw{r:03d}' )")
        blocks = []
        for p in range(1, ports + 1):
            b = [f"# Port extended counters: Lid {lid} port {p} (CapMask: 0x5A00 CapMask2: 0x0000002)"]
            for name, v in (("PortSelect", p), ("CounterSelect", "0x0000"), ("PortXmitData", 10**12 + p),
                            ("PortRcvData", 10**12 + 2 * p), ("PortXmitPkts", 10**9), ("PortRcvPkts", 10**9),
                            ("PortUnicastXmitPkts", 10**9), ("PortUnicastRcvPkts", 10**9),
                            ("PortMulticastXmitPkts", 5), ("PortMulticastRcvPkts", 6),
                            ("CounterSelect2", "0x00000000"), ("SymbolErrorCounter", p % 3),
                            ("LinkErrorRecoveryCounter", 0), ("LinkDownedCounter", 0), ("PortRcvErrors", 0),
                            ("PortRcvRemotePhysicalErrors", 0), ("PortRcvSwitchRelayErrors", 0),
                            ("PortXmitDiscards", 0), ("PortXmitConstraintErrors", 0),
                            ("PortRcvConstraintErrors", 0), ("LocalLinkIntegrityErrors", 0),
                            ("ExcessiveBufferOverrunErrors", 0), ("VL15Dropped", 0), ("PortXmitWait", 77),
                            ("QP1Dropped", 0)):
                b.append(f"{name}:{'.' * (32 - len(name))}{v}")
            blocks.append("\n".join(b))
        perf[lid] = "\n".join(blocks) + "\n"
    return "\n".join(lines) + "\n", perf


def cluster_side(repeat: int = 20) -> list[tuple[str, float, float, int]]:
    ports_text, perf = fabric_text()

    def parse() -> FabricSnapshot:
        topo = parse_ports_report(ports_text)
        readings = {}
        for sw in topo.switches.values():
            ext, _ = parse_perfquery(perf[sw.lid])
            reading = merge_counters(ext, {})
            reading.guid = sw.guid
            readings[sw.guid] = reading
        return FabricSnapshot(topology=topo, discovered_at=time.time(), readings=readings)

    snap = parse()
    samples = sum(len(m.samples) for m in render(snap))
    tp = timed(parse, repeat)
    tr = timed(lambda: render(snap), repeat)
    return [("parse 100 sw x 40 ports", statistics.median(tp), tp[int(len(tp) * 0.9)], samples),
            ("render families", statistics.median(tr), tr[int(len(tr) * 0.9)], samples)]


def main() -> None:
    print(f"{'case':<34}{'median':>12}{'p90':>12}{'samples':>10}")
    print("fabric (node, 16 ports, all counters; goal < 2 ms)")
    for label, med, p90, n in node_side():
        print(f"  {label:<32}{med * 1e3:>9.2f} ms{p90 * 1e3:>9.2f} ms{n:>10}")
    print("fabric_switches (cluster; goal < 0.2 s)")
    for label, med, p90, n in cluster_side():
        print(f"  {label:<32}{med * 1e3:>9.1f} ms{p90 * 1e3:>9.1f} ms{n:>10}")


if __name__ == "__main__":
    main()
