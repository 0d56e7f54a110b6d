"""What the node collector tests share: the fixture trees, a collector on one, and one checked scrape."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import helpers
from hpcwatch.exporters.node.collector import NodeCollector

FIX = os.path.normpath(os.path.join(os.path.dirname(__file__), "fixtures", "node"))
REAL = os.path.join(FIX, "real")  # kernel 6 server
EL7 = os.path.join(FIX, "el7")  # RHEL 7, kernel 3.10
TINY_FS = os.statvfs_result((4096, 4096, 1, 1, 1, 1, 1, 1, 1, 1))


def node(root: str = REAL, stat: Callable[[str], Any] | None = None, rootfs: str = "/",
         **options: object) -> NodeCollector:
    """A node collector on `root`/proc and `root`/sys (statvfs answered by `stat`, else a tiny filesystem)."""
    ctx = helpers.make_context(procfs=os.path.join(root, "proc"), sysfs=os.path.join(root, "sys"), rootfs=rootfs,
                               cls=NodeCollector, **options)
    return NodeCollector(ctx, stat=stat or (lambda _path: TINY_FS))


def scrape(collector: NodeCollector, success: float = 1.0) -> str:
    """One scrape as the server renders it; the collector is closed, the text promtool-clean, its success
    as given (1; 0 where a file read fails)."""
    try:
        text = helpers.render(collector)
    finally:
        collector.close()
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"node": success}
    return text


def one(text: str, name: str, **labels: str) -> float:
    """The value of the one sample of `name` whose labels include `labels`."""
    found = helpers.values(text, name, **labels)
    assert len(found) == 1, (name, labels, found)
    return found[0]
