"""`hpcwatch usage report`: figures of a small dataset worked out by hand (pro-rating at both edges of the
period, jobs counted where they ended, efficiency and waste, cost and re-pricing, grouping), the SQL price
table against cost.py's apply_cost on generated jobs, and the installed CLI's formats and errors."""

from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import os
import subprocess
import sys

import duckdb
import pytest
from hpcwatch.accounting import usage
from hpcwatch.accounting.cost import apply_cost
from hpcwatch.accounting.prices import load_price_table, parse_price_table
from hpcwatch.accounting.pricing_sql import cost_parts
from hpcwatch.accounting.record import GpuUsage, JobSummary, month_of
from hpcwatch.accounting.schema import to_table
from hpcwatch.accounting.store import SummaryStore
from hypothesis import given, settings
from hypothesis import strategies as st

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HPCWATCH = os.path.join(os.path.dirname(sys.executable), "hpcwatch")
PRICES = os.path.join(ROOT, "examples", "accounting", "prices.yaml")
T0 = 1_772_323_200.0   # 2026-03-01T00:00:00Z
END = T0 + 10 * 86400
GiB = 1 << 30


def job(jobid: str, start: float | None, end: float, cluster: str = "alpha", **kw) -> JobSummary:
    elapsed = None if start is None else end - start
    fields = dict(cluster=cluster, jobid=jobid, job_id_raw=int(jobid), submit=(start or end) - 60,
                  start=start, end=end, elapsed_s=elapsed, user="alice", account="chem", partition="cpu",
                  outcome="success", cause="none", month=month_of(end), written_at=end + 5, queue_wait_s=60.0,
                  cpus_alloc=4, currency="EUR")
    fields.update(kw)
    return JobSummary(**fields)


def dataset(tmp_path) -> str:
    rows = [
        # Wholly inside: 4 CPUs x 2 h, a quarter of it used; 8 GiB asked, 2 GiB peak; 1 kWh.
        job("1", T0 + 3600, T0 + 3 * 3600, cpu_time_s=7200.0, mem_alloc_bytes=8 * GiB, mem_peak_bytes=2 * GiB,
            energy_j=3.6e6, cost=1.0, cost_cpu=0.6, cost_mem=0.2, cost_gpu=0.0, cost_energy=0.2),
        # Two GPUs for an hour, one busy and one idle; failed.
        job("2", T0 + 86400, T0 + 86400 + 3600, user="bob", partition="gpu", cpus_alloc=2, cpu_time_s=7200.0,
            gpus_alloc=2, gpu_util_mean=0.5, outcome="failed", cause="user", queue_wait_s=600.0,
            per_gpu=[GpuUsage("n1", "0", util_mean=0.9), GpuUsage("n1", "1", util_mean=0.01)],
            cost=10.0, cost_cpu=0.0, cost_mem=0.0, cost_gpu=10.0, cost_energy=0.0),
        # Across the start: half of its 2 h inside; it ended inside, so it counts as a job.
        job("3", T0 - 3600, T0 + 3600, account="phys", cpu_time_s=4 * 7200.0, cost=2.0, cost_cpu=2.0),
        # Across the end: half inside; it ended after, so no job count, no wait.
        job("4", END - 1800, END + 1800, account="phys", cpu_time_s=0.0, cost=4.0, cost_cpu=4.0,
            queue_wait_s=9999.0),
        # Cancelled while pending: a job, no usage.
        job("5", None, T0 + 100, outcome="cancelled", queue_wait_s=None),
        # Before the period, and on another cluster.
        job("6", T0 - 7200, T0 - 3600, cost=100.0),
        job("7", T0 + 3600, T0 + 7200, cluster="beta", cost=1000.0),
    ]
    SummaryStore(str(tmp_path)).append(rows)
    return str(tmp_path)


def approx(x: float, y: float) -> bool:
    return math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-9)


