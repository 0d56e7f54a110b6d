"""The collectors as docs/metrics.md renders them: each one built on the repository's fixture trees
and stand-in commands (real formats), so every family it can export shows up with its labels.

These live with the docs generator, not in the production classes; tests/unit/test_metrics_doc.py
fails when a registered collector has no example here.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import sys
import tempfile
from collections.abc import Callable

from hpcwatch.exporters.registry import Collector, CollectorContext, Paths
from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger, StateFile
from hpcwatch.exporters.scheduler.model import DEFAULT_WAIT_BUCKETS
from hpcwatch.exporters.snapshot import SnapshotSource


def print_fixture_sh(fixture: str, separator: str = "") -> str:
    """sh that prints `fixture` (a shell word); with `separator`, swaps in the per-call separator the caller
    passed in its arguments (a unit-separator control character and 12 hex digits, as Slurm readers do)."""
    if not separator:
        return f"cat {fixture}\n"
    us = "$(printf '\\037')"
    return (f'sep=$(printf \'%s\\n\' "$@" | grep -o "{us}[0-9a-f]\\{{12\\}}" | head -n 1)\n'
            f'sed "s/{separator.replace(chr(31), us)}/$sep/g" {fixture}\n')


def stand_in_commands(outputs: dict[str, str], separator: str = "") -> str:
    """A temporary bin dir whose commands print fixture files (for command-driven doc examples)."""
    bindir = tempfile.mkdtemp(prefix="hpcwatch-doc-bin-")
    for cmd, fixture in outputs.items():
        path = os.path.join(bindir, cmd)
        with open(path, "w") as fh:
            fh.write("#!/bin/sh\n" + print_fixture_sh(shlex.quote(fixture), separator))
        os.chmod(path, 0o755)
    return bindir


def flux_stand_in_script(fixture_dir: str) -> str:
    """sh for a stand-in `flux` that answers the commands the flux reader runs with files captured from
    flux-core (jobs.json, R-<state>.json, status.txt, queues.json, eventlog-<id>.json), logs each call
    to `$0.calls` and exits with the number in `$0.rc` (0 when absent)."""
    d = shlex.quote(fixture_dir)
    return ("#!/bin/sh\n"
            'echo "$@" >> "$0.calls"\n'
            'rc=$(cat "$0.rc" 2>/dev/null || echo 0)\n'
            '[ "$rc" = 0 ] || exit "$rc"\n'
            'case "$1 $2" in\n'
            f'  "jobs "*) cat {d}/jobs.json ;;\n'
            f'  "resource R") cat {d}/R-"$4".json ;;\n'
            f'  "resource status") cat {d}/status.txt ;;\n'
            f'  "config get") cat {d}/queues.json ;;\n'
            f'  "job eventlog") cat {d}/eventlog-"$4".json ;;\n'
            '  *) echo "stand-in flux: unexpected $*" >&2; exit 2 ;;\n'
            'esac\n')


def counting_since(path: str, origin: float) -> str:
    """A scheduler state file of an agent that has counted finished jobs since `origin` (Unix time),
    so the fixture's finished jobs count, as they would on an agent that was running when they ended."""
    ledger = FinishedJobLedger(DEFAULT_WAIT_BUCKETS)
    ledger.start(origin)
    StateFile(path).save(ledger.to_dict())
    return path


def _fixture(repo: str, *parts: str) -> str:
    return os.path.join(repo, "tests", "fixtures", *parts)


def _text(path: str) -> str:
    with open(path, encoding="utf-8") as fh:
        return fh.read()


def node(repo: str) -> list[Collector]:
    """The kernel 6 fixture tree with every optional family on, and fixed statvfs answers."""
    from hpcwatch.exporters.node.collector import NodeCollector

    root = _fixture(repo, "node", "real")
    ctx = CollectorContext.of(NodeCollector, Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys")),
                              **{"pressure-avg10": True, "edac-csrows": True})
    example = os.statvfs_result((4096, 4096, 1 << 20, 1 << 19, 1 << 18, 1 << 16, 1 << 15, 1 << 15, 0, 255))
    return [NodeCollector(ctx, stat=lambda _path: example)]


def jobs(repo: str) -> list[Collector]:
    """The cgroup v1 (Debian 12, Slurm 22.05) and v2 fixture trees, with the prolog's files under run/."""
    from hpcwatch.exporters.jobs.collector import JobsCollector

    out: list[Collector] = []
    for layout in ("v1", "v2"):
        root = _fixture(repo, "jobs", layout)
        paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"), rootfs=root)
        out.append(JobsCollector(CollectorContext.of(JobsCollector, paths)))
    return out


