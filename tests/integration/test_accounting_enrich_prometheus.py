"""The summary writer's batched queries against a real Prometheus whose TSDB holds known per-job series
(backfilled with `promtool tsdb create-blocks-from openmetrics`): a two-node CPU job, a GPU job sharing
its GPU with another job part of the time, a job with Lustre traffic, and a job outside the window."""

from __future__ import annotations

import os
import subprocess

import helpers
import pytest
from hpcwatch.accounting.enrich import JobWindow, batch_queries, enrich
from hpcwatch.slo.history.prom import PrometheusClient

from hpcwatch.harness.prometheus import Prometheus

pytestmark = pytest.mark.daemons

T = 1_700_000_000   # the series sit two hours after this
NODE = 'job="hpcwatch-node"'


def series(t0: int) -> str:
    """OpenMetrics text: job 11 on n1 and n2 for 10 minutes, GPU job 12 on n3 (GPU 0, shared with job 13 for
    the second half), job 14 with Lustre bytes, every 15 s."""
    fam: dict[str, list[str]] = {}

    def add(family: str, name: str, labels: str, value: float, t: int) -> None:
        fam.setdefault(family, []).append(f"{name}{{{labels}}} {value} {t}")

    for i in range(41):                       # 0..600 s
        t = t0 + 15 * i
        for node, cpus in (("n1", 4), ("n2", 2)):
            inst = f'instance="{node}:19466",node="{node}",{NODE}'
            add("hpc_job_cpu_seconds", "hpc_job_cpu_seconds_total", f'jobid="11",mode="user",{inst}', 2.0 * 15 * i, t)
            add("hpc_job_cpu_seconds", "hpc_job_cpu_seconds_total", f'jobid="11",mode="system",{inst}', 0.5 * 15 * i, t)
            add("hpc_job_cpus", "hpc_job_cpus", f'jobid="11",{inst}', cpus, t)
            add("hpc_job_memory_max_usage_bytes", "hpc_job_memory_max_usage_bytes", f'jobid="11",{inst}',
                min(i, 20) * (100 << 20), t)
            add("hpc_job_memory_usage_bytes", "hpc_job_memory_usage_bytes", f'jobid="11",{inst}', 50 << 20, t)
            add("hpc_job_memory_limit_bytes", "hpc_job_memory_limit_bytes", f'jobid="11",{inst}', 8 << 30, t)
            for comp, watts in (("cpu", 100.0), ("dram", 10.0)):
                add("hpc_job_energy_joules", "hpc_job_energy_joules_total", f'jobid="11",component="{comp}",{inst}',
                    watts * 15 * i, t)
        g = f'gpu="0",uuid="GPU-abc",instance="n3:19466",node="n3",{NODE}'
        add("hpc_gpu_info", "hpc_gpu_info", f'{g},name="NVIDIA H100 80GB HBM3"', 1, t)
        add("hpc_gpu_utilization_ratio", "hpc_gpu_utilization_ratio", g, 0.8 if i % 2 else 0.4, t)
        add("hpc_gpu_sm_active_ratio", "hpc_gpu_sm_active_ratio", g, 0.5, t)
        add("hpc_gpu_job_info", "hpc_gpu_job_info", f'{g},jobid="12"', 1, t)
        add("hpc_gpu_job_memory_used_bytes", "hpc_gpu_job_memory_used_bytes", f'{g},jobid="12"', i * (1 << 30), t)
        if i >= 20:
            add("hpc_gpu_job_info", "hpc_gpu_job_info", f'{g},jobid="13"', 1, t)
        lustre = 'instance="oss1:19466",target="fs-OST0000",host="n4",uid="1000"'
        for op, rate in (("read", 1e6), ("write", 2e6)):
            add("hpc_lustre_job_bytes", "hpc_lustre_job_bytes_total", f'jobid="14",operation="{op}",{lustre}',
                rate * 15 * i, t)
    kinds = {"hpc_job_cpu_seconds": "counter", "hpc_job_energy_joules": "counter", "hpc_lustre_job_bytes": "counter"}
    out = []
    for name, lines in fam.items():
        out.append(f"# TYPE {name} {kinds.get(name, 'gauge')}")
        out.extend(sorted(lines, key=lambda ln: (ln.rsplit(" ", 2)[0], int(ln.rsplit(" ", 1)[1]))))
    return "\n".join(out + ["# EOF"]) + "\n"


