"""Summaries built from the counter's finished jobs and the batched sacct detail of real Slurm 22.05 jobs,
with and without Prometheus; the price table and cost; the rule table's notes; the report output."""

from __future__ import annotations

import dataclasses
import json
import os

import pytest
from hpcwatch.accounting import rules
from hpcwatch.accounting.enrich import Enrichment
from hpcwatch.accounting.prices import PriceTableError, load_price_table, parse_price_table
from hpcwatch.accounting.record import GpuUsage, JobSummary, NodeUsage
from hpcwatch.accounting.report import render_json, render_text
from hpcwatch.accounting.sacct import parse_summary_sacct
from hpcwatch.accounting.summary import PROMETHEUS_FIELDS, build_summary
from hpcwatch.exporters.slurm.parse import FIXTURE_SEPARATOR, parse_sacct, sacct_to_finished

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
FIX = os.path.join(ROOT, "tests", "fixtures", "accounting")
PRICES = os.path.join(ROOT, "examples", "accounting", "prices.yaml")
NOW = 1_800_000_000.0


def read(name: str) -> str:
    with open(os.path.join(FIX, name)) as fh:
        return fh.read()


@pytest.fixture(scope="module")
def jobs():
    runs, unknown = sacct_to_finished(parse_sacct(read("sacct-counter-22.05.txt"))[0], "hpcw")
    assert unknown == 0
    details, _ = parse_summary_sacct(read("sacct-summary-22.05.txt"), FIXTURE_SEPARATOR)
    return {j.jobid: (j, details[j.key.split("@")[0]]) for j in runs}


def summary(jobs, jobid, enrichment=None, error=None, prices=None) -> JobSummary:
    job, detail = jobs[jobid]
    return build_summary("hpcw", jobid, job, detail, enrichment, error, prices, NOW)


def test_sacct_only_summaries(jobs):
    s = summary(jobs, "1")
    assert (s.cluster, s.jobid, s.job_id_raw, s.name, s.user, s.account, s.partition, s.qos) == \
        ("hpcw", "1", 1, "burn.sh", "root", "root", "debug", "normal")
    assert (s.outcome, s.cause, s.state, s.exit_code, s.nodes, s.nnodes) == \
        ("success", "none", "COMPLETED", "0:0", "hpcw35b26c", 1)
    assert (s.elapsed_s, s.time_limit_s, s.queue_wait_s, s.cpus_alloc) == (21.0, 600.0, 1.0, 2)
    # 18.455 CPU-seconds over 2 CPUs for 21 s; the cgroup's own cpuacct.usage gives the same within 0.1 pp.
    assert s.cpu_efficiency == pytest.approx(18.455 / 42)
    assert abs(s.cpu_efficiency - 18.454384019 / 42) < 0.001
    assert (s.mem_req_bytes, s.mem_alloc_bytes, s.mem_peak_source) == (200 << 20, 200 << 20, "sacct")
    assert s.month == "2026-11" and s.written_at == NOW
    missing = {m.split(":")[0] for m in s.missing}
    assert set(PROMETHEUS_FIELDS) <= missing
    assert all("no per-job series in Prometheus" in m for m in s.missing if m.split(":")[0] in PROMETHEUS_FIELDS)
    mem = summary(jobs, "2")
    assert abs(mem.mem_peak_bytes - 323842048) / 323842048 < 0.05   # within 5% of the cgroup's own peak
    task = summary(jobs, "5_1")
    assert (task.array_job_id, task.array_task_id, task.job_id_raw, task.name) == ("5", "1", 7, "arr|weird name")
    assert summary(jobs, "3").outcome == "oom" and summary(jobs, "4").outcome == "timeout"
    never = summary(jobs, "8_[1-3]")
    assert never.outcome == "cancelled" and never.cpus_alloc == 1