def gpu(repo: str) -> list[Collector]:
    """An 8-GPU H100 node through the test suite's fake NVML (no GPU needed to document)."""
    from hpcwatch.exporters.gpu import nvml
    from hpcwatch.exporters.gpu.collector import GpuCollector

    spec = importlib.util.spec_from_file_location("hpcwatch_doc_fake_pynvml",
                                                  _fixture(repo, "gpu", "fake_pynvml.py"))
    fake = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = fake  # type: ignore[union-attr]  # dataclasses look their module up
    spec.loader.exec_module(fake)  # type: ignore[union-attr]
    previous = nvml.use(fake.h100_node())
    ctx = CollectorContext.of(GpuCollector, Paths(procfs=_fixture(repo, "gpu", "proc")),
                              **{"job-map-dir": _fixture(repo, "gpu", "gpu-jobs"), "gpm-interval": 0.0})
    collector = GpuCollector(ctx)
    collector.available()
    list(collector.collect())  # the first GPM sample, so the example shows GPM readings
    original_close = collector.close

    def close() -> None:  # restore the real NVML binding once the example is rendered
        original_close()
        nvml.use(previous)

    collector.close = close  # type: ignore[method-assign]
    return [collector]


def fabric(repo: str) -> list[Collector]:
    """The ConnectX-6 HDR, RoCE and saturated-counter fixture sysfs trees."""
    from hpcwatch.exporters.fabric.collector import FabricCollector

    base = _fixture(repo, "fabric", "sysfs")
    return [FabricCollector(CollectorContext.of(FabricCollector, Paths(sysfs=os.path.join(base, tree))))
            for tree in ("cx6_hdr", "cx6dx_roce", "saturated")]


def fabric_switches(repo: str) -> list[Collector]:
    """The two-tier HDR fabric fixture, replayed by stand-in ibnetdiscover/perfquery scripts."""
    from hpcwatch.exporters.fabric_switches.collector import FabricSwitchesCollector

    fixtures = _fixture(repo, "fabric")
    bindir = tempfile.mkdtemp(prefix="hpcwatch-doc-ibdiags-")
    tools = {}
    for tool in ("ibnetdiscover", "perfquery"):
        path = os.path.join(bindir, tool)
        with open(path, "w") as fh:
            fh.write(f'#!/bin/sh\nFAKE_IBDIAGS_DIR="{fixtures}/ibdiags" exec "{sys.executable}" '
                     f'"{fixtures}/fake_ibdiags.py" {tool} "$@"\n')
        os.chmod(path, 0o755)
        tools[tool] = path
    return [FabricSwitchesCollector(CollectorContext.of(FabricSwitchesCollector, agent="cluster", **tools))]


def lustre(repo: str) -> list[Collector]:
    """The 2.15 debugfs layout fixture (llite, mdc, osc)."""
    from hpcwatch.exporters.lustre.collector import LustreCollector

    root = _fixture(repo, "lustre", "client_tree")
    paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"))
    return [LustreCollector(CollectorContext.of(LustreCollector, paths, lctl="/nonexistent/lctl"))]


def lustre_server(repo: str) -> list[Collector]:
    """The OST (2.15) and MDT job_stats fixtures, target stats and recovery, as one snapshot."""
    from hpcwatch.exporters.lustre.brw import parse_brw_stats
    from hpcwatch.exporters.lustre.jobs import aggregate_jobs
    from hpcwatch.exporters.lustre.jobstats import parse_job_stats_text
    from hpcwatch.exporters.lustre.stats import parse_stats
    from hpcwatch.exporters.lustre.target import parse_recovery_status
    from hpcwatch.exporters.lustre_server.collector import LustreServerCollector, ServerSnapshot, _fold

    def text(name: str) -> str:
        return _text(_fixture(repo, "lustre", name))

    c = LustreServerCollector(CollectorContext.of(LustreServerCollector, agent="cluster",
                                                  **{"jobid-format": "%j:%u:%H,%j.%u"}))
    records = [*parse_job_stats_text(text("job_stats_ost_2.15.txt"), "scratch-OST0000"),
               *parse_job_stats_text(text("job_stats_mdt_2.15.txt"), "scratch-MDT0000")]
    snap = ServerSnapshot(
        jobs=aggregate_jobs(records, c.jobid_format, 1, 1),
        counters={"scratch-OST0000": _fold(parse_stats(text("obdfilter_stats_2.15.txt"))),
                  "scratch-MDT0000": _fold(parse_stats(text("mdt_md_stats_2.15.txt")))},
        capacity={"scratch-OST0000": {"kbytestotal": 1000000, "kbytesfree": 400000, "kbytesavail": 350000,
                                      "filestotal": 65536, "filesfree": 60000}},
        recovery={"scratch-OST0000": parse_recovery_status(text("recovery_status_complete.txt")),
                  "scratch-OST0001": parse_recovery_status(text("recovery_status_recovering.txt"))},
        taken_at=0.0,
        brw={"scratch-OST0000": parse_brw_stats(text("brw_stats_2.16.txt"))})
    c.source = SnapshotSource("lustre_server", lambda: snap, 30.0)
    c.source.refresh_now()
    return [c]


