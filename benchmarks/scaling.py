"""Scaling past one machine: a simulated fleet scraped by Prometheus and by vmagent -> VictoriaMetrics at once.

`run --nodes N` starts the fleet simulator (hpcwatch.harness.fleet: N node agents, 4 jobs each, jobs
ending every 10 minutes, one cluster agent), one Prometheus on the shipped prometheus.yml and rules,
and vmagent on the shipped deploy/scale/vmagent/scrape.yml writing to VictoriaMetrics with vmalert on
the same rules (30 s scrape and evaluation intervals, as shipped). After a warm-up it measures, over a
window: samples ingested per second and CPU cores of every process (from /proc), resident memory per
active series of each engine, the time to evaluate every generated rule as an instant query on each
engine (and Prometheus' own rule-group durations), the dashboards' panel queries as Grafana sends them
(range queries over the last 15 minutes, real variable values, the heaviest listed), and the load average.
`table` turns the JSON results into the tables of docs/scaling.md, with a linear fit extrapolated to
10,000 and 20,000 nodes; `series` prints series per node and per job.

    .venv/bin/python benchmarks/scaling.py series
    .venv/bin/python benchmarks/scaling.py run --nodes 1000 --out benchmarks/results/scaling-1000.json
    .venv/bin/python benchmarks/scaling.py table benchmarks/results/scaling-*.json
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Sequence

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests"))

import yaml  # noqa: E402
from grafana_sim import TimeMacros, interpolate, regex_escape  # noqa: E402

from hpcwatch.harness.fleet import Fleet, address  # noqa: E402
from hpcwatch.harness.fleetdata import node_template  # noqa: E402
from hpcwatch.harness.prometheus import Prometheus, VictoriaMetrics, VMAgent, VMAlert  # noqa: E402
from hpcwatch.harness.util import http_get  # noqa: E402

DEPLOY = os.path.join(ROOT, "deploy")
RULES = sorted(glob.glob(os.path.join(DEPLOY, "prometheus", "rules", "*.yml")))
HZ = os.sysconf("SC_CLK_TCK")
JOBS = 4


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process and its waited-for children, from /proc/<pid>/stat."""
    with open(f"/proc/{pid}/stat") as fh:
        f = fh.read().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / HZ