def test_figures_of_a_known_dataset(tmp_path):
    root = dataset(tmp_path)
    r = usage.run(root, usage.UsageQuery(T0, END, by=("account",), clusters=("alpha",)), with_series=True)
    rows = {row.key["account"]: row for row in r.rows}
    chem, phys, t = rows["chem"], rows["phys"], r.total
    assert set(rows) == {"chem", "phys"}
    # chem: jobs 1, 2 and 5 ended inside; 4 x 2 h + 2 x 1 h of CPUs.
    assert chem.jobs == 3 and chem.outcomes["success"] == 1 and chem.outcomes["failed"] == 1
    assert chem.outcomes["cancelled"] == 1
    assert approx(chem.core_hours, 8 + 2) and approx(chem.gpu_hours, 2)
    assert approx(chem.cpu_efficiency, (7200 + 7200) / (4 * 7200 + 2 * 3600))
    assert approx(chem.gpu_efficiency, 0.5)   # float32 in the dataset: a value it holds exactly
    assert approx(chem.mem_efficiency, 0.25)   # job 2 has no memory figures: out of both sides
    assert approx(chem.energy_kwh, 1.0) and approx(chem.cost, 11.0)
    assert approx(chem.idle_cpu_hours, (4 * 7200 - 7200) / 3600)   # job 2 used all of its 2 CPUs
    assert approx(chem.idle_gpu_hours, 1.0)                        # one GPU of job 2 under 5% for 1 h
    assert approx(chem.unused_mem_gb_hours, 6 * 2)                 # 6 GiB over 2 h
    # waste cost: job 1's CPU part 0.6 x 75% idle + memory part 0.2 x 75% unused; job 2's GPU part 10 x 1/2.
    assert approx(chem.waste_cost, 0.6 * 0.75 + 0.2 * 0.75 + 5.0)
    assert chem.wait_p50_s == 330.0 and approx(chem.wait_p90_s, 60 + 0.9 * 540)   # jobs 1 and 2; 5 never waited
    # phys: half of job 3 (it ended inside) and half of job 4 (still running at the end: no job count).
    assert phys.jobs == 1 and approx(phys.core_hours, 4 + 2) and approx(phys.cost, 1.0 + 2.0)
    assert approx(phys.idle_cpu_hours, 0.5 * 4 * 3600 / 3600) and phys.wait_p90_s == 60.0
    # The total is the sum of the rows; the other cluster and the earlier job are not in it.
    assert t.jobs == 4 and approx(t.core_hours, 16) and approx(t.cost, 14.0) and r.currency == "EUR"
    assert [row.key["account"] for row in r.rows] == ["chem", "phys"]          # by cost, highest first
    assert {u.key["user"]: u.core_hours for u in r.users} == {"alice": 14.0, "bob": 2.0}
    # Over time (days here): each run split over the days it touched, the parts adding up to the totals.
    s = r.series
    assert s["unit"] == "day" and s["accounts"] == ["chem", "phys"] and len(s["times"]) == 3
    for metric, want in (("cost", t.cost), ("waste_cost", t.waste_cost), ("core_hours", t.core_hours)):
        assert approx(sum(sum(v) for v in s[metric].values()), want), metric
    assert s["times"][0] == T0 and approx(s["core_hours"]["phys"][0], 4.0)   # job 3's half inside, on day 1


def test_grouping_by_several_dimensions_and_all_clusters(tmp_path):
    r = usage.run(dataset(tmp_path), usage.UsageQuery(T0, END, by=("cluster", "account", "user")))
    keys = {tuple(row.key.values()): row for row in r.rows}
    assert set(keys) == {("alpha", "chem", "alice"), ("alpha", "chem", "bob"), ("alpha", "phys", "alice"),
                         ("beta", "chem", "alice")}
    assert approx(keys[("beta", "chem", "alice")].core_hours, 4) and r.total.jobs == 5
    assert approx(sum(row.core_hours for row in r.rows), r.total.core_hours)