def test_without_sacct_the_counter_record_is_kept(jobs):
    job, _ = jobs["2"]
    s = build_summary("hpcw", "2", job, None, None, "Prometheus not configured for the summary writer", None, NOW)
    assert (s.user, s.partition, s.outcome, s.exit_code, s.elapsed_s) == ("root", "debug", "success", "0:0", 9.0)
    assert any(m.startswith("sacct:") for m in s.missing)
    assert any("Prometheus not configured" in m for m in s.missing)


def test_prometheus_fills_per_node_and_per_gpu_and_wins_as_the_later_sample(jobs):
    e = Enrichment(seen=True)
    n = e.node({"instance": "n1:19466", "node": "n1"})
    n.cpus, n.cpu_time_s, n.mem_peak_bytes, n.mem_limit_bytes, n.energy_j = 2, 18.9, 8 << 20, 200 << 20, 900.0
    e.energy = {"cpu_package": 700.0, "dram": 100.0, "gpu": 100.0}
    g = e.gpu({"instance": "n1:19466", "node": "n1", "gpu": "0", "uuid": "GPU-1"})
    g.util_mean, g.sm_active_mean, g.mem_peak_bytes, g.model = 0.5, 0.25, 4 << 30, "NVIDIA H100 80GB HBM3"
    e.fs_read_bytes, e.fs_write_bytes = 10, 20
    s = summary(jobs, "1", e)
    assert s.cpu_time_s == 18.9 and s.cpu_efficiency == pytest.approx(18.9 / 42)
    assert (s.mem_peak_bytes, s.mem_peak_source) == (8 << 20, "cgroup")
    assert (s.energy_j, s.energy_gpu_j, s.energy_cpu_j, s.energy_source) == (900.0, 100.0, 800.0, "hpcwatch")
    assert (s.gpu_util_mean, s.gpu_sm_active_mean, s.gpu_mem_peak_bytes) == (0.5, 0.25, 4 << 30)
    assert (s.fs_read_bytes, s.fs_write_bytes) == (10, 20)
    assert [x.node for x in s.per_node] == ["n1"] and s.per_gpu[0].model.startswith("NVIDIA H100")
    assert s.missing == []
    # Where sacct saw more CPU time than Prometheus' last scrape, sacct's figure stays.
    n.cpu_time_s = 10.0
    assert summary(jobs, "1", e).cpu_time_s == pytest.approx(18.455)


def test_price_table_and_cost(jobs):
    prices = load_price_table(PRICES)
    assert prices.currency == "EUR" and prices.rates("gpu").cpu_hour == 0.02
    assert prices.rates("gpu").gpu_rate("NVIDIA H100 80GB HBM3") == 4.0
    assert prices.rates("other").gpu_rate("t4") == 1.0 and prices.rates("debug").kwh == 0.25
    s = summary(jobs, "1", prices=prices)         # debug partition: CPU and memory free, energy unknown
    assert (s.cost_cpu, s.cost_mem, s.cost_gpu, s.cost, s.currency) == (0.0, 0.0, 0.0, 0.0, "EUR")
    assert s.cost_energy is None and any(m.startswith("cost_energy") for m in s.missing)
    job, detail = jobs["1"]
    detail = dataclasses.replace(detail, partition="gpu", alloc_tres={**detail.alloc_tres, "gres/gpu:a100": "2"})
    job = dataclasses.replace(job, queue="gpu")
    e = Enrichment(seen=True, energy={"cpu_package": 3.6e6})
    e.node({"instance": "n1"}).cpu_time_s = 1.0
    s = build_summary("hpcw", "1", job, detail, e, None, prices, NOW)
    hours = 21 / 3600
    assert s.cost_cpu == pytest.approx(2 * hours * 0.02)
    assert s.cost_mem == pytest.approx(200 / 1024 * hours * 0.002)
    assert s.cost_gpu == pytest.approx(2 * hours * 2.5)
    assert s.cost_energy == pytest.approx(0.25)
    assert s.cost == pytest.approx(s.cost_cpu + s.cost_mem + s.cost_gpu + s.cost_energy)