def gpfs(repo: str) -> list[Collector]:
    """mmpmon, mmdf and mmhealth fixtures, as the cluster agent would hold them."""
    from hpcwatch.exporters.gpfs.collector import GpfsCollector
    from hpcwatch.exporters.gpfs.parse import parse_fs_io_s, parse_mmdf, parse_mmhealth, parse_mmhealth_events
    from hpcwatch.exporters.gpfs.state import parse_mmgetstate, parse_waiters

    def text(name: str) -> str:
        return _text(_fixture(repo, "gpfs", name))

    c = GpfsCollector(CollectorContext.of(GpfsCollector, agent="cluster"))
    c.io = SnapshotSource("gpfs_mmpmon", lambda: parse_fs_io_s(text("mmpmon_fs_io_s.txt")), 30.0)
    c.usage = SnapshotSource("gpfs_mmdf", lambda: {"scratch": parse_mmdf(text("mmdf_scratch_Y.txt"))}, 600.0)
    c.health = SnapshotSource("gpfs_mmhealth", lambda: (parse_mmhealth(text("mmhealth_5.2.txt")),
                                                       parse_mmhealth_events(text("mmhealth_5.2.txt"))), 60.0)
    c.state = SnapshotSource("gpfs_mmgetstate", lambda: parse_mmgetstate(text("mmgetstate_5.1.txt")), 60.0)
    waiters = parse_waiters(text("mmdiag_waiters_5.1.txt"))
    c.waiters = SnapshotSource("gpfs_waiters", lambda: c.keep_waiters(waiters), 60.0)
    c._sources = [c.io, c.health, c.usage, c.state, c.waiters]
    for s in c._sources:
        s.refresh_now()
    return [c]


def nfs(repo: str) -> list[Collector]:
    """The kernel 5.15 mountstats fixture (NFSv4.2 over tcp with nconnect, and over RDMA)."""
    from hpcwatch.exporters.nfs.collector import NfsCollector

    return [NfsCollector(CollectorContext.of(NfsCollector, Paths(procfs=_fixture(repo, "nfs", "proc"))))]


def beegfs(repo: str) -> list[Collector]:
    """The meta and storage clientstats fixtures."""
    from hpcwatch.exporters.beegfs.clientstats import parse_clientstats
    from hpcwatch.exporters.beegfs.collector import NODE_TYPES, BeegfsCollector

    c = BeegfsCollector(CollectorContext.of(BeegfsCollector, agent="cluster"))
    for node_type in NODE_TYPES:
        out = _text(_fixture(repo, "beegfs", f"clientstats_{node_type}.txt"))
        c.stats[node_type] = SnapshotSource(f"beegfs_{node_type}", lambda out=out: parse_clientstats(out), 30.0)
        c.stats[node_type].refresh_now()
    return [c]


def slurm(repo: str) -> list[Collector]:
    """Output captured from real Slurm 22.05 daemons (tests/fixtures/slurm), through stand-in commands,
    on an agent that was counting when the fixture's jobs finished."""
    from hpcwatch.exporters.slurm.collector import SlurmCollector
    from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR

    fix = _fixture(repo, "slurm")
    bindir = stand_in_commands({
        "squeue": f"{fix}/squeue-22.05.txt", "sinfo": f"{fix}/sinfo-22.05.txt",
        "sdiag": f"{fix}/sdiag-22.05.txt", "sacct": f"{fix}/sacct-22.05.txt",
        "scontrol": f"{fix}/scontrol-show-config-22.05.txt"}, separator=FIXTURE_SEPARATOR)
    state = counting_since(os.path.join(tempfile.mkdtemp(prefix="hpcwatch-doc-"), "state.json"), 0.0)
    ctx = CollectorContext.of(SlurmCollector, agent="cluster", conf=os.path.join(bindir, "absent-slurm.conf"),
                              **{"bin-dir": bindir, "state-file": state})
    return [SlurmCollector(ctx)]


