"""Per-job accounting: summary writer throughput, `job report` on a large dataset, size on disk.

    .venv/bin/python benchmarks/accounting.py writer            # jobs/s, without and with Prometheus
    .venv/bin/python benchmarks/accounting.py report --jobs 10000000
    .venv/bin/python benchmarks/accounting.py size --jobs 1000000
    .venv/bin/python benchmarks/accounting.py parse --jobs 20000

writer: N synthetic finished jobs with their sacct detail (the batched call's text, parsed as the
  writer parses it) are summarised and appended in refreshes of `--per-refresh` jobs, first without
  Prometheus, then against a real Prometheus whose TSDB holds the jobs' per-node and per-GPU series
  (backfilled with `promtool tsdb create-blocks-from openmetrics`), with the writer's batched queries.
report: a dataset of `--jobs` summaries, `--per-month` a month (compacted: one file a month, sorted
  by job id), then `hpcwatch job report JOBID` (the installed CLI, a fresh process) for finished jobs
  picked at random; the peer is a full scan of the job id column with pyarrow.
size: one month of `--jobs` summaries on disk, against the same rows as sacct --parsable2 text.
parse: the batched call's text of `--jobs` jobs (a step each) read with the per-call separator, against
  the `|`-split reader it replaced (which a `|`, newline or carriage return in a name broke).
"""

from __future__ import annotations

import argparse
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
from hpcwatch.accounting import sacct
from hpcwatch.accounting.sacct import SUMMARY_FIELDS, parse_summary_sacct
from hpcwatch.accounting.schema import SCHEMA
from hpcwatch.accounting.store import ROW_GROUP, SummaryStore
from hpcwatch.accounting.writer import SummaryWriter
from hpcwatch.exporters.scheduler.model import FinishedJob, run_key
from hpcwatch.exporters.slurm.parse import call_separator, parse_time

T0 = 1_767_225_600   # 2026-01-01T00:00:00Z
USERS = [f"user{i:03d}" for i in range(500)]
ACCOUNTS = [f"proj{i:02d}" for i in range(100)]
PARTITIONS = ["cpu", "gpu", "bigmem", "debug", "long"]
OUTCOMES = [("COMPLETED", "success", "none", "0:0"), ("FAILED", "failed", "user", "1:0"),
            ("TIMEOUT", "timeout", "user", "0:0"), ("OUT_OF_MEMORY", "oom", "user", "0:125"),
            ("CANCELLED by 1000", "cancelled", "none", "0:0"), ("NODE_FAIL", "node_fail", "system", "0:0")]
OUTCOME_P = [0.8, 0.08, 0.05, 0.03, 0.035, 0.005]


# ----------------------------------------------------------------------------------------- writer
# The order synthetic_jobs lists fields in; sacct writes them in SUMMARY_FIELDS order, separated by SEP.
_LISTED = ("JobID", "JobIDRaw", "State", "ExitCode", "Partition", "QOS", "User", "UID", "Account", "Cluster",
           "Submit", "Eligible", "Start", "End", "ElapsedRaw", "TimelimitRaw", "NNodes", "NodeList",
           "NCPUS", "ReqCPUS", "ReqTRES", "AllocTRES", "TotalCPU", "MaxRSS", "TRESUsageInTot",
           "TRESUsageOutTot", "ConsumedEnergyRaw", "JobName")
SEP = call_separator()   # one batched call's separator, as the reader picks it


def _record(values: list[str]) -> str:
    by_name = dict(zip(_LISTED, values, strict=True))
    return SEP.join(by_name[f] for f in SUMMARY_FIELDS) + "\n"


