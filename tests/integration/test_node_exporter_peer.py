"""The node agent and the Debian node_exporter as peers, both running for real.

(a) Dashboards: two Prometheus servers, configured from the shipped deploy/prometheus/prometheus.yml,
    one scraping only node_exporter and one only our agent (the installed `hpcwatch serve
    --no-collector.*` but node and textfile), both reading the same kernel 6 fixture tree
    (--path.procfs/--path.sysfs: fans, RAPL, EDAC and NUMA nodes this VM does not have) and the same
    textfile directory. Every panel of the shipped node dashboard (deploy/grafana/dashboards/
    hpcwatch-node.json) returns data on both, with variables set to the values their own queries
    return there; only panels that read hpcwatch's own families may be empty on node_exporter.
(b) This machine: both read the real /proc and /sys; scraped ours, theirs, ours, they agree on CPU
    seconds and network counters (theirs lies between our two scrapes, give or take one clock tick),
    MemTotal and filesystem sizes and inodes (exactly), and memory and filesystem free space (within
    2% of the total, since other engineers' jobs allocate and write in between).
"""

from __future__ import annotations

import copy
import json
import os
import re
import sys
import time

import helpers
import pytest
import yaml

from hpcwatch.harness.prometheus import NodeExporter, Prometheus
from hpcwatch.harness.util import Process, free_port, http_get, wait_http

pytestmark = [pytest.mark.daemons]

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
FIX = os.path.join(ROOT, "tests", "fixtures", "node")
TREE = os.path.join(FIX, "real")
TEXTFILES = os.path.join(FIX, "textfile", "slurm-prolog")
HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")
RATE_INTERVAL = "15s"  # Grafana's $__rate_interval for a 1 s scrape interval and a short range
# Panels that read only hpcwatch's own families (jobs, collector health): empty on plain node_exporter.
HPCWATCH_ONLY = {"Jobs on this node", "Collectors"}
# node_exporter needs these flags for families it has but does not collect by default.
NODE_EXPORTER_FLAGS = ["--collector.meminfo_numa", f"--collector.textfile.directory={TEXTFILES}"]


