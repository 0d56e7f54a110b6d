"""Option value types: what each accepts and the error each gives (argparse prints it, naming the flag)."""

from __future__ import annotations

import pytest
from hpcwatch.exporters import options as opt
from hpcwatch.exporters.registry import CollectorContext, Option, resolve_options
from hpcwatch.exporters.slurm.collector import SlurmCollector
from hypothesis import given
from hypothesis import strategies as st


@pytest.mark.parametrize(("text", "seconds"), [
    ("30", 30.0), ("0.5", 0.5), ("30s", 30.0), ("5m", 300.0), ("1h30m", 5400.0), ("1d", 86400.0),
    ("500ms", 0.5), ("1w", 604800.0), ("1y", 31536000.0), ("2h0m5s", 7205.0), (" 10s ", 10.0), ("0", 0.0),
    ("1.5m", 90.0), ("0.5s", 0.5),
])
def test_duration_takes_seconds_and_prometheus_durations(text, seconds):
    assert opt.duration(text) == seconds


@pytest.mark.parametrize("text", ["", "soon", "5x", "1m1h", "-1", "-5s", "nan", "inf", "1.5m30s", "s", "5 m"])
def test_duration_rejects(text):
    with pytest.raises(ValueError, match="is not a duration"):
        opt.duration(text)


@given(st.integers(min_value=0, max_value=10**9))
def test_format_duration_round_trips(ms):
    seconds = ms / 1000
    assert opt.duration(opt.format_duration(seconds)) == pytest.approx(seconds)


def test_format_duration_reads_like_prometheus():
    assert [opt.format_duration(s) for s in (30, 600, 5400, 0.5, 86400, 0)] == ["30s", "10m", "1h30m", "500ms",
                                                                                 "1d", "0s"]


def test_other_types():
    assert opt.boolean("on") is True and opt.boolean("FALSE") is False
    assert opt.count("0") == 0 and opt.positive_count("3") == 3
    assert opt.regexp("") is None and opt.regexp("^a").pattern == "^a"
    assert opt.names(" a, b,,") == ("a", "b")
    assert opt.buckets("1m,5m") == (60.0, 300.0) == opt.buckets("5m,60")
    assert opt.auto(opt.duration)("auto") is None and opt.auto(opt.duration)("2m") == 120.0
    for parse, bad, says in ((opt.boolean, "maybe", "not a boolean"), (opt.positive_count, "0", "too small"),
                             (opt.count, "1.5", "not a whole number"), (opt.regexp, "(", "regular expression"),
                             (opt.buckets, "5,5", "positive and distinct"), (opt.buckets, "0,5", "positive")):
        with pytest.raises(ValueError, match=says):
            parse(bad)


def test_context_is_complete_typed_and_names_the_flag_of_a_bad_value():
    ctx = CollectorContext.of(SlurmCollector, agent="cluster", **{"refresh-interval": "2m", "per-user": "on"})
    assert ctx.option("refresh-interval") == 120.0 and ctx.option("per-user") is True
    assert set(ctx.options) == {o.name for o in SlurmCollector.options}
    assert ctx.option("wait-buckets")[0] == 60.0  # the declared default, typed
    with pytest.raises(ValueError, match="--collector.slurm.wait-buckets: 'abc'"):
        resolve_options(SlurmCollector, {"wait-buckets": "abc"})
    with pytest.raises(ValueError, match="unknown option"):
        resolve_options(SlurmCollector, {"refresh": "1m"})
    with pytest.raises(ValueError, match="lacks option"):
        SlurmCollector(CollectorContext(agent="cluster"))


def test_option_shows_its_default_as_a_flag_value():
    assert Option("t", 30.0, "h", type=opt.duration).shown_default() == "30s"
    assert Option("s", False, "h", type=bool).shown_default() == "off"
    assert Option("m", None, "h", type=opt.auto(opt.duration), format=opt.show_auto).shown_default() == "auto"
