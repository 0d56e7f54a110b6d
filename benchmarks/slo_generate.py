"""Benchmark: 500 SLOs (Sloth specs and the HPC catalogue) loaded, generated and written. Goal: under 2 s.

    .venv/bin/python benchmarks/slo_generate.py
"""

from __future__ import annotations

import os
import statistics
import tempfile
import time

from hpcwatch.slo import generate_rules
from hpcwatch.slo.loader import load_documents
from hpcwatch.slo.writer import prometheus_text, write_all

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


def run(docs: list, out_dir: str) -> tuple[int, float, float, float]:
    t0 = time.perf_counter()
    slos = load_documents(docs)
    t1 = time.perf_counter()
    text = prometheus_text(generate_rules(slos))
    t2 = time.perf_counter()
    write_all({os.path.join(out_dir, "rules.yml"): text})
    t3 = time.perf_counter()
    return len(slos), t1 - t0, t2 - t1, t3 - t2


def main() -> None:
    cases = {"sloth prometheus/v1": [("b.yaml", sloth_doc(i)) for i in range(N)],
             "hpc catalogue": [("c.yaml", catalogue_doc(N // 3 + 1))]}
    print(f"{'input':22} {'SLOs':>5} {'load s':>8} {'generate+render s':>18} {'write s':>8} {'total s':>8}")
    with tempfile.TemporaryDirectory() as d:
        for name, docs in cases.items():
            runs = [run(docs, d) for _ in range(5)]
            n = runs[0][0]
            med = [statistics.median(r[k] for r in runs) for k in (1, 2, 3)]
            print(f"{name:22} {n:5d} {med[0]:8.3f} {med[1]:18.3f} {med[2]:8.3f} {sum(med):8.3f}")
    print("goal: 500 SLOs under 2 s (median of 5 runs)")


if __name__ == "__main__":
    main()
