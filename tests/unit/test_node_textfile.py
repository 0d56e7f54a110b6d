"""The textfile collector: node_exporter's own fixtures and expected outputs, the rules we add (files that
clash with our families, type conflicts, repeated series), the parser against expfmt (promtool), fuzzing."""

from __future__ import annotations

import argparse
import math
import os
import re
import subprocess

import helpers
import pytest
from hpcwatch.exporters.registry import load_all
from hpcwatch.exporters.serve import add_serve_arguments, collector_options
from hpcwatch.exporters.textfile.collector import TextfileCollector, go_float
from hpcwatch.exporters.textfile.textformat import TextFormatError, parse_text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

FIX = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "fixtures", "node", "textfile"))
NE = os.path.join(FIX, "node_exporter")


def scrape(directory: str) -> str:
    c = TextfileCollector(helpers.make_context(cls=TextfileCollector, directory=directory))
    text = helpers.render(c)
    assert helpers.collector_success(text) == {"textfile": 1.0}
    list(text_string_to_metric_families(text))  # valid exposition whatever the files held
    return text


def series(text: str) -> dict[tuple[str, tuple], float]:
    """Every sample but the exporter's own health and the file mtimes (which are the files' real ones)."""
    out = {}
    for key, v in helpers.samples(text).items():
        if key[0].startswith("hpcwatch_") or key[0] == "node_textfile_mtime_seconds":
            continue
        out[key] = v
    return out


def expected(out_file: str) -> tuple[dict[tuple[str, tuple], float], set[str], dict[str, str]]:
    """node_exporter's expected samples, mtime files (as paths under NE) and HELP by family."""
    with open(os.path.join(NE, out_file)) as fh:
        text = fh.read()
    want = {k: v for k, v in helpers.samples(text).items() if k[0] != "node_textfile_mtime_seconds"}
    files = {os.path.normpath(os.path.join(NE, os.path.relpath(dict(labels)["file"], "fixtures/textfile")))
             for (n, labels) in helpers.samples(text) if n == "node_textfile_mtime_seconds"}
    helps = {fam.name: fam.documentation for fam in text_string_to_metric_families(text)}
    return want, files, helps


CASES = ["two_metric_files", "different_metric_types", "inconsistent_metrics", "histogram",
         "histogram_extra_dimension", "summary", "summary_extra_dimension", "metrics_merge_empty_help",
         "metrics_merge_no_help", "metrics_merge_same_help", "metrics_merge_different_help",
         "client_side_timestamp", "no_metric_files", "nonexistent_path"]


@pytest.mark.parametrize("case", CASES)
def test_node_exporter_textfile_fixtures(case: str) -> None:
    text = scrape(os.path.join(NE, case))
    want, files, helps = expected(f"{case}.out")
    assert series(text) == want
    got_files = {d["file"] for d in helpers.series_labels(text, "node_textfile_mtime_seconds")}
    assert got_files == files
    for name, doc in helps.items():
        if name.startswith("node_textfile_"):
            continue
        ours = {fam.name: fam.documentation for fam in text_string_to_metric_families(text)}[name]
        # "Metric read from <paths>": node_exporter's test runs from collector/, ours names our paths
        assert ours == doc.replace("fixtures/textfile/", NE + "/")


def test_glob_of_directories() -> None:
    text = scrape(os.path.join(NE, "*_extra_dimension"))
    want, files, _ = expected("glob_extra_dimension.out")
    assert series(text) == want
    assert {d["file"] for d in helpers.series_labels(text, "node_textfile_mtime_seconds")} == files
    text = scrape(",".join(os.path.join(NE, d) for d in ("histogram_extra_dimension", "summary_extra_dimension")))
    assert series(text) == want


def test_mtime_is_the_files_whole_seconds(tmp_path) -> None:
    helpers.write_tree(str(tmp_path), {"a.prom": "x 1\n"})
    os.utime(tmp_path / "a.prom", ns=(1_795_273_500_999_000_000, 1_795_273_500_999_000_000))
    text = scrape(str(tmp_path))
    assert helpers.values(text, "node_textfile_mtime_seconds", file=str(tmp_path / "a.prom")) == [1795273500]


def test_prolog_and_health_check_example() -> None:
    text = scrape(os.path.join(FIX, "slurm-prolog"))
    assert helpers.values(text, "slurm_prolog_check_failures_total", check="gpu_health") == [1]
    assert helpers.values(text, "nhc_check_ok", check="check_hw_physmem 1024GB 1024GB 3%") == [0]
    assert helpers.values(text, "nhc_run_duration_seconds_bucket", le="5") == [280]
    assert helpers.values(text, "node_textfile_scrape_error") == [0]
    assert len(helpers.values(text, "node_textfile_mtime_seconds")) == 2  # README.txt is not read
    helpers.assert_promtool_clean(text)