def test_a_compaction_in_progress_counts_each_job_once(tmp_path):
    root = dataset(tmp_path)
    store = SummaryStore(root)
    before = usage.run(root, usage.UsageQuery(T0, END))
    # A compacted file renamed in beside the part it merged (the moment before the part is removed).
    import shutil
    for f in store.files():
        shutil.copy(f, os.path.join(os.path.dirname(f), "compact-copy.parquet"))
    after = usage.run(root, usage.UsageQuery(T0, END))
    assert after.total == before.total


def test_repricing_under_a_price_table(tmp_path):
    prices = load_price_table(PRICES)   # cpu 0.01/h (gpu partition 0.02), 0.002/GB-h, h100 4.00/h, 0.25/kWh
    r = usage.run(dataset(tmp_path), usage.UsageQuery(T0, END, by=("partition",), clusters=("alpha",),
                                                       prices=prices))
    rows = {row.key["partition"]: row for row in r.rows}
    # gpu partition: job 2, 2 CPUs x 1 h at 0.02, 2 untyped GPUs x 1 h at 1.00.
    assert approx(rows["gpu"].cost_cpu, 2 * 0.02) and approx(rows["gpu"].cost_gpu, 2 * 1.0)
    # cpu partition: job 1 (4 x 2 h, 8 GiB x 2 h, 1 kWh), half of job 3 (4 x 1 h) and of job 4 (4 x 0.5 h).
    assert approx(rows["cpu"].cost_cpu, 0.01 * (8 + 4 + 2)) and approx(rows["cpu"].cost_mem, 0.002 * 16)
    assert approx(rows["cpu"].cost_energy, 0.25) and r.currency == "EUR"


def test_mixed_currencies_need_a_price_table(tmp_path):
    SummaryStore(str(tmp_path)).append([job("1", T0, T0 + 60, currency="EUR", cost=1.0),
                                        job("2", T0, T0 + 60, currency="USD", cost=1.0)])
    with pytest.raises(usage.UsageError, match="more than one currency"):
        usage.run(str(tmp_path), usage.UsageQuery(T0, END))
    assert usage.run(str(tmp_path), usage.UsageQuery(T0, END, prices=load_price_table(PRICES))).currency == "EUR"


@pytest.mark.parametrize("kwargs, message", [
    ({"by": ("account", "project")}, "expected distinct names"),
    ({"by": ("user", "user")}, "expected distinct names"),
    ({"start": END}, "the period is empty"),
    ({"gpu_idle_below": 2.0}, "between 0 and 1"),
])
def test_bad_queries_say_what_to_change(kwargs, message):
    with pytest.raises(usage.UsageError, match=message):
        usage.UsageQuery(**{"start": T0, "end": END, **kwargs})


TABLE = """currency: EUR
default: {cpu_hour: 0.01, mem_gb_hour: 0.002, gpu_hour: 1.0, gpu_hour_by_model: {a100: 2.5, a100-sxm4-80gb: 3.0,
          h100: 4.0}, kwh: 0.25}
partitions:
  gpu: {cpu_hour: 0.02, gpu_hour_by_model: {h100: 5.0}}
  free: {cpu_hour: 0.0, mem_gb_hour: 0.0}
  nogpu: {gpu_hour: 0.0}
"""
MODELS = ("", "a100", "h100", "NVIDIA A100-SXM4-80GB", "NVIDIA H100 80GB HBM3", "l40s")


@st.composite
def priced_jobs(draw) -> list[JobSummary]:
    out = []
    for i in range(draw(st.integers(1, 6))):
        gpus = draw(st.integers(0, 4))
        per_gpu = [GpuUsage("n1", str(g), model=draw(st.sampled_from(MODELS)))
                   for g in range(draw(st.integers(0, gpus + 1)))]
        out.append(job(str(i + 1), T0, T0 + draw(st.integers(0, 10 ** 6)),
                       partition=draw(st.sampled_from(["gpu", "free", "nogpu", "cpu", "gpu,cpu"])),
                       cpus_alloc=draw(st.one_of(st.none(), st.integers(1, 256))),
                       mem_alloc_bytes=draw(st.one_of(st.none(), st.integers(0, 1 << 40))),
                       mem_req_bytes=draw(st.one_of(st.none(), st.integers(0, 1 << 40))),
                       gpus_alloc=gpus, gpu_model=draw(st.sampled_from(MODELS)), per_gpu=per_gpu,
                       energy_j=draw(st.one_of(st.none(), st.integers(0, 10 ** 10).map(float)))))  # whole J, as stored
    return out