@pytest.mark.parametrize(("text", "where"), [
    ("currency: EUR\ndefault:\n  cpu_hour: abc\n", "<t>:3: default.cpu_hour: expected a non-negative number"),
    ("currency: EUR\ndefault:\n  cpu_hour: -1\n", "<t>:3: default.cpu_hour"),
    ("currency: EUR\ndefault:\n  gpus: 1\n", "<t>:3: default: unknown key 'gpus'"),
    ("currency: EUR\npartitions:\n  gpu:\n    gpu_hour_by_model: {a100: x}\n",
     "<t>:4: partitions.gpu.gpu_hour_by_model.a100"),
    ("default: {cpu_hour: 1}\n", "<t>: currency: missing"),
    ("currency: EUR\nprice: 1\n", "<t>:2: unknown key 'price'"),
    ("currency: [EUR\n", "<t>: not valid YAML"),
    ("- 1\n", "<t>: expected a mapping"),
])
def test_price_table_errors_name_the_line(text, where):
    with pytest.raises(PriceTableError) as exc:
        parse_price_table(text, "<t>")
    assert str(exc.value).startswith(where)


def base(**kw) -> JobSummary:
    s = JobSummary(cluster="c", jobid="1", state="COMPLETED", outcome="success", cause="none", elapsed_s=600.0,
                   time_limit_s=1200.0, cpus_alloc=4, cpu_time_s=2000.0, mem_req_bytes=4 << 30,
                   mem_peak_bytes=2 << 30, nnodes=1, nodes="n1")
    for k, v in kw.items():
        setattr(s, k, v)
    if "cpu_efficiency" not in kw and s.cpu_time_s is not None and s.cpus_alloc and s.elapsed_s:
        s.cpu_efficiency = s.cpu_time_s / (s.cpus_alloc * s.elapsed_s)
    return s


def rule_ids(s: JobSummary) -> list[str]:
    return [n.rule for n in rules.notes(s)]


def test_a_well_used_job_gets_no_note():
    assert rule_ids(base()) == []


@pytest.mark.parametrize(("changes", "expected", "text"), [
    ({"mem_peak_bytes": 1 << 30}, ["mem_overask"], "asked for 4.0 GiB, peak 1.0 GiB (4.0x). Ask for --mem=1280M"),
    ({"mem_peak_bytes": (1 << 30) + 1}, [], ""),                       # 3.99x: under the threshold
    ({"cpu_time_s": 1199.0}, ["cpu_low"], "CPU efficiency 50%: of 4 CPUs the job used 2.0"),
    ({"cpu_time_s": 1200.0}, [], ""),                                  # exactly 50%: not below
    ({"elapsed_s": 240.0, "cpu_time_s": 900.0}, ["time_overask"], "limit 00:20:00, ran 00:04:00 (5x). Ask for "
     "--time=00:10:00"),
    ({"elapsed_s": 241.0, "cpu_time_s": 900.0}, [], ""),
    ({"outcome": "oom", "cause": "user", "state": "OUT_OF_MEMORY", "mem_peak_bytes": 4 << 30}, ["oom"],
     "Out of memory: peak 4.0 GiB against a limit of 4.0 GiB"),
    ({"outcome": "node_fail", "cause": "system", "state": "NODE_FAIL"}, ["node_fail"],
     "Node failure (NODE_FAIL) on n1: not your fault"),
    ({"gpus_alloc": 2, "per_gpu": [GpuUsage("n1", "0", util_mean=0.9), GpuUsage("n1", "1", util_mean=0.01)]},
     ["gpu_idle"], "GPUs idle: 1 of 2 allocated GPUs did (almost) no work [n1:1 (1%)]"),
    ({"gpus_alloc": 2, "per_gpu": [GpuUsage("n1", "0", util_mean=0.9), GpuUsage("n1", "1", util_mean=0.05)]},
     [], ""),
    ({"gpus_alloc": 4, "per_gpu": [GpuUsage("n1", "0", util_mean=0.9)]}, ["gpu_idle"], "3 of 4 allocated GPUs"),
])
def test_rule_thresholds_both_sides(changes, expected, text):
    s = base(**changes)
    assert rule_ids(s) == expected
    if text:
        assert text in rules.notes(s)[0].text


