"""The summary writer: due jobs only (delay, limit), one batched sacct call per refresh, each job once in
the dataset even when a crash makes the outbox hand it over again."""

from __future__ import annotations

import os

import pytest
from hpcwatch.accounting.sacct import parse_summary_sacct
from hpcwatch.accounting.store import StoreError, SummaryStore
from hpcwatch.accounting.writer import SummaryWriter
from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR, parse_sacct, sacct_to_finished

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "accounting")


def read(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


@pytest.fixture
def finished():
    runs, _ = sacct_to_finished(parse_sacct(read("sacct-counter-22.05.txt"))[0], "hpcw")
    return runs


class RecordingSacct:
    """The batched sacct reader's boundary: answers from the real output, records what it was asked."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []
        self.details, _ = parse_summary_sacct(read("sacct-summary-22.05.txt"), FIXTURE_SEPARATOR)

    def __call__(self, ids):
        self.calls.append(list(ids))
        return {i: self.details[i] for i in ids if i in self.details}, 0


def test_one_batched_sacct_call_per_refresh_and_each_job_once(tmp_path, finished):
    sacct = RecordingSacct()
    now = max(j.end for j in finished) + 3600
    w = SummaryWriter(SummaryStore(str(tmp_path)), sacct, None, None, delay=60, clock=lambda: now)
    keys = w.write(finished)
    assert sorted(keys) == sorted(j.key for j in finished)
    assert len(sacct.calls) == 1 and sorted(sacct.calls[0]) == sorted(j.key.split("@")[0] for j in finished)
    assert w.stats.written == len(finished) == 8
    store = SummaryStore(str(tmp_path))
    burn = store.find("1")
    assert burn.name == "burn.sh" and burn.cpus_alloc == 2 and any("Prometheus not configured" in m
                                                                  for m in burn.missing)
    # The outbox hands the same jobs over again after a crash: nothing is written twice.
    again = SummaryWriter(SummaryStore(str(tmp_path)), RecordingSacct(), None, None, delay=60, clock=lambda: now)
    assert sorted(again.write(finished)) == sorted(keys)
    assert again.stats.written == 0 and again.stats.duplicates == 8
    assert store.sql("SELECT count(*) FROM summaries")[0][0] == 8


def test_delay_and_limit(tmp_path, finished):
    last = max(j.end for j in finished)
    w = SummaryWriter(SummaryStore(str(tmp_path)), RecordingSacct(), None, None, limit=3, delay=60,
                      clock=lambda: last + 30)
    due = w.ready(finished)
    assert len(due) == 3 and all(j.end + 60 <= last + 30 for j in due)
    assert [j.end for j in due] == sorted(j.end for j in due)       # oldest first
    assert w.ready([j for j in finished if j.end == last]) == []     # ended 30 s ago: not yet


def test_a_failed_append_acks_nothing(tmp_path, finished):
    blocker = tmp_path / "ds"
    blocker.write_text("a file where the dataset directory should be")
    now = max(j.end for j in finished) + 3600
    w = SummaryWriter(SummaryStore(str(blocker)), RecordingSacct(), None, None, clock=lambda: now)
    with pytest.raises(StoreError):
        w.write(finished)
    assert w.stats.failures == 1 and w.stats.written == 0


def test_without_sacct_the_counters_record_is_summarised(tmp_path, finished):
    from hpcwatch.exporters.command import CommandError

    def broken(ids):
        raise CommandError("sacct timed out after 20s")

    now = max(j.end for j in finished) + 3600
    w = SummaryWriter(SummaryStore(str(tmp_path)), broken, None, None, clock=lambda: now)
    assert len(w.write(finished)) == 8
    s = SummaryStore(str(tmp_path)).find("3")
    assert s.outcome == "oom" and any(m == "sacct: sacct timed out after 20s" for m in s.missing)