_DB = duckdb.connect()


@given(priced_jobs())
@settings(max_examples=60, deadline=None)
def test_the_sql_price_table_prices_as_apply_cost_does(jobs):
    prices = parse_price_table(TABLE)
    parts = cost_parts(prices)
    _DB.register("summaries", to_table(jobs))   # one connection for every example (connecting costs most)
    got = _DB.execute("SELECT " + ", ".join(f"{sql} AS {name}" for name, sql in parts.items())
                      + " FROM summaries ORDER BY job_id_raw").fetchall()
    _DB.unregister("summaries")
    for s, row in zip(jobs, got):
        want = dataclasses.replace(s, missing=[])
        apply_cost(want, prices)
        for name, value in zip(parts, row):
            expected = getattr(want, name)
            assert (value is None) == (expected is None), (name, s, value, expected)
            if value is not None:
                assert math.isclose(value, expected, rel_tol=1e-9, abs_tol=1e-9), (name, s, value, expected)


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([HPCWATCH, "usage", "report", *args], capture_output=True, text=True, timeout=120)


def test_cli_formats(tmp_path):
    root = dataset(tmp_path / "ds")
    common = ("--dataset", root, "--from", "2026-03-01", "--to", "2026-03-11", "--cluster", "alpha")
    text = cli(*common, "--by", "account,user")
    assert text.returncode == 0, text.stderr
    assert "TOTAL" in text.stdout and "Efficiency and waste" in text.stdout and "alice" in text.stdout
    rows = list(csv.DictReader(io.StringIO(cli(*common, "--format", "csv").stdout)))
    assert {r["account"]: float(r["core_hours"]) for r in rows} == {"chem": 10.0, "phys": 6.0}
    doc = json.loads(cli(*common, "--format", "json").stdout)
    assert doc["total"]["jobs"] == 4 and doc["group_by"] == ["account"] and doc["currency"] == "EUR"
    assert doc["period"] == {"start": "2026-03-01T00:00:00+00:00", "end": "2026-03-11T00:00:00+00:00"}
    out = tmp_path / "usage.html"
    html = cli(*common, "--format", "html", "-o", str(out))
    assert html.returncode == 0, html.stderr
    page = out.read_text()
    assert page.count("<svg") == 4 and "Cost by account" in page and "Efficiency against usage" in page
    assert "<script" not in page
    month = cli("--dataset", root, "--month", "2026-03", "--format", "json")
    assert json.loads(month.stdout)["period"]["end"] == "2026-04-01T00:00:00+00:00"


@pytest.mark.parametrize("args, message", [
    (("--by", "project"), "--by project: expected distinct names among cluster, account, user, partition"),
    (("--from", "March"), "--from 'March': expected a UTC date or time"),
    (("--month", "2026-3x"), "--month '2026-3x': expected YYYY-MM"),
    (("--month", "2026-03", "--from", "2026-03-01"), "--month takes the place of --from and --to"),
    (("--prices", "/nonexistent/prices.yaml"), "/nonexistent/prices.yaml: cannot read"),
])
def test_cli_errors_name_what_to_change(tmp_path, args, message):
    got = cli("--dataset", dataset(tmp_path), *args)
    assert got.returncode == 2 and got.stderr.startswith("error: ") and message in got.stderr, got.stderr
    assert "Traceback" not in got.stderr


def test_cli_without_a_dataset(tmp_path):
    got = cli("--dataset", str(tmp_path / "none"))
    assert got.returncode == 2 and "no such dataset directory" in got.stderr
