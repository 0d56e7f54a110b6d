"""Hung mounts: statvfs that never returns is skipped by deadline, counted, and not retried until it returns."""

from __future__ import annotations

import os
import threading
import time

import helpers
from hpcwatch.exporters.node.collector import NodeCollector
from hpcwatch.exporters.node.mountstat import MountStatter

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "node", "real")
GOOD = os.statvfs_result((4096, 4096, 1000, 500, 400, 100, 50, 50, 0, 255))


class HangingStat:
    """A statvfs stand-in: paths in `hang` block until released, like a dead NFS server; counts calls."""

    def __init__(self, hang: set[str]) -> None:
        self.hang = hang
        self.release = threading.Event()
        self.calls: dict[str, int] = {}
        self.inside: set[str] = set()  # hung calls not yet returned
        self.lock = threading.Lock()

    def __call__(self, path: str) -> os.statvfs_result:
        with self.lock:
            self.calls[path] = self.calls.get(path, 0) + 1
        if path in self.hang:
            with self.lock:
                self.inside.add(path)
            self.release.wait(120)
            with self.lock:
                self.inside.discard(path)
        return GOOD


def wait_until(predicate, limit: float = 30.0) -> None:
    """Poll a condition that another thread makes true (a bound on a hang, not a timing assertion)."""
    end = time.monotonic() + limit
    while not predicate():
        assert time.monotonic() < end, "condition never became true"
        time.sleep(0.01)


def render_in_thread(collector: NodeCollector) -> str:
    out: list[str] = []
    t = threading.Thread(target=lambda: out.append(helpers.render(collector)), daemon=True)
    t.start()
    t.join(60)
    assert not t.is_alive(), "the scrape blocked on a hung mount"
    return out[0]


def test_statter_returns_without_the_hung_call_and_skips_it_until_it_returns() -> None:
    stat = HangingStat({"/nfs"})
    statter = MountStatter(stat, timeout=0.05)
    first = statter.stat_all(["/", "/nfs", "/scratch"])
    assert stat.inside == {"/nfs"}  # returned while the call is still stuck
    assert first.timed_out == ["/nfs"] and set(first.results) == {"/", "/scratch"}
    second = statter.stat_all(["/", "/nfs"])
    assert second.still_hung == ["/nfs"] and second.timed_out == [] and stat.calls["/nfs"] == 1
    stat.release.set()
    wait_until(lambda: not statter.hung)
    third = statter.stat_all(["/nfs"])
    assert third.results == {"/nfs": GOOD} and stat.calls["/nfs"] == 2
    statter.close()


def test_statter_hands_back_exceptions_as_results() -> None:
    def stat(path: str):
        raise OSError(5, "Input/output error", path)

    statter = MountStatter(stat, timeout=5)
    res = statter.stat_all(["/broken"])
    assert isinstance(res.results["/broken"], OSError) and not res.timed_out
    statter.close()


def test_statter_reuses_idle_workers() -> None:
    statter = MountStatter(lambda p: GOOD, timeout=5)
    for _ in range(20):
        statter.stat_all(["/a", "/b"])
    assert statter.workers <= 2
    statter.close()


def test_hung_mount_scrape_returns_counts_timeout_and_recovers() -> None:
    stat = HangingStat({"/home"})
    ctx = helpers.make_context(procfs=os.path.join(FIX, "proc"), sysfs=os.path.join(FIX, "sys"),
                               cls=NodeCollector, **{"filesystem-mount-timeout": 0.1})
    c = NodeCollector(ctx, stat=stat)
    home = {"mountpoint": "/home", "fstype": "nfs4", "device": "nfs01:/export/home"}
    try:
        text = render_in_thread(c)
        assert stat.inside == {"/home"}, "the scrape waited for the hung statvfs to return"
        helpers.assert_promtool_clean(text)
        assert helpers.collector_success(text) == {"node": 1.0}
        assert helpers.values(text, "hpc_node_filesystem_stat_timeouts_total", **home) == [1]
        # node_exporter's words for a hung mount, in its device_error label
        assert helpers.values(text, "node_filesystem_device_error", device_error="mountpoint timeout", **home) == [1]
        assert not helpers.values(text, "node_filesystem_size_bytes", **home)
        assert helpers.values(text, "node_filesystem_size_bytes", mountpoint="/scratch") == [1000 * 4096]

        text = render_in_thread(c)  # still hung: not called again, not counted again
        assert stat.calls["/home"] == 1
        assert helpers.values(text, "hpc_node_filesystem_stat_timeouts_total", **home) == [1]
        assert helpers.values(text, "node_filesystem_device_error", **home) == [1]

        stat.release.set()
        wait_until(lambda: not c.statter.hung)
        text = render_in_thread(c)
        helpers.assert_promtool_clean(text)
        assert stat.calls["/home"] == 2
        assert helpers.values(text, "node_filesystem_size_bytes", **home) == [1000 * 4096]
        assert helpers.values(text, "node_filesystem_device_error", **home) == [0]
        assert helpers.values(text, "hpc_node_filesystem_stat_timeouts_total", **home) == [1]
    finally:
        stat.release.set()
        c.close()


def test_stat_hook_returning_garbage_is_a_device_error_not_a_crash() -> None:
    ctx = helpers.make_context(procfs=os.path.join(FIX, "proc"), sysfs=os.path.join(FIX, "sys"), cls=NodeCollector)
    c = NodeCollector(ctx, stat=lambda path: "not a statvfs result")
    text = helpers.render(c)
    c.close()
    helpers.assert_promtool_clean(text)
    assert helpers.collector_success(text) == {"node": 1.0}
    assert helpers.values(text, "node_filesystem_device_error", mountpoint="/") == [1]
