"""Session fixtures that start real daemons (Debian packages) through hpcwatch.harness.

A missing binary, or not being root for Slurm, skips the tests that need it with how to fix it;
in CI (CI=true) it fails them instead. Tests using these fixtures carry `@pytest.mark.daemons`.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator

import pytest
from helpers import IN_CI

from hpcwatch.harness.prometheus import (
    Alertmanager,
    NodeExporter,
    Prometheus,
    Pushgateway,
    VictoriaMetrics,
    VMAlert,
)
from hpcwatch.harness.slurm import SlurmCluster
from hpcwatch.harness.util import Daemon, MissingDaemon

NULL_ALERTMANAGER = {"route": {"receiver": "null"}, "receivers": [{"name": "null"}]}


def unavailable(msg: str) -> None:
    """Skip with `msg` on a laptop; fail in CI, where every daemon must be there."""
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def require_root(what: str) -> None:
    if os.geteuid() != 0:
        unavailable(f"{what} needs root (daemons run as root and create job cgroups): run the tests as root")


def start(daemon: Daemon) -> Daemon:
    """Start a daemon, turning a missing binary into a skip (or a CI failure)."""
    try:
        daemon.start()
    except MissingDaemon as exc:
        unavailable(str(exc))
    return daemon


class Started:
    """Daemons a factory fixture started, stopped in reverse order at teardown."""

    def __init__(self) -> None:
        self.daemons: list[Daemon] = []

    def add(self, daemon: Daemon) -> Daemon:
        start(daemon)
        self.daemons.append(daemon)
        return daemon

    def stop_all(self) -> None:
        for d in reversed(self.daemons):
            d.stop()


@pytest.fixture(scope="session")
def slurm(tmp_path_factory) -> Iterator[SlurmCluster]:
    """One single-host Slurm cluster (munge, MariaDB, slurmdbd, slurmctld, slurmd) for the session."""
    require_root("the Slurm harness")
    cluster = SlurmCluster(str(tmp_path_factory.mktemp("slurm")))
    start(cluster)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="session")
def slurm_factory(tmp_path_factory) -> Iterator[Callable[..., SlurmCluster]]:
    """Start an extra SlurmCluster with its own options (e.g. extra_conf); stopped at session end."""
    require_root("the Slurm harness")
    started = Started()

    def make(**kwargs: object) -> SlurmCluster:
        return started.add(SlurmCluster(str(tmp_path_factory.mktemp("slurm")), **kwargs))

    yield make
    started.stop_all()


@pytest.fixture(scope="session")
def prometheus_factory(tmp_path_factory) -> Iterator[Callable[..., Prometheus]]:
    """make(config_yaml, rule_files=()) -> a started Prometheus; all are stopped at session end."""
    started = Started()

    def make(config_yaml: str | dict, rule_files=()) -> Prometheus:
        return started.add(Prometheus(str(tmp_path_factory.mktemp("prometheus")), config_yaml, rule_files))

    yield make
    started.stop_all()


@pytest.fixture(scope="session")
def alertmanager_factory(tmp_path_factory) -> Iterator[Callable[..., Alertmanager]]:
    started = Started()

    def make(config_yaml: str | dict = NULL_ALERTMANAGER) -> Alertmanager:
        return started.add(Alertmanager(str(tmp_path_factory.mktemp("alertmanager")), config_yaml))

    yield make
    started.stop_all()


@pytest.fixture(scope="session")
def vmalert_factory(tmp_path_factory) -> Iterator[Callable[..., VMAlert]]:
    """make(rule_files, datasource_url, notifier_url, **kwargs) -> a started vmalert."""
    started = Started()

    def make(rule_files, datasource_url: str, notifier_url: str, **kwargs) -> VMAlert:
        return started.add(VMAlert(str(tmp_path_factory.mktemp("vmalert")), rule_files, datasource_url,
                                   notifier_url, **kwargs))

    yield make
    started.stop_all()


@pytest.fixture(scope="session")
def alertmanager(alertmanager_factory) -> Alertmanager:
    """An Alertmanager that routes everything to a receiver that does nothing."""
    return alertmanager_factory()


@pytest.fixture(scope="session")
def pushgateway(tmp_path_factory) -> Iterator[Pushgateway]:
    pg = start(Pushgateway(str(tmp_path_factory.mktemp("pushgateway"))))
    yield pg
    pg.stop()


@pytest.fixture(scope="session")
def victoria_metrics(tmp_path_factory) -> Iterator[VictoriaMetrics]:
    vm = start(VictoriaMetrics(str(tmp_path_factory.mktemp("victoria-metrics"))))
    yield vm
    vm.stop()


@pytest.fixture(scope="session")
def node_exporter(tmp_path_factory) -> Iterator[NodeExporter]:
    ne = start(NodeExporter(str(tmp_path_factory.mktemp("node-exporter"))))
    yield ne
    ne.stop()