def flux(repo: str) -> list[Collector]:
    """Output captured from flux-core 0.88 (tests/fixtures/flux/0.88), through a stand-in `flux`."""
    from hpcwatch.exporters.flux.collector import FluxCollector

    fix = _fixture(repo, "flux", "0.88", "after")
    bindir = tempfile.mkdtemp(prefix="hpcwatch-doc-flux-")
    path = os.path.join(bindir, "flux")
    with open(path, "w") as fh:
        fh.write(flux_stand_in_script(fix))
    os.chmod(path, 0o755)
    state = counting_since(os.path.join(bindir, "state.json"), 0.0)
    return [FluxCollector(CollectorContext.of(FluxCollector, agent="cluster", command=path,
                                              **{"state-file": state}))]


def textfile(repo: str) -> list[Collector]:
    """A textfile directory with one (empty) file: the collector's own two families; what the files
    hold is the site's (tests/fixtures/node/textfile/slurm-prolog has a prolog and NHC example)."""
    from hpcwatch.exporters.textfile.collector import TextfileCollector

    d = _fixture(repo, "node", "textfile", "doc-example")
    return [TextfileCollector(CollectorContext.of(TextfileCollector, directory=d))]


def lustre_health(repo: str) -> list[Collector]:
    """A 2.15 server whose health_check names one unhealthy OST."""
    from hpcwatch.exporters.lustre_health.collector import LustreHealthCollector

    root = _fixture(repo, "lustre", "host_tree_2.15")
    paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"))
    return [LustreHealthCollector(CollectorContext.of(LustreHealthCollector, paths))]


def lnet(repo: str) -> list[Collector]:
    """The 2.15 debugfs stats file of a busy client, and `lnetctl stats show` replayed by a stand-in."""
    from hpcwatch.exporters.lnet.collector import LnetCollector

    root = _fixture(repo, "lustre", "host_tree_2.15")
    paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"))
    lnetctl = stand_in_commands({"lnetctl": _fixture(repo, "lustre", "lnetctl_stats_2.15.txt")})
    return [LnetCollector(CollectorContext.of(LnetCollector, paths, source="file")),
            LnetCollector(CollectorContext.of(LnetCollector, paths, source="lnetctl",
                                              lnetctl=os.path.join(lnetctl, "lnetctl")))]


def energy(repo: str) -> list[Collector]:
    """A 2-socket node with a power meter and two jobs, sampled twice (tests/fixtures/energy/make_tree.py)."""
    from hpcwatch.exporters.energy.collector import EnergyCollector

    spec = importlib.util.spec_from_file_location("hpcwatch_doc_energy_tree",
                                                  _fixture(repo, "energy", "make_tree.py"))
    tree = importlib.util.module_from_spec(spec)  # type: ignore[arg-type]
    sys.modules[spec.name] = tree  # type: ignore[union-attr]
    spec.loader.exec_module(tree)  # type: ignore[union-attr]
    root = tempfile.mkdtemp(prefix="hpcwatch-doc-energy-")
    state = tree.NodeState(meter_uw=350_000_000, jobs={"4242001": tree.Job(100.0, 5.0, "0-1"),
                                                       "4242002": tree.Job(10.0, 0.0, "2")})
    tree.write(root, state)
    paths = Paths(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"))
    c = EnergyCollector(CollectorContext.of(EnergyCollector, paths, gpu=False, interval=3600.0,
                                            **{"power-meter": "hwmon"}))
    c.available()
    c.source.refresh_now()
    state.packages_uj = [p + 40_000_000 for p in state.packages_uj]
    state.dram_uj = [d + 6_000_000 for d in state.dram_uj]
    state.busy_s += 60
    state.jobs["4242001"].user_s += 40
    state.jobs["4242002"].user_s += 10
    tree.write(root, state)
    c.source.refresh_now()
    return [c]


EXAMPLES: dict[str, Callable[[str], list[Collector]]] = {
    "node": node, "textfile": textfile, "jobs": jobs, "gpu": gpu, "energy": energy, "fabric": fabric,
    "fabric_switches": fabric_switches, "lustre": lustre, "lustre_server": lustre_server,
    "lustre_health": lustre_health, "lnet": lnet, "gpfs": gpfs, "nfs": nfs, "beegfs": beegfs,
    "slurm": slurm, "flux": flux,
}


def examples(name: str, repo: str) -> list[Collector]:
    """The example instances of collector `name` (empty when it has none: its families go undocumented)."""
    build = EXAMPLES.get(name)
    return build(repo) if build is not None else []