def synthetic_jobs(n: int, end_before: float, rng: random.Random) -> list[tuple[FinishedJob, str, int, int]]:
    """(finished job, its sacct lines, node index, gpus) for n jobs ending in the hour before end_before."""
    out = []
    for i in range(n):
        jobid = str(100000 + i)
        elapsed = rng.randint(300, 1800)
        end = end_before - rng.randint(0, 3600)
        start = end - elapsed
        submit = start - rng.randint(0, 600)
        state, outcome, cause, code = rng.choices(OUTCOMES, OUTCOME_P)[0]
        cpus = rng.choice([1, 2, 4, 8, 16])
        gpus = rng.choice([0, 0, 0, 1, 2])
        part = "gpu" if gpus else rng.choice(PARTITIONS)
        user = rng.choice(USERS)
        job = FinishedJob(jobid=jobid, cluster="bench", queue=part, outcome=outcome, cause=cause, submit=submit,
                          eligible=submit, start=start, end=end, exit_code=code, user=user, account="proj01",
                          nnodes=1, key=run_key(jobid, submit, start))
        ts = lambda t: time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t))  # noqa: E731
        node = i % 64
        tres = f"billing={cpus},cpu={cpus},mem={cpus * 4}G,node=1" + (f",gres/gpu={gpus},gres/gpu:h100={gpus}"
                                                                      if gpus else "")
        alloc = [jobid, jobid, state, code, part, "normal", user, "1000", "proj01", "bench", ts(submit),
                 ts(submit), ts(start), ts(end), str(elapsed), "120", "1", f"n{node:03d}", str(cpus), str(cpus),
                 tres, tres, f"{elapsed * cpus // 120:02d}:{rng.randint(0, 59):02d}.000", "", "", "", "",
                 f"job-{i}"]
        step = [f"{jobid}.batch", f"{jobid}.batch", state, code, "", "", "", "", "", "bench", ts(start), ts(start),
                ts(start), ts(end), str(elapsed), "", "1", f"n{node:03d}", str(cpus), str(cpus), "",
                f"cpu={cpus},mem={cpus * 4}G,node=1", "00:10.000", f"{rng.randint(1, cpus * 4000)}M",
                "fs/disk=1000", "fs/disk=2000", "0", "batch"]
        assert len(alloc) == len(SUMMARY_FIELDS) == len(step)
        out.append((job, _record(alloc) + _record(step), node, gpus))
    return out


def openmetrics(jobs: list[tuple[FinishedJob, str, int, int]], step: int = 30) -> str:
    """The jobs' per-job series as OpenMetrics text (one family at a time, as promtool wants it)."""
    fams: dict[str, list[str]] = {}
    for job, _, node, gpus in jobs:
        inst = f'instance="n{node:03d}:19466",job="hpcwatch-node"'
        cpus = int(_field(_, "NCPUS"))
        ticks = range(int(job.start) + step, int(job.end) + 1, step)
        j = f'jobid="{job.jobid}",{inst}'
        for t in ticks:
            frac = (t - job.start) / (job.end - job.start)
            fams.setdefault("hpc_job_cpu_seconds", []).append(
                f'hpc_job_cpu_seconds_total{{{j},mode="user"}} {frac * cpus * 0.6 * (job.end - job.start):.1f} {t}')
            fams.setdefault("hpc_job_cpus", []).append(f"hpc_job_cpus{{{j}}} {cpus} {t}")
            fams.setdefault("hpc_job_memory_max_usage_bytes", []).append(
                f"hpc_job_memory_max_usage_bytes{{{j}}} {int(frac * cpus * 2e9)} {t}")
            fams.setdefault("hpc_job_memory_limit_bytes", []).append(
                f"hpc_job_memory_limit_bytes{{{j}}} {cpus * 4 << 30} {t}")
            fams.setdefault("hpc_job_energy_joules", []).append(
                f'hpc_job_energy_joules_total{{{j},component="cpu"}} {frac * 200 * (job.end - job.start):.1f} {t}')
            for g in range(gpus):
                gl = f'gpu="{g}",uuid="GPU-{node:03d}-{g}",{inst}'
                fams.setdefault("hpc_gpu_job_info", []).append(f"hpc_gpu_job_info{{{gl},jobid=\"{job.jobid}\"}} 1 {t}")
                fams.setdefault("hpc_gpu_info", []).append(f'hpc_gpu_info{{{gl},name="NVIDIA H100"}} 1 {t}')
                fams.setdefault("hpc_gpu_utilization_ratio", []).append(f"hpc_gpu_utilization_ratio{{{gl}}} 0.7 {t}")
                fams.setdefault("hpc_gpu_sm_active_ratio", []).append(f"hpc_gpu_sm_active_ratio{{{gl}}} 0.4 {t}")
    types = {"hpc_job_cpu_seconds": "counter", "hpc_job_energy_joules": "counter"}
    out = []
    for fam, lines in fams.items():
        out.append(f"# TYPE {fam} {types.get(fam, 'gauge')}")
        out.extend(sorted(set(lines), key=lambda ln: (ln.rsplit(" ", 2)[0], int(ln.rsplit(" ", 1)[1]))))
    out.append("# EOF")
    return "\n".join(out) + "\n"


def _field(text: str, name: str) -> str:
    return text.splitlines()[0].split(SEP)[SUMMARY_FIELDS.index(name)]


