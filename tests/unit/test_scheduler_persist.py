"""The scheduler adapter's scrape path waits on nothing its refresh holds: the state file is written with
the ledger lock released, and collect() answers while the ledger is locked, so a slow disk never stalls
a scrape (and the loop may serve the body prepared from it)."""

from __future__ import annotations

import os
import sys

import helpers
from test_slurm_collector import collector, fake  # noqa: F401 - `fake` is the stand-in Slurm fixture

_watch: dict[str, object] = {}


def _audit(event: str, args: tuple) -> None:
    """Note whether the ledger lock is held when the state file's temporary copy is opened for writing."""
    target = _watch.get("dir")
    if event == "open" and target and args and isinstance(args[0], str) and args[0].startswith(target) \
            and args[0].endswith(".partial"):
        _watch["held"].append(_watch["lock"].locked())


sys.addaudithook(_audit)   # audit hooks cannot be removed: it is inert unless a test sets _watch


def test_the_state_file_is_written_with_the_ledger_lock_released(fake, tmp_path):  # noqa: F811
    c = collector(fake, tmp_path)
    _watch.update(dir=os.path.dirname(os.path.abspath(c.state.path)), lock=c._lock, held=[])
    try:
        assert c.source.refresh_now(), c.source.last_error
    finally:
        held = _watch["held"]
        _watch.clear()
    assert held and not any(held)   # saved (at least once per refresh), never under the lock


def test_collect_answers_while_the_ledger_is_locked(fake, tmp_path):  # noqa: F811
    c = collector(fake, tmp_path)
    assert c.source.refresh_now(), c.source.last_error
    with c._lock:   # as a refresh holds it while it counts finished jobs
        text = helpers.render(c, timeout=30)
    assert helpers.collector_success(text) == {"slurm": 1}
    assert helpers.values(text, "hpcwatch_state_save_failures_total", collector="slurm") == [0]
    assert sum(helpers.values(text, "hpc_scheduler_jobs_finished_total")) == 32
