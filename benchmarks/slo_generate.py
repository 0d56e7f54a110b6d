"""Benchmark: 500 SLOs (Sloth specs, the HPC catalogue, OpenSLO v1) loaded (every query parsed as
PromQL), generated, rendered one document per input object, and written. Goal: under 2 s.

    .venv/bin/python benchmarks/slo_generate.py

Prints wall and CPU seconds (median of 5 runs); on a shared machine the CPU figure is the one that
says what an idle machine would take. The peer column is PyYAML's own C dumper writing the same rule
documents, to show what our Go-compatible YAML text costs over the library's.
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

import yaml
from hpcwatch.slo import generate_rules
from hpcwatch.slo.generate import Options
from hpcwatch.slo.loader import load_documents
from hpcwatch.slo.output import Target, render_outputs
from hpcwatch.slo.writer import write_all

N = 500


def sloth_doc(i: int) -> dict:
    return {"version": "prometheus/v1", "service": f"svc{i}", "labels": {"team": "t", "tier": "2"},
            "slos": [{"name": "availability", "objective": 99.9,
                      "sli": {"events": {"error_query": f'sum(rate(http_requests_total{{job="j{i}",code=~"5.."}}'
                                                        "[{{.window}}]))",
                                         "total_query":
                                             f'sum(rate(http_requests_total{{job="j{i}"}}[{{{{.window}}}}]))'}},
                      "alerting": {"name": "Availability", "page_alert": {"labels": {"severity": "critical"}},
                                   "ticket_alert": {"labels": {"severity": "warning"}}}}]}


def catalogue_doc(n_clusters: int) -> dict:
    return {"apiVersion": "hpcwatch/v1", "kind": "SLOCatalogue",
            "spec": {"clusters": [f"c{i}" for i in range(n_clusters)],
                     "slos": [{"sli": "job-success", "objective": 99, "queues": ["batch", "gpu"]},
                              {"sli": "queue-wait", "objective": 95, "threshold": 3600, "queues": ["batch"],
                               "include_pending": True}]}}


def openslo_doc(i: int) -> dict:
    def src(query: str) -> dict:
        return {"metricSource": {"type": "Prometheus", "spec": {"query": query}}}

    meta = {"name": f"web{i}", "labels": {"team": ["a", "b"]}}
    return {"apiVersion": "openslo/v1", "kind": "SLO", "metadata": meta,
            "spec": {"service": "web", "budgetingMethod": "Occurrences",
                     "timeWindow": [{"duration": "28d", "isRolling": True}],
                     "indicator": {"metadata": {"name": f"i{i}"}, "spec": {"ratioMetric": {
                         "counter": True, "good": src(f'sum(http_requests_total{{job="j{i}",code=~"2.."}})'),
                         "total": src(f'sum(http_requests_total{{job="j{i}"}})')}}},
                     "objectives": [{"target": 0.999}]}}


def run(docs: list, out_dir: str) -> dict[str, float]:
    clock = {}
    w0, c0 = time.perf_counter(), time.process_time()
    slos = load_documents(docs)
    w1 = time.perf_counter()
    files = render_outputs(slos, Target(os.path.join(out_dir, "rules.yml")), Options())
    w2 = time.perf_counter()
    write_all(files)
    w3, c3 = time.perf_counter(), time.process_time()
    clock.update(n=len(slos), load=w1 - w0, render=w2 - w1, write=w3 - w2, wall=w3 - w0, cpu=c3 - c0)
    rules = generate_rules(slos)
    p0 = time.process_time()
    yaml.dump(rules, Dumper=getattr(yaml, "CSafeDumper", yaml.SafeDumper), sort_keys=False)
    clock["peer_cpu"] = time.process_time() - p0
    return clock


def main() -> None:
    cases = {"sloth prometheus/v1": [("b.yaml", sloth_doc(i)) for i in range(N)],
             "hpc catalogue": [("c.yaml", catalogue_doc(N // 3 + 1))],
             "openslo v1 (counter)": [("o.yaml", openslo_doc(i)) for i in range(N)]}
    print(f"{'input':22} {'SLOs':>5} {'load s':>7} {'render s':>9} {'write s':>8} {'wall s':>7} {'CPU s':>6} "
          f"{'PyYAML dump CPU s':>18}")
    with tempfile.TemporaryDirectory() as d:
        for name, docs in cases.items():
            runs = [run(docs, d) for _ in range(5)]
            med = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
            print(f"{name:22} {int(med['n']):5d} {med['load']:7.3f} {med['render']:9.3f} {med['write']:8.3f} "
                  f"{med['wall']:7.3f} {med['cpu']:6.3f} {med['peer_cpu']:18.3f}")
    print("goal: 500 SLOs under 2 s (median of 5 runs; CPU s is the idle-machine figure)")


if __name__ == "__main__":
    main()