def run_writer(args: argparse.Namespace) -> None:
    from hpcwatch.slo.history.prom import PrometheusClient

    from hpcwatch.harness.prometheus import Prometheus

    rng = random.Random(7)
    now = time.time()
    jobs = synthetic_jobs(args.jobs, now - 7200, rng)
    text = "".join(s for _, s, _, _ in jobs)
    details, _ = parse_summary_sacct(text, SEP)
    finished = [j for j, _, _, _ in jobs]
    work = tempfile.mkdtemp(prefix="hpcwatch-bench-acct-")
    try:
        def sacct(ids):   # the batched call's text for these ids, parsed the way the writer parses sacct
            return parse_summary_sacct("".join(jobs[int(i) - 100000][1] for i in ids), SEP)

        rates = {}
        for label, client in (("without Prometheus", None), ("with Prometheus", "prom")):
            prom = None
            if client:
                om = os.path.join(work, "series.om")
                with open(om, "w") as fh:
                    fh.write(openmetrics(jobs))
                prom = Prometheus(os.path.join(work, "prom"), {"global": {"scrape_interval": "15s"},
                                                                "scrape_configs": []})
                data = os.path.join(prom.dir, "data")
                os.makedirs(data, exist_ok=True)
                t0 = time.perf_counter()
                subprocess.run(["promtool", "tsdb", "create-blocks-from", "openmetrics", om, data], check=True,
                               capture_output=True)
                print(f"backfilled {os.path.getsize(om) / 1e6:.1f} MB of OpenMetrics in "
                      f"{time.perf_counter() - t0:.1f} s")
                prom.start()
                client = PrometheusClient(prom.url, 30)
            store = SummaryStore(os.path.join(work, label.replace(" ", "-")))
            w = SummaryWriter(store, sacct, client, None, limit=args.per_refresh, batch_size=args.batch, delay=0)
            try:
                t0 = time.perf_counter()
                pending = list(finished)
                refreshes = 0
                while pending:
                    done = set(w.write(pending))
                    pending = [j for j in pending if j.key not in done]
                    refreshes += 1
                elapsed = time.perf_counter() - t0
            finally:
                if prom is not None:
                    prom.stop()
            rates[label] = args.jobs / elapsed
            with_gpu = store.sql("SELECT count(*) FROM summaries WHERE gpu_util_mean IS NOT NULL")[0][0]
            enriched = store.sql("SELECT count(*) FROM summaries WHERE mem_peak_source = 'cgroup'")[0][0]
            print(f"{label:20} {args.jobs} jobs in {refreshes} refreshes, {elapsed:.2f} s: "
                  f"{rates[label]:.0f} jobs/s ({enriched} with per-node series, {with_gpu} with GPU series; "
                  f"{w.stats.enrich_errors} query errors)")
        print(f"ratio: enrichment costs {rates['without Prometheus'] / rates['with Prometheus']:.1f}x")
    finally:
        shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------- dataset
