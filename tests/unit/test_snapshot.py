"""SnapshotSource: one refresh per interval whatever the scrape load; failures keep the last good value;
FamilyCache: families built once per snapshot."""

import threading
import time

import pytest
from hpcwatch.exporters.snapshot import FamilyCache, SnapshotSource
from prometheus_client.core import GaugeMetricFamily


def test_concurrent_reads_cost_no_refresh():
    calls = []
    first = threading.Event()

    def refresh():
        calls.append(1)
        first.set()
        return len(calls)

    src = SnapshotSource("t", refresh, interval=3600)
    src.start()
    try:
        assert first.wait(30), "the background loop never refreshed"
        seen = []

        def reader():
            seen.extend(src.value for _ in range(2000))

        threads = [threading.Thread(target=reader) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        src.stop()
    assert len(seen) == 40_000 and set(seen) == {1}  # every read served the one snapshot
    assert len(calls) == 1 and src.refreshes == 1   # 40,000 reads, one refresh


def test_loop_refreshes_once_per_interval():
    starts: list[float] = []
    five = threading.Event()

    def refresh():
        starts.append(time.monotonic())
        if len(starts) >= 5:
            five.set()
        return len(starts)

    src = SnapshotSource("t", refresh, interval=0.05)
    src.start()
    try:
        assert five.wait(60), f"only {len(starts)} refreshes"
    finally:
        src.stop()
    # Never sooner than the interval (a lower bound holds on any machine, however loaded).
    gaps = [b - a for a, b in zip(starts, starts[1:])]
    assert min(gaps) >= 0.05 * 0.99, gaps


def test_stop_ends_the_loop_without_waiting_out_the_interval():
    ran = threading.Event()
    src = SnapshotSource("t", lambda: ran.set(), interval=3600)
    src.start()
    assert ran.wait(30)
    src.stop(timeout=30)
    assert not src._thread.is_alive()  # stop() woke the hour-long wait


def test_family_cache_builds_once_per_snapshot_object():
    builds = []
    cache = FamilyCache()
    snap_a, snap_b = {"jobs": 1}, {"jobs": 1}  # equal but distinct: a new refresh

    def build(snap):
        builds.append(snap)
        return [GaugeMetricFamily("hpc_x", "X.", value=snap["jobs"])]

    first = cache.get((snap_a,), lambda: build(snap_a))
    assert cache.get((snap_a,), lambda: build(snap_a)) is first
    assert cache.get((snap_b,), lambda: build(snap_b)) is not first
    assert builds == [snap_a, snap_b]


def test_failure_keeps_last_good_snapshot_and_reports_error():
    state = {"fail": False, "n": 0}

    def refresh():
        state["n"] += 1
        if state["fail"]:
            raise RuntimeError("slurmctld down")
        return {"jobs": state["n"]}

    src = SnapshotSource("slurm_squeue", refresh, interval=60)
    assert src.refresh_now()
    good_ts = src.last_success
    state["fail"] = True
    assert not src.refresh_now()
    assert src.value == {"jobs": 1}
    assert src.last_success == good_ts
    assert not src.ok
    assert "slurmctld down" in src.last_error
    assert src.failures == 1
    state["fail"] = False
    assert src.refresh_now()
    assert src.ok and src.value == {"jobs": 3}


def test_interval_must_be_positive():
    with pytest.raises(ValueError, match="interval"):
        SnapshotSource("x", lambda: 1, interval=0)


def test_subscribers_hear_of_every_refresh_good_or_failed_and_cannot_break_it():
    state = {"fail": False}
    heard: list[tuple[bool, object]] = []

    def refresh():
        if state["fail"]:
            raise RuntimeError("down")
        return object()

    src = SnapshotSource("t", refresh, interval=60)
    src.subscribe(lambda: heard.append((src.ok, src.value)))
    src.subscribe(lambda: 1 / 0)   # a broken subscriber is logged; the refresh and the others go on
    assert src.refresh_now()
    state["fail"] = True
    assert not src.refresh_now()
    assert [ok for ok, _ in heard] == [True, False]
    assert heard[0][1] is heard[1][1]   # the failed refresh kept the last good value, already published
    assert src.state() == ("t", src.last_success, False, src.last_duration)