def test_files_that_define_our_own_families_are_rejected_whole(tmp_path, caplog) -> None:
    helpers.write_tree(str(tmp_path), {
        "a_good.prom": "site_ok 1\n",
        "b_meminfo.prom": "site_other 2\nnode_memory_MemTotal_bytes 1\n",
        "c_cpu.prom": "# TYPE node_cpu_seconds_total counter\nnode_cpu_seconds_total{cpu=\"0\",mode=\"idle\"} 5\n",
        "d_job.prom": "hpc_job_info{jobid=\"1\"} 1\n",
        "e_scripts.prom": "node_apt_upgrades_pending 3\nnode_smartmon_device_active 1\n",  # the usual scripts
    })
    text = scrape(str(tmp_path))
    assert helpers.values(text, "node_textfile_scrape_error") == [1]
    assert {n for (n, _) in series(text)} == {"site_ok", "node_apt_upgrades_pending", "node_smartmon_device_active",
                                             "node_textfile_scrape_error"}
    assert {d["file"] for d in helpers.series_labels(text, "node_textfile_mtime_seconds")} == {
        str(tmp_path / "a_good.prom"), str(tmp_path / "e_scripts.prom")}
    assert any("b_meminfo.prom: family node_memory_MemTotal_bytes is one hpcwatch exports itself" in r.getMessage()
               for r in caplog.records)


def test_type_conflict_repeated_series_and_bad_files(tmp_path, caplog) -> None:
    helpers.write_tree(str(tmp_path), {
        "a.prom": "# TYPE jobs counter\njobs{q=\"a\"} 1\njobs{q=\"a\"} 2\n",
        "b.prom": "# TYPE jobs gauge\njobs{q=\"b\"} 3\n",
        "c.prom": "good 1\nbad{x=\"1\"\n",
        "d.prom": b"name{v=\"\xff\"} 1\n",
    })
    text = scrape(str(tmp_path))
    assert helpers.values(text, "node_textfile_scrape_error") == [1]
    # the repeat and b.prom's gauge are dropped; the counter keeps the name its author gave it
    assert [ln for ln in text.splitlines() if ln.startswith("jobs")] == ['jobs{q="a"} 1.0']
    assert "good" not in helpers.all_names(text)  # c.prom does not parse: skipped whole
    messages = " ".join(r.getMessage() for r in caplog.records)
    assert f"{tmp_path / 'c.prom'}: line 2: " in messages  # names the file and the line
    assert "is a gauge, but" in messages and "appears more than once" in messages and "not UTF-8" in messages


@pytest.mark.parametrize("value,text", [(100.0, "100"), (1.6384e6, "1.6384e+06"), (409600.0, "409600"), (0.5, "0.5"),
                                        (1e-05, "1e-05"), (0.0001, "0.0001"), (2.5e-07, "2.5e-07"),
                                        (float("inf"), "+Inf"), (-1.5, "-1.5"), (0.0, "0"), (123456.7, "123456.7")])
def test_go_float(value: float, text: str) -> None:
    assert go_float(value) == text


def test_a_fifo_named_prom_is_refused_without_hanging(tmp_path) -> None:
    helpers.write_tree(str(tmp_path), {"ok.prom": "site_ok 1\n"})
    os.mkfifo(tmp_path / "pipe.prom")  # opening it for reading would block until a writer came
    text = scrape(str(tmp_path))
    assert helpers.values(text, "site_ok") == [1] and helpers.values(text, "node_textfile_scrape_error") == [1]


def test_no_directory_means_not_available() -> None:
    c = TextfileCollector(helpers.make_context(cls=TextfileCollector))
    assert "no --collector.textfile.directory" in c.available()


def test_flag_is_node_exporters() -> None:
    p = argparse.ArgumentParser()
    add_serve_arguments(p, {"textfile": load_all()["textfile"]})
    args = p.parse_args(["--collector.textfile.directory", "/var/lib/node_exporter/textfile_collector"])
    assert collector_options(args, TextfileCollector) == {"directory": ("/var/lib/node_exporter/textfile_collector",)}


# --- the parser: exact records, errors, and agreement with expfmt (promtool uses it) ------------------

def test_parse_summary_histogram_and_escapes() -> None:
    fams = parse_text_format('# HELP a A\\nb \\\\ c.\n# TYPE a summary\na{x="1",quantile="0.5"} 2\na_sum{x="1"} 3\n'
                             'a_count{x="1"} 4\nb{l="q\\"\\\\\\n"} NaN 1700\n')
    assert fams["a"].help == "A\nb \\ c." and fams["a"].type == "summary"
    m = fams["a"].metrics[0]
    assert (m.labels, m.quantiles, m.sum, m.count) == ({"x": "1"}, [(0.5, 2.0)], 3.0, 4.0)
    b = fams["b"].metrics[0]
    assert b.labels == {"l": 'q"\\\n'} and math.isnan(b.value) and b.timestamp_ms == 1700


