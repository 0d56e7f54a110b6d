"""Test helpers shared by every suite: render collectors to exposition text, check it with promtool,
read samples back, and require real binaries (skip on a laptop, fail in CI)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterable, Sequence

import pytest
from hpcwatch.exporters.exposition import render_text
from hpcwatch.exporters.registry import Collector, CollectorContext, Paths
from hpcwatch.exporters.scrape import ScrapeCollector
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

HOW_TO_GET = ("install the Debian 12 packages with `make deps` (as root), "
              "or run `make test`, which installs them when missing")


def require_binary(name: str) -> str:
    """Path of a real binary; in CI a missing one fails the test, elsewhere it skips with how to get it."""
    path = shutil.which(name) or (f"/usr/sbin/{name}" if os.path.exists(f"/usr/sbin/{name}") else None)
    if path:
        return path
    msg = f"{name} not found: {HOW_TO_GET}"
    if IN_CI:
        pytest.fail(msg)
    pytest.skip(msg)


def make_context(procfs: str = "/proc", sysfs: str = "/sys", rootfs: str = "/", agent: str = "node",
                 cls: type[Collector] | None = None, **options: object) -> CollectorContext:
    """A complete CollectorContext for `cls`: its declared defaults, overridden by `options` (text is
    parsed as the flag would be), exactly as `hpcwatch serve` builds it."""
    paths = Paths(procfs=procfs, sysfs=sysfs, rootfs=rootfs)
    if cls is None:
        return CollectorContext(paths=paths, agent=agent)
    return CollectorContext.of(cls, paths, agent, **options)


def counting_since(path: str, origin: float = 0.0) -> str:
    """A scheduler state file of an agent that has counted finished jobs since `origin` (Unix time),
    so fixture jobs that finished long ago count, as on an agent that was running when they ended."""
    from hpcwatch.exporters.scheduler.ledger import FinishedJobLedger, StateFile
    from hpcwatch.exporters.scheduler.model import DEFAULT_WAIT_BUCKETS

    ledger = FinishedJobLedger(DEFAULT_WAIT_BUCKETS)
    ledger.start(origin)
    StateFile(path).save(ledger.to_dict())
    return path


def render(collectors: Collector | Sequence[Collector], timeout: float = 10.0) -> str:
    """One scrape of the given collectors, exactly as the server renders it (health families included)."""
    if isinstance(collectors, Collector):
        collectors = [collectors]
    scrape = ScrapeCollector(collectors, timeout=timeout)
    reg = CollectorRegistry(auto_describe=False)
    reg.register(scrape)
    try:
        return render_text(reg.collect()).decode()
    finally:
        scrape.close()


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """{(sample name, sorted labels): value} from exposition text."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def values(text: str, name: str, **match: str) -> list[float]:
    """Values of every sample named `name` whose labels include `match`."""
    return [v for (n, labels), v in samples(text).items()
            if n == name and all(dict(labels).get(k) == m for k, m in match.items())]


def series_labels(text: str, name: str) -> list[dict[str, str]]:
    return [dict(labels) for (n, labels) in samples(text) if n == name]


# node_exporter's own names (node_memory_MemTotal_bytes, ...) are camelCase; the node collector keeps
# them exactly so node_exporter dashboards work (docs/node-exporter-compat.md). promtool's complaint
# about those, and only those, is expected.
NODE_EXPORTER_CAMEL_CASE = re.compile(r"node_[A-Za-z0-9_:]+ metric names should be written in 'snake_case' not "
                                      r"'camelCase'")


def promtool_check_metrics(text: str) -> str:
    """Output of `promtool check metrics` on the text ('' means clean), less the lines about node_exporter's
    own camelCase names."""
    promtool = require_binary("promtool")
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    lines = (proc.stdout + proc.stderr).decode().strip().splitlines()
    return "\n".join(ln for ln in lines if not NODE_EXPORTER_CAMEL_CASE.fullmatch(ln.strip())).strip()


def assert_promtool_clean(text: str) -> None:
    out = promtool_check_metrics(text)
    assert out == "", f"promtool check metrics reported:\n{out}"


def collector_success(text: str) -> dict[str, float]:
    return {dict(labels)["collector"]: v for (n, labels), v in samples(text).items()
            if n == "hpcwatch_collector_success"}


def write_tree(root: str, files: dict[str, str | bytes]) -> str:
    """Create files under root from {relative path: content}; returns root."""
    for rel, content in files.items():
        path = os.path.join(root, rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        mode = "wb" if isinstance(content, bytes) else "w"
        with open(path, mode) as fh:
            fh.write(content)
    return root


def all_names(text: str) -> Iterable[str]:
    return {fam.name for fam in text_string_to_metric_families(text)}
