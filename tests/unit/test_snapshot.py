"""SnapshotSource: one refresh per interval whatever the scrape load; failures keep the last good value."""

import threading
import time

import pytest
from hpcwatch.exporters.snapshot import SnapshotSource


def test_concurrent_reads_cost_one_refresh_per_interval():
    calls = []
    src = SnapshotSource("t", lambda: calls.append(1) or len(calls), interval=0.3)
    src.start()
    try:
        deadline = time.monotonic() + 1.0
        seen = []

        def reader():
            while time.monotonic() < deadline:
                seen.append(src.value)

        threads = [threading.Thread(target=reader) for _ in range(20)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
    finally:
        src.stop()
    # 1.0 s at a 0.3 s interval: 4 refreshes (t=0, .3, .6, .9), allow one either side for scheduling.
    assert 3 <= len(calls) <= 5
    assert len(seen) > 100  # reads never waited on the source


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