def month_table(n: int, month_start: int, first_id: int, rng: np.random.Generator) -> pa.Table:
    """n synthetic summaries ending in the month starting at month_start, in the dataset's schema."""
    ids = np.arange(first_id, first_id + n)
    end = month_start + np.sort(rng.integers(0, 28 * 86400, n))
    elapsed = rng.integers(10, 86400, n)
    start = end - elapsed
    wait = rng.exponential(600, n).astype(np.int64)
    submit = start - wait
    cpus = rng.choice([1, 2, 4, 8, 16, 32, 64], n)
    gpus = rng.choice([0, 0, 0, 0, 1, 2, 4], n)
    oc = rng.choice(len(OUTCOMES), n, p=OUTCOME_P)
    cpu_time = elapsed * cpus * rng.uniform(0, 1, n)
    peak = (cpus * rng.uniform(0.05, 4, n) * (1 << 30)).astype(np.int64)
    energy = elapsed * cpus * rng.uniform(3, 12, n)
    ms = lambda a: pa.array(a * 1000, pa.int64()).cast(pa.timestamp("ms", tz="UTC"))  # noqa: E731
    users = np.array(USERS)[rng.integers(0, len(USERS), n)]
    parts = np.array(PARTITIONS)[rng.integers(0, len(PARTITIONS), n)]
    nodes = np.char.add("n", np.char.zfill(rng.integers(0, 2000, n).astype(str), 4))
    node_structs = pa.StructArray.from_arrays(
        [pa.array(nodes), pa.array(cpus, pa.int32()), pa.array(cpu_time), pa.array(peak),
         pa.array(cpus.astype(np.int64) * (4 << 30)), pa.array(energy)],
        names=[f.name for f in SCHEMA.field("per_node").type.value_type]).cast(SCHEMA.field("per_node").type.value_type)
    # Single-node jobs store no per_node list (their node is the job's own columns); here every
    # tenth job is a multi-node job with one entry per node (two, for the benchmark).
    multi = (ids % 10 == 0)
    take = np.repeat(np.arange(n), np.where(multi, 2, 0))
    node_structs = node_structs.take(pa.array(take))
    offsets = np.concatenate([[0], np.cumsum(np.where(multi, 2, 0))]).astype(np.int32)
    per_node = pa.ListArray.from_arrays(pa.array(offsets), node_structs)
    gpu_n = gpus.astype(np.int32)
    g_off = np.concatenate([[0], np.cumsum(gpu_n)]).astype(np.int32)
    total_g = int(g_off[-1])
    g_node = np.repeat(nodes, gpu_n)
    gpu_structs = pa.StructArray.from_arrays(
        [pa.array(g_node), pa.array((np.arange(total_g) - np.repeat(g_off[:-1], gpu_n)).astype(str)),
         pa.array(np.char.add("GPU-", np.arange(total_g).astype(str))), pa.array(np.full(total_g, "NVIDIA H100")),
         pa.array(rng.uniform(0, 1, total_g)), pa.array(rng.uniform(0, 1, total_g)),
         pa.array(rng.integers(0, 80 << 30, total_g)), pa.array(rng.uniform(0, 1e7, total_g))],
        names=[f.name for f in SCHEMA.field("per_gpu").type.value_type]).cast(SCHEMA.field("per_gpu").type.value_type)
    per_gpu = pa.ListArray.from_arrays(pa.array(g_off), gpu_structs)
    st = np.array([o[0] for o in OUTCOMES])[oc]
    month = time.strftime("%Y-%m", time.gmtime(month_start))
    cols = {
        "cluster": pa.array(np.full(n, "big")), "jobid": pa.array(ids.astype(str)), "job_id_raw": pa.array(ids),
        "array_job_id": pa.array(np.full(n, "")), "array_task_id": pa.array(np.full(n, "")),
        "name": pa.array(np.char.add("run-", (ids % 5000).astype(str))), "user": pa.array(users),
        "account": pa.array(np.array(ACCOUNTS)[rng.integers(0, len(ACCOUNTS), n)]), "partition": pa.array(parts),
        "qos": pa.array(np.full(n, "normal")), "nodes": pa.array(nodes),
        "nnodes": pa.array(np.where(multi, 2, 1).astype(np.int32)),
        "submit": ms(submit), "eligible": ms(submit), "start": ms(start), "end": ms(end),
        "elapsed_s": pa.array(elapsed.astype(float)), "time_limit_s": pa.array((elapsed * 2).astype(float)),
        "queue_wait_s": pa.array(wait.astype(float)), "state": pa.array(st),
        "outcome": pa.array(np.array([o[1] for o in OUTCOMES])[oc]),
        "cause": pa.array(np.array([o[2] for o in OUTCOMES])[oc]),
        "exit_code": pa.array(np.array([o[3] for o in OUTCOMES])[oc]), "cpus_req": pa.array(cpus, pa.int32()),
        "cpus_alloc": pa.array(cpus, pa.int32()), "cpu_time_s": pa.array(cpu_time),
        "cpu_efficiency": pa.array(cpu_time / (cpus * elapsed)), "mem_req_bytes": pa.array(cpus * (4 << 30)),
        "mem_alloc_bytes": pa.array(cpus * (4 << 30)), "mem_peak_bytes": pa.array(peak),
        "mem_peak_source": pa.array(np.full(n, "cgroup")), "gpus_alloc": pa.array(gpu_n),
        "gpu_model": pa.array(np.where(gpus > 0, "h100", "")),
        "gpu_util_mean": pa.array(np.where(gpus > 0, rng.uniform(0, 1, n), np.nan), from_pandas=True),
        "gpu_sm_active_mean": pa.array(np.where(gpus > 0, rng.uniform(0, 1, n), np.nan), from_pandas=True),
        "gpu_mem_peak_bytes": pa.array(np.where(gpus > 0, rng.integers(0, 80 << 30, n), 0)),
        "energy_j": pa.array(np.round(energy)), "energy_cpu_j": pa.array(np.round(energy)),
        "energy_gpu_j": pa.array(np.zeros(n)),
        "energy_source": pa.array(np.full(n, "hpcwatch")),
        "fs_read_bytes": pa.array(rng.integers(0, 1 << 40, n)), "fs_write_bytes": pa.array(rng.integers(0, 1 << 38, n)),
        "cost": pa.array(energy / 3.6e6 * 0.25), "cost_cpu": pa.array(np.zeros(n)), "cost_mem": pa.array(np.zeros(n)),
        "cost_gpu": pa.array(np.zeros(n)), "cost_energy": pa.array(energy / 3.6e6 * 0.25),
        "currency": pa.array(np.full(n, "EUR")), "per_node": per_node, "per_gpu": per_gpu,
        "missing": pa.ListArray.from_arrays(pa.array(np.zeros(n + 1, np.int32)), pa.array([], pa.string())),
        "month": pa.array(np.full(n, month)), "written_at": ms(end + 60),
        "schema_version": pa.array(np.ones(n, np.int16)),
    }
    return pa.table([cols[f.name].cast(f.type) for f in SCHEMA], schema=SCHEMA)


