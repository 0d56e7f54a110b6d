"""Lustre server job_stats: the streaming parser across 2.10-2.15 layouts, job_id splitting, the top-N cap."""

from __future__ import annotations

import os

import pytest
from hpcwatch.exporters.lustre.jobs import (
    REMAINDER_JOBID,
    JobEntry,
    JobIdFormat,
    JobIdFormatError,
    JobKey,
    JobTotals,
    aggregate_jobs,
    cap_jobs,
)
from hpcwatch.exporters.lustre.jobstats import (
    JobCounter,
    JobIdError,
    decode_job_id,
    parse_job_stats,
    parse_job_stats_text,
)
from hypothesis import given, settings
from hypothesis import strategies as st

FIX = os.path.join(os.path.dirname(__file__), "..", "fixtures", "lustre")


def fixture(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


def records(name: str, target: str = "T", errors: list | None = None):
    return list(parse_job_stats_text(fixture(name), target, on_error=(errors.append if errors is not None else None)))


def counters(rec) -> dict[str, tuple[int, str, int]]:
    return {c.name: (c.samples, c.unit, c.total) for c in rec.counters}


def test_2_10_unquoted_ids_integer_snapshot_and_reqs_without_sum():
    errors: list[str] = []
    recs = records("job_stats_ost_2.10.txt", "scratch-OST0000", errors)
    assert errors == []
    assert [r.job_id for r in recs] == ["1234567", "cp.0"]
    assert counters(recs[0]) == {"read_bytes": (10, "bytes", 5242880), "write_bytes": (4, "bytes", 4194304),
                                 "getattr": (3, "reqs", 0), "setattr": (1, "reqs", 0), "sync": (2, "reqs", 0),
                                 "statfs": (5, "reqs", 0)}
    assert counters(recs[1]) == {"write_bytes": (1, "bytes", 4096)}
    assert {r.target for r in recs} == {"scratch-OST0000"}


def test_2_12_usecs_counters_with_sumsq():
    recs = records("job_stats_ost_2.12.txt")
    assert [r.job_id for r in recs] == ["1234567.1000", "dd.0"]
    assert counters(recs[0])["read"] == (8, "usecs", 800)
    assert counters(recs[0])["read_bytes"] == (8, "bytes", 8 * 1048576)
    assert counters(recs[1])["punch"] == (1, "usecs", 100)


def test_2_14_float_snapshot_with_start_and_elapsed_time():
    errors: list[str] = []
    recs = records("job_stats_ost_2.14.txt", errors=errors)
    assert errors == []
    assert [r.job_id for r in recs] == ["4242:1000:cn001", "4242:1000:cn002"]
    assert counters(recs[0])["prealloc"] == (1, "usecs", 300)


def test_2_15_quoted_and_escaped_ids_and_histograms():
    errors: list[str] = []
    recs = records("job_stats_ost_2.15.txt", errors=errors)
    assert errors == []
    assert [r.job_id for r in recs] == ["4243:1001:cn003", "my job.1001", "5000.1002"]
    assert counters(recs[2])["write_bytes"] == (2, "bytes", 2 * 1048576)
    assert counters(recs[1]) == {"write_bytes": (1, "bytes", 524288), "write": (1, "usecs", 20)}


def test_mdt_job_stats():
    recs = records("job_stats_mdt_2.15.txt", "scratch-MDT0000")
    assert [r.job_id for r in recs] == ["4242.1000", "4243.1001", "rsync.0"]
    assert counters(recs[2])["getattr"] == (20000, "usecs", 220000)


def test_lctl_headers_switch_target():
    recs = list(parse_job_stats_text(fixture("lctl_get_param_job_stats.txt")))
    assert [(r.target, r.job_id) for r in recs] == [
        ("scratch-OST0000", "4242:1000:cn001"), ("scratch-OST0000", "4242:1000:cn002"),
        ("scratch-OST0001", "4243:1001:cn003"), ("scratch-OST0001", "my job.1001"),
        ("scratch-OST0001", "5000.1002")]


def test_broken_records_are_skipped_and_reported_others_kept():
    errors: list[str] = []
    recs = records("job_stats_broken.txt", errors=errors)
    assert [r.job_id for r in recs] == ["good.1", "good.1"]
    assert len(errors) == 4, errors


def test_empty_and_header_only_input():
    assert list(parse_job_stats_text("")) == []
    assert list(parse_job_stats_text("job_stats:\n")) == []
    assert list(parse_job_stats_text("obdfilter.x-OST0000.job_stats=\njob_stats:\n")) == []


@pytest.mark.parametrize("name", ["job_stats_ost_2.10.txt", "job_stats_ost_2.15.txt", "lctl_get_param_job_stats.txt",
                                  "job_stats_broken.txt", "job_stats_mdt_2.15.txt"])
def test_lines_and_blocks_give_the_same_records(name):
    text = fixture(name)
    whole = list(parse_job_stats_text(text, "T"))
    lines = list(parse_job_stats(text.splitlines(keepends=True), "T"))
    assert lines == whole


@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=40))
@settings(max_examples=60, deadline=None)
def test_any_chunking_gives_the_same_records(sizes):
    text = fixture("lctl_get_param_job_stats.txt") + fixture("job_stats_broken.txt")
    pieces, i = [], 0
    for s in sizes * (len(text) // sum(sizes) + 1):
        pieces.append(text[i:i + s])
        i += s
        if i >= len(text):
            break
    e1: list[str] = []
    e2: list[str] = []
    assert list(parse_job_stats(pieces, "T", e1.append)) == list(parse_job_stats_text(text, "T", e2.append))
    assert len(e1) == len(e2)


@st.composite
def kernel_job(draw) -> str:
    """One job record in the kernel's layout, with the corners the clean-block fast path must refuse:
    counter names ending in `_time`, odd histograms, escaped, empty and repeated job_ids."""
    job_id = draw(st.sampled_from(['"4242:1000:cn001"', "4242.1000", '"my\\x20job.1"', "dup.1", '""', '"bad', "cp.0"]))
    lines = [f"- job_id:          {job_id}\n"]
    lines += draw(st.lists(st.sampled_from(["  snapshot_time:   1700000000.123456789 secs.nsecs\n",
                                            "  start_time:      1699990000\n", "  elapsed_time:    92.5\n"]),
                           max_size=3))
    for _ in range(draw(st.integers(0, 6))):
        name = draw(st.sampled_from(["read_bytes", "write_bytes", "read", "getattr", "open", "x_time", "a1"]))
        samples = draw(st.sampled_from([0, 0, 1, 37]))
        unit = draw(st.sampled_from(["bytes", "usecs", " reqs"]))
        line = f"  {name + ':':<17}{{ samples: {samples:>11}, unit: {unit:>5}"
        if unit != " reqs":
            line += f", min: {samples:>8}, max: {samples:>8}, sum: {samples * 4096:>16}, sumsq: {samples:>18}"
            line += draw(st.sampled_from(["", ", hist: { 4K: 1 }", ", hist: { 4K: 1, 8K: 2, }",
                                          ", hist: { a_time: 1 }"]))
        lines.append(line + " }\n")
    return "".join(lines)


@given(st.lists(kernel_job(), min_size=1, max_size=12))
@settings(max_examples=150, deadline=None)
def test_clean_block_fast_path_matches_record_by_record_path(jobs):
    # Clean kernel-layout blocks are parsed by one split; CRLF line ends send the same text record by record.
    text = "job_stats:\n" + "".join(jobs)
    e1: list[str] = []
    e2: list[str] = []
    fast = list(parse_job_stats_text(text, "T", e1.append))
    slow = list(parse_job_stats_text(text.replace("\n", "\r\n"), "T", e2.append))
    assert fast == slow
    assert len(e1) == len(e2)


def test_streaming_uses_small_blocks(monkeypatch):
    # Many records in many small pieces: each yielded before the input is exhausted.
    rec = fixture("job_stats_ost_2.15.txt").split("job_stats:\n", 1)[1]
    consumed = []

    def pieces():
        for i in range(2000):
            consumed.append(i)
            yield rec
    it = parse_job_stats(pieces(), "T")
    next(it)
    assert len(consumed) < 2000


@given(st.text(max_size=600))
@settings(max_examples=300, deadline=None)
def test_fuzz_arbitrary_text_never_raises(text):
    for rec in parse_job_stats_text(text, "T", on_error=lambda r: None):
        assert rec.job_id
        assert all(c.samples > 0 and c.total >= 0 for c in rec.counters)


@given(st.data())
@settings(max_examples=200, deadline=None)
def test_fuzz_mutated_fixture_never_raises(data):
    text = fixture("job_stats_ost_2.15.txt")
    pos = data.draw(st.integers(0, len(text) - 1))
    junk = data.draw(st.text(max_size=20))
    cut = data.draw(st.integers(0, 30))
    mutated = text[:pos] + junk + text[pos + cut:]
    errors: list[str] = []
    recs = list(parse_job_stats_text(mutated, "T", on_error=errors.append))
    assert len(recs) <= 4


@given(st.text(max_size=60))
@settings(max_examples=200, deadline=None)
def test_fuzz_decode_job_id_only_raises_its_error(raw):
    try:
        assert decode_job_id(raw)
    except JobIdError:
        pass


# ---------------------------------------------------------------- job_id split
@pytest.mark.parametrize("fmt,job_id,key", [
    ("%j", "4242", ("4242", "", "")),
    ("%j.%u", "4242.1000", ("4242", "1000", "")),
    ("%j.%u", "4242.5.1000", ("4242.5", "1000", "")),
    ("%e.%u", "cp.1000", ("cp", "1000", "")),
    ("%j@%H", "4242@cn001", ("4242", "", "cn001")),
    ("%j:%u:%H", "4242:1000:cn001", ("4242", "1000", "cn001")),
    ("%j:%u:%H,%e.%u", "bash.1000", ("bash", "1000", "")),
    ("%j:%u:%H", "no-match-here", ("no-match-here", "", "")),
    ("%j.%u", "4242.notanumber", ("4242.notanumber", "", "")),
])
def test_jobid_format_split(fmt, job_id, key):
    assert JobIdFormat(fmt).split(job_id) == JobKey(*key)


@pytest.mark.parametrize("fmt", ["%j.%q", "%j%"])
def test_jobid_format_rejects_unknown_codes(fmt):
    with pytest.raises(JobIdFormatError):
        JobIdFormat(fmt)


@given(st.text(max_size=40), st.sampled_from(["%j", "%j.%u", "%e.%u", "%j:%u:%H", "%j@%H,%e.%u"]))
@settings(max_examples=200, deadline=None)
def test_fuzz_split_never_raises(job_id, fmt):
    key = JobIdFormat(fmt).split(job_id)
    assert len(key.jobid) <= 128


# ---------------------------------------------------------------- aggregation and the cap
def test_split_labels_per_host_keep_hosts_apart():
    recs = records("job_stats_ost_2.14.txt", "OST0")
    [t] = aggregate_jobs(recs, JobIdFormat("%j:%u:%H"), 10, 10)
    assert set(t.jobs) == {JobKey("4242", "1000", "cn001"), JobKey("4242", "1000", "cn002")}
    assert t.jobs[JobKey("4242", "1000", "cn001")].bytes == {"write": 32 * 1048576}


def test_quoted_and_unquoted_spellings_of_one_id_merge():
    text = fixture("job_stats_ost_2.10.txt")
    quoted = text.replace("- job_id:          1234567", '- job_id:          "1234567"')
    recs = list(parse_job_stats_text(text + quoted.split("job_stats:\n", 1)[1], "OST0"))
    [t] = aggregate_jobs(recs, JobIdFormat("%j"), 10, 10)
    assert t.total_jobs == 2
    assert t.jobs[JobKey("1234567", "", "")].bytes["read"] == 2 * 5242880


def test_same_job_id_twice_in_one_target_is_summed_not_duplicated():
    recs = records("job_stats_broken.txt", "OST0", [])
    [t] = aggregate_jobs(recs, JobIdFormat("%j"), 10, 10)
    assert list(t.jobs) == [JobKey("good.1", "", "")]
    assert t.jobs[JobKey("good.1", "", "")].bytes == {"write": 4096 + 8192}
    assert t.jobs[JobKey("good.1", "", "")].ops == {"write": 3, "getattr": 5}


def test_bytes_samples_count_as_operations_only_without_own_counter():
    recs = records("job_stats_ost_2.12.txt", "OST0")
    [t] = aggregate_jobs(recs, JobIdFormat("%j"), 10, 10)
    job = t.jobs[JobKey("1234567.1000", "", "")]
    assert job.ops["read"] == 8 and job.ops["write"] == 2  # from the usecs counters, not doubled
    old = aggregate_jobs(records("job_stats_ost_2.10.txt", "OST0"), JobIdFormat("%j"), 10, 10)[0]
    assert old.jobs[JobKey("1234567", "", "")].ops["read"] == 10  # 2.10: read_bytes samples are the reads


def _entry(bytes_: int, md: int) -> JobEntry:
    e = JobEntry()
    e.add((JobCounter("write_bytes", 1, "bytes", bytes_), JobCounter("getattr", md, "usecs", 0)))
    return e


def test_cap_keeps_top_by_bytes_and_by_metadata_and_sums_the_rest():
    jobs = {JobKey(f"j{i}", "", ""): _entry(bytes_=i * 10, md=(100 - i)) for i in range(100)}
    capped = cap_jobs("OST0", jobs, top_bytes=3, top_metadata=2)
    assert {k.jobid for k in capped.jobs} == {"j99", "j98", "j97", "j0", "j1"}
    assert capped.total_jobs == 100
    # Nothing lost: kept plus remainder equals the total.
    all_bytes = sum(e.total_bytes for e in jobs.values())
    assert sum(t.total_bytes for t in capped.jobs.values()) + capped.remainder.total_bytes == all_bytes
    assert capped.remainder.ops["getattr"] + sum(t.ops["getattr"] for t in capped.jobs.values()) == \
        sum(e.metadata_ops for e in jobs.values())


def test_job_named_like_the_remainder_is_folded_into_it():
    jobs = {JobKey(REMAINDER_JOBID, "", ""): _entry(1000, 1000), JobKey("a", "", ""): _entry(1, 1)}
    capped = cap_jobs("OST0", jobs, 5, 5)
    assert list(capped.jobs) == [JobKey("a", "", "")]
    assert capped.remainder.total_bytes == 1000


@given(st.lists(st.tuples(st.integers(0, 50), st.integers(0, 10**6), st.integers(0, 10**4)), max_size=60),
       st.integers(0, 10), st.integers(0, 10))
@settings(max_examples=150, deadline=None)
def test_cap_conserves_totals(spec, nb, nm):
    jobs: dict[JobKey, JobEntry] = {}
    for jid, b, m in spec:
        e = jobs.setdefault(JobKey(str(jid), "", ""), JobEntry())
        e.add(_entry(b, m).records[0])
    capped = cap_jobs("T", jobs, nb, nm)
    assert len(capped.jobs) <= nb + nm
    rem = capped.remainder or JobTotals()
    assert sum(t.total_bytes for t in capped.jobs.values()) + rem.total_bytes == \
        sum(e.total_bytes for e in jobs.values())
    assert REMAINDER_JOBID not in {k.jobid for k in capped.jobs}