def test_oom_and_timeout_jobs_are_not_told_to_ask_less():
    # An OOM job's peak is its limit; a job killed at its limit did not over-ask for time.
    assert rule_ids(base(outcome="oom", mem_peak_bytes=1 << 30)) == ["oom"]
    assert rule_ids(base(outcome="timeout", elapsed_s=1200.0, cpu_time_s=4800.0)) == []


def test_text_and_json_reports(jobs):
    e = Enrichment(seen=True, energy={"cpu_package": 1500.0})
    n = e.node({"instance": "h:19466", "node": "hpcw35b26c"})
    n.cpus, n.cpu_time_s, n.mem_peak_bytes, n.mem_limit_bytes, n.energy_j = 2, 18.4, 7 << 20, 200 << 20, 1500.0
    s = summary(jobs, "1", e, prices=load_price_table(PRICES))
    text = render_text(s, "summary dataset /d", "https://grafana.example.org/")
    assert text.startswith("Job 1 (burn.sh) on cluster hpcw: COMPLETED (success, none)\n")
    assert "ran 00:00:21 of a 00:10:00 limit" in text
    assert "CPU      2 CPUs, 18.5 CPU-seconds used, efficiency 44%" in text
    assert "Energy   1.5 kJ" in text and "Cost     0.00 EUR" in text
    assert "hpcw35b26c" in text.split("Per node")[1]
    assert "! CPU efficiency 44%" in text and "! Memory: asked for 200.0 MiB, peak 7.0 MiB" in text
    assert "! Time: limit 00:10:00, ran 00:00:21" in text
    assert ("Dashboard: https://grafana.example.org/d/hpcwatch-job/?var-cluster=hpcw&var-jobid=1&from="
            in text)
    doc = json.loads(render_json(s, "summary dataset /d"))
    assert doc["job"]["jobid"] == "1" and doc["job"]["start"] == "2026-11-29T23:11:45+00:00"
    assert [n["rule"] for n in doc["notes"]] == ["mem_overask", "cpu_low", "time_overask"]
    assert doc["dashboard"].startswith("/d/hpcwatch-job/?")
    assert doc["job"]["per_node"][0]["node"] == "hpcw35b26c"


def test_row_round_trip(jobs):
    s = summary(jobs, "2")
    s.nnodes, s.cpu_efficiency, s.energy_j = 2, 0.5, 12.0
    s.per_node = [NodeUsage("n1", 1, 1.0, 2, 3, 4.0), NodeUsage("n2", 1, 1.5, 2, 3, 8.0)]
    s.per_gpu = [GpuUsage("n1", "0", "GPU-x", "m", 0.5, 0.25, 3, 4.0)]
    assert JobSummary.from_row(s.to_row()) == s


def test_a_single_node_job_stores_no_per_node_list_and_reads_back_its_node(jobs):
    s = summary(jobs, "2")
    s.per_node = [NodeUsage("hpcw35b26c", 1, 0.785, 322043904, 1 << 30, None)]
    row = s.to_row()
    assert row["per_node"] == []
    assert JobSummary.from_row(row).per_node == s.per_node


def test_the_record_and_its_column_table_name_the_same_fields():
    from hpcwatch.accounting.record import FIELDS, GPU_FIELDS, NODE_FIELDS, GpuUsage, NodeUsage
    from hpcwatch.accounting.schema import SCHEMA

    assert [f.name for f in dataclasses.fields(JobSummary)] == list(FIELDS) == SCHEMA.names
    assert [f.name for f in dataclasses.fields(NodeUsage)] == [n for n, _ in NODE_FIELDS]
    assert [f.name for f in dataclasses.fields(GpuUsage)] == [n for n, _ in GPU_FIELDS]
