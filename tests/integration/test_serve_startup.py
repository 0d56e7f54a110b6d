"""`hpcwatch serve` start-up through the installed CLI: options resolved once (typed, durations,
switches), failing loudly (success 0 over HTTP, exit codes, one usage line) and a readable --help."""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import pytest
from helpers import collector_success, values
from hpcwatch.exporters.registry import Collector, load_all
from hpcwatch.exporters.serve import add_serve_arguments, build_collectors
from prometheus_client.core import GaugeMetricFamily

HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")
# Every cluster-agent default pointed at nothing, so what runs does not depend on this host's packages.
NO_CLUSTER_SOURCES = ["--collector.slurm.bin-dir=/nonexistent", "--collector.flux.command=/nonexistent/flux",
                      "--collector.gpfs.bin-dir=/nonexistent", "--collector.beegfs.ctl=/nonexistent/beegfs-ctl",
                      "--collector.lustre_server.lctl=/nonexistent/lctl"]


def run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([HPCWATCH, "serve", *args], capture_output=True, text=True, timeout=timeout)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Serving:
    """A `hpcwatch serve` process on a free loopback port, scraped until it answers."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.proc = subprocess.Popen([HPCWATCH, "serve", f"--web.listen-address=127.0.0.1:{self.port}", *args],
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def scrape(self, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as resp:
                    return resp.read().decode()
            except (urllib.error.URLError, ConnectionError):
                assert self.proc.poll() is None, f"serve exited: {self.proc.communicate()[1][-2000:]}"
                assert time.monotonic() < deadline, "hpcwatch serve did not start"
                time.sleep(0.2)

    def stop(self) -> str:
        self.proc.terminate()
        _, err = self.proc.communicate(timeout=30)
        return err


@pytest.fixture
def serving():
    started: list[Serving] = []

    def start(*args: str) -> Serving:
        s = Serving(*args)
        started.append(s)
        return s

    yield start
    for s in started:
        if s.proc.poll() is None:
            s.stop()


# --- a bad option value stops start-up, naming the flag -------------------------------------------------

@pytest.mark.parametrize(("flag", "says"), [
    ("--collector.slurm.wait-buckets=abc", "'abc' is not a comma-separated list of seconds or durations"),
    ("--collector.slurm.wait-buckets=60,60", "positive and distinct"),
    ("--collector.slurm.refresh-interval=soon", "'soon' is not a duration"),
    ("--collector.slurm.label-limit=0", "0 is too small: at least 1"),
    ("--collector.node.diskstats-device-exclude=(", "'(' is not a valid regular expression"),
    ("--collector.lustre_server.jobid-format=%j%", "ends with a lone %"),
    ("--collector.gpu.per-process=yes", "ignored explicit argument 'yes'"),
    ("--scrape.timeout=10x", "'10x' is not a duration"),
])
def test_a_bad_option_value_stops_startup_with_one_usage_line(flag, says):
    """Before: the value reached the collector's constructor, which build_collectors swallowed, and
    serving went on without the collector."""
    proc = run("--collector.disable-defaults", "--collector.node", flag)
    assert proc.returncode == 2, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 2, proc.stderr  # one usage line and the error, not 80 lines of flags
    assert lines[0].startswith("usage: hpcwatch serve ")
    name = flag.split("=", 1)[0]
    assert lines[1].startswith(f"hpcwatch serve: error: argument {name}") and says in lines[1], lines[1]
    assert "Traceback" not in proc.stderr


def test_an_unknown_flag_prints_one_usage_line():
    proc = run("--collector.nosuch")
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 2 and "unrecognized arguments: --collector.nosuch" in proc.stderr


# --- durations and switches ---------------------------------------------------------------------------------

def test_time_options_take_prometheus_durations(serving):
    s = serving("--collector.disable-defaults", "--collector.node", "--scrape.timeout=1m30s",
                "--collector.node.filesystem-mount-timeout=500ms", "--no-collector.node.pressure-avg10")
    text = s.scrape()
    assert collector_success(text) == {"node": 1}


def test_boolean_options_are_switches():
    parser = argparse.ArgumentParser()
    add_serve_arguments(parser, load_all())
    on = parser.parse_args(["--collector.gpu.per-process", "--no-collector.gpu.xid-events"])
    assert on.opt__gpu__per_process is True and on.opt__gpu__xid_events is False
    for name, cls in load_all().items():
        for o in cls.options:
            if isinstance(o.default, bool):
                assert o.type is bool, f"--collector.{name}.{o.name} takes a value; it should be a switch"


# --- a requested collector that cannot run is visible; an agent with nothing to do exits -------------

def test_a_requested_collector_that_cannot_run_reports_success_zero(serving):
    """Before: `--collector.slurm` on a host without Slurm was skipped at info level, leaving nothing
    for the shipped HpcwatchCollectorFailing alert to see."""
    s = serving("--collector.disable-defaults", "--collector.node", "--collector.slurm",
                "--collector.slurm.bin-dir=/nonexistent", "--collector.flux",
                "--collector.flux.command=/nonexistent/flux")
    first, second = s.scrape(), s.scrape()
    for text in (first, second):  # on every scrape
        assert collector_success(text) == {"node": 1, "slurm": 0, "flux": 0}
    err = s.stop()
    assert "level=warning" in err and "collector=slurm was requested but cannot run here" in err
    assert "not found in /nonexistent" in err


def test_a_default_collector_whose_source_is_absent_is_skipped_quietly(serving):
    s = serving("--agent", "cluster", "--collector.node", *NO_CLUSTER_SOURCES)
    text = s.scrape()
    assert collector_success(text) == {"node": 1}  # slurm, flux, gpfs...: absent here, not failing
    assert not values(text, "hpcwatch_collector_success", collector="slurm")
    err = s.stop()
    assert "level=info logger=hpcwatch.serve msg=\"collector=slurm skipped:" in err
    assert "level=warning" not in err


def test_an_agent_with_no_collector_exits_with_a_message(tmp_path):
    """Before: a cluster agent on a host without its sources served `collectors=none` forever."""
    proc = run("--agent", "cluster", *NO_CLUSTER_SOURCES, f"--path.procfs={tmp_path}", f"--path.sysfs={tmp_path}",
               "--web.listen-address=127.0.0.1:0")
    assert proc.returncode == 1, proc.stderr
    assert "no collector to run" in proc.stderr and "Traceback" not in proc.stderr
    assert "collector=slurm skipped" in proc.stderr


class Steady(Collector):
    name = "steady"
    default_agents = frozenset({"node"})

    def collect(self):
        yield GaugeMetricFamily("hpc_node_test_value", "A test gauge.", value=1)


class Absent(Collector):
    name = "absentsrc"
    default_agents = frozenset({"node"})

    def available(self):
        return "/sys/class/infiniband not found"


class Exploding(Collector):
    name = "exploding"
    default_agents = frozenset({"node"})

    def __init__(self, ctx):
        raise RuntimeError("cannot open the device")


def test_build_collectors_skips_absent_defaults_and_stands_in_for_failures(caplog):
    registry = {"absentsrc": Absent, "exploding": Exploding, "steady": Steady}
    p = argparse.ArgumentParser()
    add_serve_arguments(p, registry)
    with caplog.at_level(logging.INFO, logger="hpcwatch.serve"):
        built = build_collectors(p.parse_args([]), registry)
    assert [c.name for c in built] == ["exploding", "steady"]
    infos = [r.getMessage() for r in caplog.records if r.levelno == logging.INFO]
    assert infos == ["collector=absentsrc skipped: /sys/class/infiniband not found"]
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warnings == ["collector=exploding cannot run, reporting success 0: start-up failed: RuntimeError: "
                        "cannot open the device"]
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="hpcwatch.serve"):
        built = build_collectors(p.parse_args(["--collector.absentsrc", "--no-collector.exploding"]), registry)
    assert [c.name for c in built] == ["absentsrc", "steady"]
    assert any(r.levelno == logging.WARNING and "collector=absentsrc was requested" in r.getMessage()
               for r in caplog.records)
    # --no-collector wins over the agent default; --collector.disable-defaults keeps only named ones.
    assert [c.name for c in build_collectors(p.parse_args(["--no-collector.steady", "--no-collector.exploding"]),
                                             registry)] == []
    assert [c.name for c in build_collectors(p.parse_args(["--collector.disable-defaults",
                                                           "--collector.steady"]), registry)] == ["steady"]


# --- a --help a person can read -------------------------------------------------------------------------------

def test_short_help_lists_collectors_one_line_each_without_their_options():
    out = run("--help").stdout
    assert len(out.splitlines()) < 90
    flags = out.split("examples:")[0]  # the examples may show an option or two
    for name, cls in load_all().items():
        assert len([line for line in flags.splitlines() if line.startswith(f"  {name} ")]) == 1, name
        for o in cls.options:
            assert f"--collector.{name}.{o.name}" not in flags
    assert "--help-collector NAME" in out and "--help-all" in out and "--scrape.timeout DURATION" in out


def test_help_collector_shows_one_collectors_options():
    out = run("--help-collector", "slurm").stdout
    for o in load_all()["slurm"].options:
        assert f"--collector.slurm.{o.name}" in out or f"--[no-]collector.slurm.{o.name}" in out
    assert "--collector.slurm.refresh-interval=DURATION" in out and "(default: 30s)" in out
    assert "--[no-]collector.slurm.per-user" in out
    assert "--collector.flux." not in out


def test_help_all_shows_every_flag_of_every_collector():
    out = run("--help-all").stdout
    for name, cls in load_all().items():
        assert f"--[no-]collector.{name}\n" in out
        for o in cls.options:
            assert f"collector.{name}.{o.name}" in out, (name, o.name)


# Libraries the reports need and an agent never does: loaded into the node agent, they cost ~90 MB of
# resident memory on every compute node (127 MB against 37 MB measured on this host). Their compiled
# parts show in the process's memory map.
HEAVY = ("pandas", "pyarrow", "duckdb")


def test_the_node_agent_loads_no_report_or_generator_libraries():
    agent = Serving("--agent=node")
    try:
        assert "hpcwatch_collector_success" in agent.scrape()
        with open(f"/proc/{agent.proc.pid}/maps") as fh:
            maps = fh.read()
        loaded = sorted({lib for lib in HEAVY for line in maps.splitlines() if f"/{lib}/" in line})
        assert not loaded, f"the node agent mapped {loaded}: import them lazily, inside the command that needs them"
        with open(f"/proc/{agent.proc.pid}/status") as fh:
            rss = next(line for line in fh if line.startswith("VmRSS:"))
        print(f"node agent {rss.strip()}")
    finally:
        agent.stop()