def rss_bytes(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    return 0


def loadavg() -> str:
    with open("/proc/loadavg") as fh:
        return " ".join(fh.read().split()[:3])


def metrics(url: str) -> dict[str, float]:
    """{sample name with labels: value} of a /metrics page."""
    status, body = http_get(url + "/metrics", timeout=30)
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            try:
                out[name] = float(value)
            except ValueError:
                pass
    return out


def total(m: dict[str, float], prefix: str) -> float:
    return sum(v for k, v in m.items() if k == prefix or k.startswith(prefix + "{"))


def shipped(path: str, targets: str, **glob_over: str) -> dict:
    """A shipped config with the file_sd paths pointed at the fleet's target files."""
    with open(os.path.join(DEPLOY, path)) as fh:
        cfg = yaml.safe_load(fh)
    for job in cfg["scrape_configs"]:
        for sd in job.get("file_sd_configs", []):
            sd["files"] = [os.path.join(targets, os.path.basename(f)) for f in sd["files"]]
    cfg.pop("rule_files", None)
    cfg.pop("alerting", None)
    return cfg


def rule_exprs() -> list[tuple[str, str]]:
    """(rule name, expression) of every generated rule."""
    out = []
    for path in RULES:
        with open(path) as fh:
            for group in yaml.safe_load(fh)["groups"]:
                for rule in group["rules"]:
                    out.append((rule.get("record") or rule.get("alert"), rule["expr"]))
    return out


def timed_query(url: str, path: str, params: dict[str, str]) -> float:
    t0 = time.perf_counter()
    status, body = http_get(f"{url}{path}?{urllib.parse.urlencode(params)}", timeout=120)
    elapsed = time.perf_counter() - t0
    if status != 200:
        raise SystemExit(f"{url}{path} {params}: HTTP {status}: {body[:300]!r}")
    return elapsed


def dashboard_queries(jobid: str, node: str, port: int) -> list[tuple[str, str]]:
    """(dashboard/panel, expr) of every panel query, variables set to real values of the simulated fleet
    (one node, one of its jobs), formatted as Grafana formats them (regex-escaped where matched by =~)."""
    chosen = {"cluster": "alpha", "instance": regex_escape(f"{node}:{port}"), "node": regex_escape(node),
              "jobid": jobid, "queue": "batch", "service": "hpc"}
    macros = TimeMacros.for_range("1h", "30s")
    out = []
    for path in sorted(glob.glob(os.path.join(DEPLOY, "grafana", "dashboards", "*.json"))):
        with open(path) as fh:
            dash = json.load(fh)
        for panel in _panels(dash.get("panels", [])):
            for target in panel.get("targets", []):
                if isinstance(target.get("expr"), str) and target["expr"]:
                    expr = macros.expand(interpolate(target["expr"], chosen))
                    out.append((f"{dash['uid']}/{panel.get('title', '?')}", expr))
    return out


def _panels(panels: list) -> list:
    out = []
    for p in panels:
        out.append(p)
        out.extend(_panels(p.get("panels", [])))
    return out


def query_times(url: str, queries: Sequence[tuple[str, str]], instant: bool) -> dict[str, float]:
    now = time.time()
    out = {}
    for name, expr in queries:
        if instant:
            out[name] = timed_query(url, "/api/v1/query", {"query": expr, "time": f"{now:.3f}"})
        else:
            out[name] = timed_query(url, "/api/v1/query_range", {"query": expr, "start": f"{now - 900:.3f}",
                                                                 "end": f"{now:.3f}", "step": "30"})
    return out


def run(args: argparse.Namespace) -> dict:
    work = tempfile.mkdtemp(prefix="hpcwatch-scaling-")
    targets = os.path.join(work, "targets")
    started = []

    def start(d):
        started.append(d)
        d.start()
        return d

    result: dict = {"nodes": args.nodes, "jobs_per_node": JOBS, "job_seconds": args.job_seconds,
                    "load_before": loadavg(),
                    "warmup_s": args.warmup, "window_s": args.window}
    try:
        fleet = start(Fleet(work, args.nodes, targets, jobs=JOBS, job_seconds=args.job_seconds))
        prom = start(Prometheus(work, shipped("prometheus/prometheus.yml", targets), RULES))
        vm = start(VictoriaMetrics(work))
        agent = start(VMAgent(work, shipped("scale/vmagent/scrape.yml", targets), f"{vm.url}/api/v1/write"))
        vmalert = start(VMAlert(work, RULES, vm.url, "http://127.0.0.1:9", evaluation_interval="30s",
                                extra_args=[f"-remoteWrite.url={vm.url}", f"-remoteRead.url={vm.url}"]))
        pids = {"fleet": fleet.process.pid, "prometheus": prom.process.pid, "victoria-metrics": vm.process.pid,
                "vmagent": agent.process.pid, "vmalert": vmalert.process.pid}
        print(f"{args.nodes} nodes: warming up {args.warmup}s (load {loadavg()})", file=sys.stderr, flush=True)
        time.sleep(args.warmup)
        cpu0 = {k: cpu_seconds(p) for k, p in pids.items()}
        pm0, vm0, f0 = metrics(prom.url), metrics(vm.url), fleet.stats()
        t0 = time.monotonic()
        time.sleep(args.window)
        dt = time.monotonic() - t0
        cpu1 = {k: cpu_seconds(p) for k, p in pids.items()}
        pm1, vm1, f1 = metrics(prom.url), metrics(vm.url), fleet.stats()
        result["load_window"] = loadavg()
        result["cpu_cores"] = {k: (cpu1[k] - cpu0[k]) / dt for k in pids}
        result["rss_bytes"] = {k: rss_bytes(p) for k, p in pids.items()}
        appended = "prometheus_tsdb_head_samples_appended_total"
        result["prometheus"] = {
            "samples_per_s": (total(pm1, appended) - total(pm0, appended)) / dt,
            "head_series": total(pm1, "prometheus_tsdb_head_series"),
            "rule_groups_s": total(pm1, "prometheus_rule_group_last_duration_seconds"),
            "scrape_duration_avg_s": _avg_scrape(prom, "hpcwatch-node"),
            "targets_up": len(prom.query('up{job="hpcwatch-node"} == 1')),
        }
        result["victoria-metrics"] = {
            "samples_per_s": (total(vm1, "vm_rows_added_to_storage_total")
                              - total(vm0, "vm_rows_added_to_storage_total")) / dt,
            "active_series": vm1.get('vm_cache_entries{type="storage/hour_metric_ids"}', 0.0),
            "targets_up": len(vm.query('up{job="hpcwatch-node"} == 1')),
        }
        for engine, key in (("prometheus", "head_series"), ("victoria-metrics", "active_series")):
            series = result[engine][key]
            result[engine]["rss_bytes_per_series"] = result["rss_bytes"][engine] / series if series else None
        scrapes = f1["scrapes"] - f0["scrapes"]
        result["fleet"] = {"cpu_ms_per_scrape": 1000 * (cpu1["fleet"] - cpu0["fleet"]) / scrapes if scrapes else None,
                           "scrapes_per_s": scrapes / dt, "series_per_node": f1["series_per_node"]}
        rules = rule_exprs()
        result["rules"] = {"count": len(rules)}
        for engine, url in (("prometheus", prom.url), ("victoria-metrics", vm.url)):
            times = query_times(url, rules, instant=True)
            result["rules"][engine] = {"total_s": sum(times.values()),
                                       "heaviest": sorted(times.items(), key=lambda kv: -kv[1])[:3]}
        jobs = prom.query(f'hpc_job_info{{node="{address(0)}"}}')
        jobid = jobs[0]["metric"]["jobid"] if jobs else "1000"
        dash = dashboard_queries(jobid, address(0), fleet.port)
        result["dashboards"] = {"queries": len(dash)}
        for engine, url in (("prometheus", prom.url), ("victoria-metrics", vm.url)):
            times = query_times(url, dash, instant=False)
            result["dashboards"][engine] = {"total_s": sum(times.values()),
                                            "heaviest": sorted(times.items(), key=lambda kv: -kv[1])[:5]}
        result["load_after"] = loadavg()
    finally:
        for d in reversed(started):
            d.stop()
        shutil.rmtree(work, ignore_errors=True)
    return result


def _avg_scrape(prom: Prometheus, job: str) -> float | None:
    got = prom.query(f'avg(scrape_duration_seconds{{job="{job}"}})')
    return float(got[0]["value"][1]) if got else None


def series(_: argparse.Namespace) -> dict:
    tpl = node_template()
    return {"node_series_without_jobs": tpl.per_node, "series_per_job": tpl.per_job,
            "series_per_node_4_jobs": tpl.series(JOBS),
            "plus_scrape_series": "each scraper adds 5 per target (up, scrape_duration_seconds, "
                                  "scrape_samples_scraped, scrape_samples_post_metric_relabeling, "
                                  "scrape_series_added)"}


def _fit(xs: list[float], ys: list[float]) -> tuple[float, float]:
    """Least-squares line y = a + b x."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    var = sum((x - mx) ** 2 for x in xs)
    b = sum((x - mx) * (y - my) for x, y in zip(xs, ys)) / var if var else 0.0
    return my - b * mx, b


def table(args: argparse.Namespace) -> str:
    rows = sorted((json.load(open(p)) for f in args.files for p in glob.glob(f)), key=lambda r: r["nodes"])
    rows = [r for r in rows if r.get("job_seconds", 600.0) == 600.0]  # churn runs are read on their own
    def complete(r: dict) -> bool:  # every target up on both engines: the run measured the engines
        return r["prometheus"]["targets_up"] == r["victoria-metrics"]["targets_up"] == r["nodes"]

    lines = ["| nodes | load (window) | Prom samples/s | Prom cores | Prom RSS MiB | Prom B/series | VM samples/s "
             "| VM cores | vmagent cores | VM RSS MiB | VM B/series | rules Prom s | rules VM s | dashboards Prom s "
             "| dashboards VM s | fleet ms CPU/scrape |",
             "|" + "---|" * 16]
    for r in rows:
        p, v, c, m = r["prometheus"], r["victoria-metrics"], r["cpu_cores"], r["rss_bytes"]
        mark = "" if complete(r) else (f" (targets up: Prometheus {r['prometheus']['targets_up']:,}, "
                                       f"VictoriaMetrics {r['victoria-metrics']['targets_up']:,})")
        lines.append(f"| {r['nodes']:,}{mark} | {r['load_window']} | {p['samples_per_s']:,.0f} | {c['prometheus']:.2f} "
                     f"| {m['prometheus'] / 2**20:,.0f} | {p['rss_bytes_per_series'] or 0:,.0f} "
                     f"| {v['samples_per_s']:,.0f} | {c['victoria-metrics']:.2f} | {c['vmagent']:.2f} "
                     f"| {m['victoria-metrics'] / 2**20:,.0f} | {v['rss_bytes_per_series'] or 0:,.0f} "
                     f"| {r['rules']['prometheus']['total_s']:.2f} | {r['rules']['victoria-metrics']['total_s']:.2f} "
                     f"| {r['dashboards']['prometheus']['total_s']:.2f} "
                     f"| {r['dashboards']['victoria-metrics']['total_s']:.2f} "
                     f"| {r['fleet']['cpu_ms_per_scrape']:.2f} |")
    fitted = [r for r in rows if complete(r)]
    if len(fitted) >= 2:
        xs = [r["nodes"] for r in fitted]
        fit = ", ".join(str(x) for x in xs)
        lines += ["", f"| extrapolated (linear fit of the complete runs, {fit} nodes) | "
                  + " | ".join(f"{n:,} nodes" for n in (10000, 20000)) + " |",
                  "|---|---|---|"]
        for label, get in (  # dashboards: most panels read one node or job, so their time hardly grows
                ("Prometheus samples/s", lambda r: r["prometheus"]["samples_per_s"]),
                ("Prometheus cores", lambda r: r["cpu_cores"]["prometheus"]),
                ("Prometheus RSS GiB", lambda r: r["rss_bytes"]["prometheus"] / 2**30),
                ("VictoriaMetrics cores", lambda r: r["cpu_cores"]["victoria-metrics"]),
                ("vmagent cores", lambda r: r["cpu_cores"]["vmagent"]),
                ("VictoriaMetrics RSS GiB", lambda r: r["rss_bytes"]["victoria-metrics"] / 2**30),
                ("rule set on Prometheus s", lambda r: r["rules"]["prometheus"]["total_s"]),
                ("rule set on VictoriaMetrics s", lambda r: r["rules"]["victoria-metrics"]["total_s"]),
                ("dashboards on Prometheus s", lambda r: r["dashboards"]["prometheus"]["total_s"]),
                ("dashboards on VictoriaMetrics s", lambda r: r["dashboards"]["victoria-metrics"]["total_s"])):
            a, b = _fit(xs, [get(r) for r in fitted])
            lines.append(f"| {label} | " + " | ".join(f"{a + b * n:,.2f}" for n in (10000, 20000)) + " |")
        lines += ["", f"heaviest dashboard queries at {fitted[-1]['nodes']:,} nodes:"]
        last = fitted[-1]
        for engine in ("prometheus", "victoria-metrics"):
            for name, s in last["dashboards"][engine]["heaviest"]:
                lines.append(f"- {engine}: {name}: {s * 1000:.0f} ms")
        for engine in ("prometheus", "victoria-metrics"):
            for name, s in last["rules"][engine]["heaviest"]:
                lines.append(f"- rule on {engine}: {name}: {s * 1000:.0f} ms")
    return "\n".join(lines)


# (title, unit, [(legend, colour, value of a run)]) of each chart `plot` draws.
CHARTS = (
    ("Resident memory", "GiB", [("Prometheus", "#d44a3a", lambda r: r["rss_bytes"]["prometheus"] / 2**30),
                                ("VictoriaMetrics", "#1f78c1", lambda r: r["rss_bytes"]["victoria-metrics"] / 2**30)]),
    ("CPU", "cores", [("Prometheus", "#d44a3a", lambda r: r["cpu_cores"]["prometheus"]),
                      ("VictoriaMetrics", "#1f78c1", lambda r: r["cpu_cores"]["victoria-metrics"]),
                      ("vmagent", "#629e51", lambda r: r["cpu_cores"]["vmagent"])]),
    ("Full rule set, one evaluation", "s", [
        ("Prometheus", "#d44a3a", lambda r: r["rules"]["prometheus"]["total_s"]),
        ("vmalert on VictoriaMetrics", "#1f78c1", lambda r: r["rules"]["victoria-metrics"]["total_s"])]),
)
PLOT_TO = 20000


def plot(args: argparse.Namespace) -> str:
    """An SVG of the scaling curves: measured points (complete runs) joined, the linear fit dashed to 20,000."""
    rows = sorted((json.load(open(p)) for f in args.files for p in glob.glob(f)), key=lambda r: r["nodes"])
    runs = [r for r in rows if r.get("job_seconds", 600.0) == 600.0
            and r["prometheus"]["targets_up"] == r["victoria-metrics"]["targets_up"] == r["nodes"]]
    if len(runs) < 2:
        raise SystemExit("plot: needs at least two complete runs (every target up on both engines)")
    w, h, pad = 420, 260, 48
    xs = [r["nodes"] for r in runs]
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{w * len(CHARTS)}" height="{h + 30}" '
           'font-family="sans-serif" font-size="11">']
    for i, (title, unit, lines) in enumerate(CHARTS):
        fits = [(name, colour, [get(r) for r in runs], _fit(xs, [get(r) for r in runs])) for name, colour, get in lines]
        top = max(max(max(ys), a + b * PLOT_TO) for _, _, ys, (a, b) in fits) * 1.1 or 1.0

        def px(n: float, v: float, x0: int = i * w, top: float = top) -> tuple[float, float]:
            return x0 + pad + (w - 2 * pad) * n / PLOT_TO, h - pad + 20 - (h - 2 * pad) * v / top
        ox, oy = px(0, 0)
        out.append(f'<text x="{ox}" y="20" font-weight="bold">{title} ({unit})</text>')
        out.append(f'<line x1="{ox}" y1="{oy}" x2="{px(PLOT_TO, 0)[0]}" y2="{oy}" stroke="#888"/>'
                   f'<line x1="{ox}" y1="{oy}" x2="{ox}" y2="{px(0, top)[1]}" stroke="#888"/>')
        for n in (0, 5000, 10000, 15000, 20000):
            x, _ = px(n, 0)
            out.append(f'<text x="{x}" y="{oy + 14}" text-anchor="middle">{n // 1000}k</text>')
        for frac in (0.5, 1.0):
            _, y = px(0, top / 1.1 * frac)
            out.append(f'<text x="{ox - 4}" y="{y + 4}" text-anchor="end">{top / 1.1 * frac:.3g}</text>')
        for k, (name, colour, ys, (a, b)) in enumerate(fits):
            pts = " ".join("{:.1f},{:.1f}".format(*px(n, v)) for n, v in zip(xs, ys))
            out.append(f'<polyline points="{pts}" fill="none" stroke="{colour}" stroke-width="2"/>')
            out += [f'<circle cx="{px(n, v)[0]:.1f}" cy="{px(n, v)[1]:.1f}" r="3" fill="{colour}"/>'
                    for n, v in zip(xs, ys)]
            (x1, y1), (x2, y2) = px(xs[-1], a + b * xs[-1]), px(PLOT_TO, a + b * PLOT_TO)
            out.append(f'<line x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}" stroke="{colour}" '
                       'stroke-dasharray="5,4"/>')
            out.append(f'<text x="{ox + 8}" y="{36 + 13 * k}" fill="{colour}">{name}</text>')
    out.append(f'<text x="8" y="{h + 24}" fill="#555">simulated nodes (4 jobs each); solid: measured '
               f'({", ".join(f"{n:,}" for n in xs)}), dashed: linear fit to {PLOT_TO:,}</text></svg>')
    return "\n".join(out) + "\n"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--nodes", type=int, required=True)
    r.add_argument("--warmup", type=float, default=120.0, help="seconds before measuring (default 120)")
    r.add_argument("--window", type=float, default=90.0, help="seconds measured (default 90)")
    r.add_argument("--job-seconds", type=float, default=600.0, help="how long each simulated job runs (600)")
    r.add_argument("--out", help="write the JSON result here too")
    sub.add_parser("series")
    t = sub.add_parser("table")
    t.add_argument("files", nargs="+")
    g = sub.add_parser("plot", help="the scaling curves as SVG on stdout")
    g.add_argument("files", nargs="+")
    args = p.parse_args()
    if args.cmd in ("table", "plot"):
        print(table(args) if args.cmd == "table" else plot(args), end="" if args.cmd == "plot" else "\n")
        return 0
    result = run(args) if args.cmd == "run" else series(args)
    text = json.dumps(result, indent=1)
    print(text)
    if getattr(args, "out", None):
        os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
        with open(args.out, "w") as fh:
            fh.write(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