@pytest.fixture(scope="module")
def prom(tmp_path_factory):
    promtool = helpers.require_binary("promtool")
    helpers.require_binary("prometheus")
    work = tmp_path_factory.mktemp("enrich")
    p = Prometheus(str(work), {"global": {"scrape_interval": "15s"}, "scrape_configs": []})
    om = work / "series.om"
    om.write_text(series(T))
    os.makedirs(os.path.join(p.dir, "data"), exist_ok=True)
    subprocess.run([promtool, "tsdb", "create-blocks-from", "openmetrics", str(om), os.path.join(p.dir, "data")],
                   check=True, capture_output=True)
    p.start()
    yield p
    p.stop()


def test_every_query_is_accepted(prom):
    client = PrometheusClient(prom.url, 30)
    at, queries = batch_queries([JobWindow("11", T, T + 600), JobWindow("12_3", T, T + 600)], "hpcw")
    for _name, q, _ in queries:
        client.query(q, at)   # raises PrometheusError on anything Prometheus refuses


def test_values_of_one_batch(prom):
    client = PrometheusClient(prom.url, 30)
    jobs = [JobWindow("11", T, T + 600), JobWindow("12", T, T + 600), JobWindow("13", T + 300, T + 600),
            JobWindow("14", T, T + 600), JobWindow("99", T, T + 600)]
    found, errors = enrich(client, jobs, "hpcw", batch_size=10)
    assert errors == []
    assert set(found) == {"11", "12", "13", "14"}            # 99 has no series: absent, not zero
    n1, n2 = (found["11"].nodes[(f"{n}:19466", n)] for n in ("n1", "n2"))
    assert (n1.cpus, n2.cpus) == (4, 2)
    assert n1.cpu_time_s == pytest.approx(2.5 * 600) and n2.cpu_time_s == pytest.approx(2.5 * 600)
    assert n1.mem_peak_bytes == 20 * (100 << 20) and n1.mem_limit_bytes == 8 << 30
    assert n1.energy_j == pytest.approx(110 * 600)
    assert found["11"].energy == pytest.approx({"cpu": 2 * 100 * 600, "dram": 2 * 10 * 600})
    g = found["12"].gpus[("n3:19466", "0", "GPU-abc")]
    assert g.model == "NVIDIA H100 80GB HBM3" and g.sm_active_mean == pytest.approx(0.5)
    assert g.util_mean == pytest.approx(0.6, abs=0.02) and g.mem_peak_bytes == 40 << 30
    shared = found["13"].gpus[("n3:19466", "0", "GPU-abc")]
    assert shared.util_mean is not None and shared.mem_peak_bytes is None
    assert (found["14"].fs_read_bytes, found["14"].fs_write_bytes) == (int(600e6), int(1200e6))


def test_batches_smaller_than_the_jobs_give_the_same_answer(prom):
    client = PrometheusClient(prom.url, 30)
    jobs = [JobWindow("11", T, T + 600), JobWindow("12", T, T + 600), JobWindow("14", T, T + 600)]
    one, _ = enrich(client, jobs, "hpcw", batch_size=1)
    all_, _ = enrich(client, jobs, "hpcw", batch_size=100)
    assert one == all_


def test_an_unreachable_prometheus_is_an_error_not_a_hang(prom):
    client = PrometheusClient("http://127.0.0.1:9", 2)
    found, errors = enrich(client, [JobWindow("11", T, T + 600)], "hpcw")
    assert found == {} and len(errors) == 1 and "127.0.0.1:9" in errors[0]