def write_month(store: SummaryStore, table: pa.Table) -> str:
    """One compacted month file, written the way compaction writes it (sorted by job id)."""
    month, cluster = table.column("month")[0].as_py(), table.column("cluster")[0].as_py()
    directory = store.partition_dir(cluster, month)
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "compact-bench.parquet")
    pq.write_table(table.sort_by([("jobid", "ascending"), ("submit", "ascending")]), path, compression="zstd",
                   row_group_size=ROW_GROUP)
    return path


def run_size(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(1)
    work = tempfile.mkdtemp(prefix="hpcwatch-bench-size-")
    try:
        t0 = time.perf_counter()
        table = month_table(args.jobs, T0, 1_000_000, rng)
        path = write_month(SummaryStore(work), table)
        size = os.path.getsize(path)
        # The peer: the same jobs as `sacct --parsable2` text with the summary's columns (the flat ones).
        flat = [f.name for f in SCHEMA if not pa.types.is_list(f.type)]
        sample = table.select(flat).slice(0, 20000).to_pylist()
        text = "".join("|".join("" if v is None else str(v) for v in row.values()) + "\n" for row in sample)
        per_row_text = len(text.encode()) / len(sample)
        print(f"{args.jobs} jobs, one month: {size / 1e6:.1f} MB on disk ({size / args.jobs:.0f} bytes/job, "
              f"{len(SCHEMA)} columns incl. per-node and per-GPU lists; built in {time.perf_counter() - t0:.1f} s)")
        print(f"peer: the flat columns as |-separated text: {per_row_text * args.jobs / 1e6:.0f} MB "
              f"({per_row_text:.0f} bytes/job): Parquet is {per_row_text * args.jobs / size:.1f}x smaller")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def run_report(args: argparse.Namespace) -> None:
    rng = np.random.default_rng(2)
    work = args.dataset or tempfile.mkdtemp(prefix="hpcwatch-bench-report-")
    store = SummaryStore(work)
    try:
        if not store.files():
            t0 = time.perf_counter()
            months = max(1, args.jobs // args.per_month)
            for m in range(months):
                month_start = T0 + m * 31 * 86400
                month_start -= month_start % 86400
                write_month(store, month_table(args.per_month, month_start, 1_000_000 + m * args.per_month, rng))
            print(f"built {months} months x {args.per_month} jobs in {time.perf_counter() - t0:.0f} s, "
                  f"{sum(os.path.getsize(f) for f in store.files()) / 1e9:.2f} GB")
        total = store.sql("SELECT count(*) FROM read_parquet('" + os.path.join(work, "*", "*", "*.parquet") + "')")
        print(f"dataset: {total[0][0]} jobs in {len(store.files())} files")
        picks = [str(1_000_000 + int(i)) for i in np.random.default_rng(3).integers(0, args.jobs, args.reports)]
        cli = shutil.which("hpcwatch") or os.path.join(os.path.dirname(sys.executable), "hpcwatch")
        walls, cpus, finds = [], [], []
        for jobid in picks:
            t0, r0 = time.perf_counter(), resource.getrusage(resource.RUSAGE_CHILDREN)
            proc = subprocess.run([cli, "job", "report", jobid, "--dataset", work], capture_output=True, text=True)
            walls.append(time.perf_counter() - t0)
            r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime)
            assert proc.returncode == 0 and f"Job {jobid}" in proc.stdout, proc.stderr
            t0 = time.perf_counter()
            assert store.find(jobid).jobid == jobid
            finds.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for f in store.files():   # the peer: read every job id and look for one
            col = pq.read_table(f, columns=["jobid"]).column("jobid")
            if picks[0] in col.to_pylist():
                break
        scan = time.perf_counter() - t0
        print(f"`hpcwatch job report JOBID` (new process each): wall median {statistics.median(walls):.2f} s, "
              f"max {max(walls):.2f} s; CPU (user + system) median {statistics.median(cpus):.2f} s, "
              f"max {max(cpus):.2f} s over {len(walls)} jobs; load average {os.getloadavg()[0]:.1f}")
        print(f"  of which the look-up (SummaryStore.find, DuckDB): median {statistics.median(finds) * 1e3:.0f} ms")
        print(f"peer: scanning the job id column of every file with pyarrow: {scan:.2f} s "
              f"({scan / statistics.median(finds):.0f}x the look-up)")
    finally:
        if not args.keep and not args.dataset:
            shutil.rmtree(work, ignore_errors=True)


# ----------------------------------------------------------------------------------------- parse
def pipe_split_summary(text: str) -> tuple[dict[str, sacct.SacctDetail], int]:
    """The summary reader the separator replaced, as it was (the baseline): one line per record, split on `|`."""
    allocations, by_jobid, steps, skipped = {}, {}, [], 0
    n = len(SUMMARY_FIELDS)
    for line in text.splitlines():
        if not line.strip():
            continue
        p = line.split("|", n - 1)
        if len(p) != n or not p[1].split(".")[0].isdigit():
            skipped += 1
            continue
        if "." in p[0]:
            steps.append(p)
            continue
        d = sacct._detail(p)
        allocations[d.jobid_raw] = by_jobid[d.jobid] = d
    for p in steps:
        owner = by_jobid.get(p[0].split(".", 1)[0])
        if owner is None:
            skipped += 1
            continue
        sacct._fold_step(owner, p)
    return allocations, skipped


def run_parse(args: argparse.Namespace) -> None:
    jobs = synthetic_jobs(args.jobs, T0, random.Random(11))
    new_text = "".join(s for _, s, _, _ in jobs)
    old_text = new_text.replace(SEP, "|")       # synthetic names hold no `|`: the same records, `|`-separated
    assert parse_summary_sacct(new_text, SEP) == pipe_split_summary(old_text)
    new = old = float("inf")
    for _ in range(args.runs):                  # interleaved, so a shared machine's load hits both alike
        for text, fn, best in ((new_text, lambda t: parse_summary_sacct(t, SEP), "new"),
                               (old_text, pipe_split_summary, "old")):
            parse_time.cache_clear()            # both read the same timestamps: neither may inherit the other's cache
            t0 = time.process_time()
            fn(text)
            took = time.process_time() - t0
            new, old = (min(new, took), old) if best == "new" else (new, min(old, took))
    print(f"parse {2 * args.jobs:,} summary records ({args.jobs:,} jobs and their steps), CPU best of {args.runs}: "
          f"separator {new:.3f} s / `|` split {old:.3f} s (ratio {new / old:.2f}); text "
          f"{len(new_text.encode()) / 1e6:.1f} MB / {len(old_text.encode()) / 1e6:.1f} MB")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = ap.add_subparsers(dest="what", required=True)
    w = sub.add_parser("writer")
    w.add_argument("--jobs", type=int, default=2000)
    w.add_argument("--per-refresh", type=int, default=500)
    w.add_argument("--batch", type=int, default=100)
    r = sub.add_parser("report")
    r.add_argument("--jobs", type=int, default=10_000_000)
    r.add_argument("--per-month", type=int, default=1_000_000)
    r.add_argument("--reports", type=int, default=10)
    r.add_argument("--dataset", help="reuse (or keep) the dataset here")
    r.add_argument("--keep", action="store_true")
    s = sub.add_parser("size")
    s.add_argument("--jobs", type=int, default=1_000_000)
    p = sub.add_parser("parse")
    p.add_argument("--jobs", type=int, default=20_000)
    p.add_argument("--runs", type=int, default=9)
    args = ap.parse_args()
    {"writer": run_writer, "report": run_report, "size": run_size, "parse": run_parse}[args.what](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