@pytest.mark.parametrize("text,line", [("a 1", 1), ("a 1 \n", 1), ("a 0x1A\n", 1), ("a 1_0\n", 1),
                                       ("# TYPE a gauge\n# TYPE a gauge\n", 2), ("a 1\n# TYPE a gauge\n", 2),
                                       ('a{b="\\x"} 1\n', 1), ("{__name__=\"a\"} 1\n", 1), ('a{__name__="b"} 1\n', 1),
                                       ('a{b="1",b="2"} 1\n', 1), ("ok 1\n# TYPE s summary\ns{quantile=\"x\"} 1\n", 3),
                                       ("a 1 2 3\n", 1), ("# TYPE a bogus\n", 1), ("# HELP a-b x\n", 1),
                                       ("a 1e999\n", 1)])
def test_parse_errors_name_the_line(text: str, line: int) -> None:
    with pytest.raises(TextFormatError) as exc:
        parse_text_format(text)
    assert exc.value.line == line


# Lines built from the pieces expfmt decides on: names (valid, suffixed, invalid), label sets (escapes,
# reserved and repeated names, missing quotes or braces), values (Go float forms and near misses),
# timestamps, HELP/TYPE comments.
_NAMES = ["a", "a_sum", "a_count", "a_bucket", "b_total", "x:y", "1a", "a-b", ""]
_LVALS = ['"v"', '"q\\"x"', '"\\n"', '"\\x"', '"', "v", '""', '"1"', '"+Inf"']
_LNAMES = ["l", "le", "quantile", "__name__", "0x", "l ", " l", "é"]
_VALS = ["1", "-1.5", "1e3", "+Inf", "-inf", "NaN", "nan", "Infinity", "0x1", "1_0", "1.", ".5", "", "1e", "+1", "--1",
         "1e999", "1p3"]
_TS = ["", " 123", " -5", " 1.5", " 12 3", "\t7", " ", " 9223372036854775808"]
_COMMENTS = ["", " a", " a doc", " a summary", " a histogram", " a counter", " a gauge ", " a bogus", " a_sum summary",
             " b_total counter", " a\\x", " a \\n doc \\\\", " 1a x"]
_label = st.builds(lambda n, eq, v: n + eq + v, st.sampled_from(_LNAMES), st.sampled_from(["=", " = ", "", "=="]),
                   st.sampled_from(_LVALS))
_labels = st.builds(lambda pad, parts, sep, end, close: pad + "{" + sep.join(parts) + end + close,
                    st.sampled_from(["", " "]), st.lists(_label, max_size=3), st.sampled_from([",", ", "]),
                    st.sampled_from(["", ",", " "]), st.sampled_from(["}", ""]))
_sample = st.builds(lambda lead, n, lab, gap, v, ts: lead + n + lab + gap + v + ts, st.sampled_from(["", " ", "\t"]),
                    st.sampled_from(_NAMES), st.one_of(st.just(""), _labels), st.sampled_from([" ", "", "\t", "  "]),
                    st.sampled_from(_VALS), st.sampled_from(_TS))
_comment = st.builds(lambda h, kw, rest: h + kw + rest, st.sampled_from(["#", "# ", "#\t"]),
                     st.sampled_from(["HELP", "TYPE", "foo", ""]), st.sampled_from(_COMMENTS))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(_sample | _comment, min_size=1, max_size=4))
def test_parser_accepts_exactly_what_expfmt_accepts(lines: list[str]) -> None:
    """promtool parses with expfmt's TextParser: it and ours must agree on every input (1,200 more
    examples of this generator agreed when it was written)."""
    promtool = helpers.require_binary("promtool")
    text = "\n".join(lines) + "\n"
    proc = subprocess.run([promtool, "check", "metrics"], input=text.encode(), capture_output=True, timeout=60)
    theirs_ok = b"parsing error" not in proc.stdout + proc.stderr
    try:
        parse_text_format(text)
        ours_ok = True
    except TextFormatError:
        ours_ok = False
    assert ours_ok == theirs_ok, (text, (proc.stdout + proc.stderr).decode())


@given(st.text(max_size=300))
def test_parser_fuzz_never_raises_anything_else(text: str) -> None:
    try:
        fams = parse_text_format(text)
    except TextFormatError:
        return
    for name in fams:
        assert re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", name)