class NodeAgent:
    """The installed `hpcwatch serve` running only the node and textfile collectors."""

    def __init__(self, workdir: str, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = Process("hpcwatch-serve", [HPCWATCH, "serve", "--agent", "node", "--web.listen-address",
                                                  f"127.0.0.1:{self.port}", "--collector.disable-defaults",
                                                  "--collector.node", "--collector.textfile", *args],
                               os.path.join(workdir, f"hpcwatch-{self.port}.log"))

    def start(self) -> NodeAgent:
        self.process.start()
        wait_http(self.url + "/metrics", 60, alive=self.process.dead)
        return self

    def stop(self) -> None:
        self.process.stop()


def scrape(url: str) -> str:
    status, body = http_get(url + "/metrics", timeout=30)
    assert status == 200
    return body.decode()


def shipped_config(target: str) -> dict:
    """deploy/prometheus/prometheus.yml as shipped, its node job pointed at `target`; the cluster job,
    Alertmanager and rule files are another test's business. Scrapes every second for the test's sake."""
    with open(os.path.join(ROOT, "deploy", "prometheus", "prometheus.yml")) as fh:
        cfg = yaml.safe_load(fh)
    cfg = copy.deepcopy(cfg)
    cfg["global"]["scrape_interval"] = cfg["global"]["evaluation_interval"] = "1s"
    cfg["global"]["scrape_timeout"] = "1s"
    cfg.pop("alerting", None)
    cfg.pop("rule_files", None)
    node = next(j for j in cfg["scrape_configs"] if j["job_name"] == "hpcwatch-node")
    node.pop("file_sd_configs", None)
    node["static_configs"] = [{"targets": [target]}]
    cfg["scrape_configs"] = [node]
    return cfg


@pytest.fixture(scope="module")
def peers(tmp_path_factory):
    """(node_exporter's Prometheus, ours), both on the fixture tree, once each has a minute of samples."""
    helpers.require_binary("prometheus")
    tmp = str(tmp_path_factory.mktemp("peers"))
    paths = [f"--path.procfs={TREE}/proc", f"--path.sysfs={TREE}/sys"]
    started = []
    try:
        ne = NodeExporter(tmp, [*paths, *NODE_EXPORTER_FLAGS])
        started.append(ne.start())
        ours = NodeAgent(tmp, *paths, f"--collector.textfile.directory={TEXTFILES}")
        started.append(ours.start())
        proms = []
        for exporter in (ne, ours):
            prom = Prometheus(tmp, shipped_config(f"127.0.0.1:{exporter.port}"))
            started.append(prom.start())
            proms.append(prom)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and not all(
                p.query('count_over_time(up{job="hpcwatch-node"}[1m]) >= 20') for p in proms):
            time.sleep(1)
        yield proms[0], proms[1]
    finally:
        for d in reversed(started):
            d.stop()


def _variables(prom: Prometheus, dashboard: dict) -> dict[str, str]:
    """What Grafana would put in each variable on this Prometheus: All (`.*`) where the variable
    offers All and that is its default, else the first value its own label_values() query returns."""
    values = {"$__rate_interval": RATE_INTERVAL, "$__interval": "1s", "$__range": "1m"}
    for v in dashboard["templating"]["list"]:
        if v["type"] != "query":
            continue
        m = re.fullmatch(r"label_values\((.+), (\w+)\)", v["query"])
        assert m, v["query"]
        if v.get("includeAll"):
            values["$" + v["name"]] = v.get("allValue") or ".*"
            continue
        expr = _expand(m.group(1), values)
        found = sorted({r["metric"].get(m.group(2), "") for r in prom.query(expr)} - {""})
        # Grafana regex-escapes a single value inside the PromQL string: `.` becomes `\\.`
        values["$" + v["name"]] = found[0].replace("\\", "\\\\").replace(".", "\\\\.") if found else ""
    return values


def _expand(expr: str, values: dict[str, str]) -> str:
    for var in sorted(values, key=len, reverse=True):
        expr = expr.replace(var, values[var])
    return expr


def _panels_without_data(prom: Prometheus) -> list[str]:
    with open(os.path.join(ROOT, "deploy", "grafana", "dashboards", "hpcwatch-node.json")) as fh:
        dashboard = json.load(fh)
    values = _variables(prom, dashboard)
    assert values.get("$instance"), "the instance variable lists no node"
    empty = []
    for row in dashboard["panels"]:
        for panel in [row, *row.get("panels", [])]:
            targets = panel.get("targets") or []
            if targets and not any(prom.query(_expand(t["expr"], values)) for t in targets):
                empty.append(panel["title"])
    return empty


def test_node_dashboard_has_data_on_plain_node_exporter(peers) -> None:
    ne_prom, _ = peers
    assert set(_panels_without_data(ne_prom)) <= HPCWATCH_ONLY


def test_node_dashboard_has_data_on_our_agent(peers) -> None:
    _, ours_prom = peers
    # the jobs collector is not running here (tests/integration/test_jobs_real.py covers its panel)
    assert set(_panels_without_data(ours_prom)) <= {"Jobs on this node"}


# --- (b) the same real host, read by both ---------------------------------------------------------

def _samples(text: str, name: str) -> dict[tuple, float]:
    """{labels without empty values: value} of one family (node_exporter 1.5 has no device_error label)."""
    return {tuple((k, v) for k, v in labels if v): value for (n, labels), value in helpers.samples(text).items()
            if n == name}


def _between(name: str, before: dict, theirs: dict, after: dict, slack: float) -> int:
    assert theirs, f"node_exporter exports no {name}"
    checked = 0
    for key, value in theirs.items():
        if key in before and key in after:
            assert before[key] - slack <= value <= after[key] + slack, (name, key, before[key], value, after[key])
            checked += 1
    return checked


def test_same_host_values_agree(tmp_path) -> None:
    # Debian patches node_exporter's mount-point exclusion to also drop /run, /mnt and /media; both
    # get upstream's (our default) here, so the comparison is of the readings, not of the defaults.
    from hpcwatch.exporters.node.collector import MOUNT_POINTS_EXCLUDE

    ne = NodeExporter(str(tmp_path), [f"--collector.filesystem.mount-points-exclude={MOUNT_POINTS_EXCLUDE}"]).start()
    ours = NodeAgent(str(tmp_path)).start()
    try:
        first, theirs, second = scrape(ours.url), scrape(ne.url), scrape(ours.url)
    finally:
        ours.stop()
        ne.stop()
    tick = 1.0 / os.sysconf("SC_CLK_TCK")
    # CPU seconds: every cpu and mode, node_exporter's reading between our two (one tick of rounding).
    cpu = [_samples(t, "node_cpu_seconds_total") for t in (first, theirs, second)]
    assert _between("node_cpu_seconds_total", cpu[0], cpu[1], cpu[2], tick) == len(cpu[1]) == len(cpu[0])
    # Network: every device's byte and packet counters, same bracketing, no slack (exact integers).
    for name in ("node_network_receive_bytes_total", "node_network_transmit_bytes_total",
                 "node_network_receive_packets_total", "node_network_transmit_packets_total"):
        net = [_samples(t, name) for t in (first, theirs, second)]
        assert _between(name, net[0], net[1], net[2], 0) == len(net[1]) >= 2  # at least lo and eth0
    # Memory: totals exactly; what is free moves with other processes (2% of RAM).
    total = _samples(theirs, "node_memory_MemTotal_bytes")[()]
    assert _samples(first, "node_memory_MemTotal_bytes")[()] == total
    assert _samples(first, "node_memory_SwapTotal_bytes") == _samples(theirs, "node_memory_SwapTotal_bytes")
    for name in ("node_memory_MemAvailable_bytes", "node_memory_MemFree_bytes", "node_memory_Cached_bytes"):
        assert abs(_samples(first, name)[()] - _samples(theirs, name)[()]) <= 0.02 * total, name
    # Filesystems: the same mounts; sizes and inode totals exactly, free space within 2% of the size.
    sizes = _samples(theirs, "node_filesystem_size_bytes")
    assert sizes and set(_samples(first, "node_filesystem_size_bytes")) == set(sizes)
    assert _samples(first, "node_filesystem_size_bytes") == sizes
    assert _samples(first, "node_filesystem_files") == _samples(theirs, "node_filesystem_files")
    for name in ("node_filesystem_avail_bytes", "node_filesystem_free_bytes", "node_filesystem_files_free"):
        ours_v, theirs_v = _samples(first, name), _samples(theirs, name)
        assert set(ours_v) == set(theirs_v), name
        for key, v in theirs_v.items():
            scale = sizes[key] if "bytes" in name else _samples(theirs, "node_filesystem_files")[key]
            assert abs(ours_v[key] - v) <= 0.02 * scale, (name, key)
