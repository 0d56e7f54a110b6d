"""The fleet simulator: templates from our collectors on the fixture trees, per-node and per-time variation
that keeps the exposition valid (counters never fall, histograms stay cumulative, job ids unique), and
the simulator process serving it on per-node loopback addresses."""

from __future__ import annotations

import collections
import functools

import pytest
from prometheus_client.parser import text_string_to_metric_families

from hpcwatch.harness.fleet import Fleet, address
from hpcwatch.harness.fleetdata import cluster_template, node_agent_text, node_template

NODES, JOBS, JOB_SECONDS = 50, 4, 600.0


@functools.cache
def tpl():
    return node_template()


def parse(body: bytes) -> dict[tuple[str, tuple], float]:
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for fam in text_string_to_metric_families(body.decode()) for s in fam.samples}


def render(i: int, elapsed: float) -> dict[tuple[str, tuple], float]:
    return parse(tpl().render(i, NODES, elapsed, JOBS, JOB_SECONDS, 1.8e9 + elapsed))


def jobids(samples) -> set[str]:
    return {dict(labels)["jobid"] for _, labels in samples if "jobid" in dict(labels)}


def test_template_is_the_node_agents_output_with_one_job_standing_for_all():
    text = node_agent_text()
    t = tpl()
    assert t.per_job > 0 and t.per_node > 400
    # every node-level series of the real output is in the template, and every series of job 77
    own = {line.rpartition(" ")[0] for line in text.splitlines() if line and not line.startswith("#")}
    assert t.per_node == len({h for h in own if 'jobid="' not in h})
    assert t.per_job == len({h for h in own if 'jobid="77"' in h})


def test_render_serves_the_template_series_with_its_jobs():
    samples = render(7, 100.0)
    assert len(samples) == tpl().series(JOBS)
    assert len(jobids(samples)) == JOBS


def test_counters_never_fall_and_histograms_stay_cumulative():
    before, after = render(3, 100.0), render(3, 130.0)
    kinds = {f.name: f.type for f in text_string_to_metric_families(tpl().render(3, NODES, 0, JOBS, JOB_SECONDS,
                                                                                 0).decode())}
    counters = [k for k in before if kinds.get(k[0].removesuffix("_total")) == "counter"
                and k in after and "jobid" not in dict(k[1])]
    assert counters
    assert all(after[k] >= before[k] for k in counters)
    assert any(after[k] > before[k] for k in counters)
    cluster = parse(cluster_template("alpha").render(0, 1, 500.0, 0, JOB_SECONDS, 1.8e9))
    buckets = collections.defaultdict(list)
    for (name, labels), value in cluster.items():
        if name.endswith("_bucket"):
            d = dict(labels)
            le = float(d.pop("le"))
            buckets[(name, tuple(sorted(d.items())))].append((le, value))
    assert buckets
    for series in buckets.values():
        values = [v for _, v in sorted(series)]
        assert values == sorted(values)


def test_nodes_differ_in_values_not_in_series():
    a, b = render(1, 50.0), render(2, 50.0)
    strip = lambda s: {(n, tuple(kv for kv in labels if kv[0] != "jobid")) for n, labels in s}  # noqa: E731
    assert strip(a) == strip(b)
    common = set(a) & set(b)
    assert sum(a[k] != b[k] for k in common) > len(common) // 4


def test_jobs_end_and_new_ones_start_with_ids_unique_across_the_fleet():
    early = [jobids(render(i, 0.0)) for i in range(12)]
    later = [jobids(render(i, JOB_SECONDS + 1)) for i in range(12)]
    assert all(len(e) == JOBS for e in early)
    assert all(not (e & late) for e, late in zip(early, later))  # every slot has moved on to a new job
    every = [j for ids in early + later for j in ids]
    assert len(every) == len(set(every))


def test_cluster_agent_carries_the_simulated_cluster_and_the_catalogue_queue():
    text = cluster_template("alpha").render(0, 1, 0.0, 0, JOB_SECONDS, 1.8e9).decode()
    assert 'cluster="alpha"' in text and 'queue="batch"' in text and 'cluster="capt"' not in text


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    work = tmp_path_factory.mktemp("fleet")
    with Fleet(str(work), 3, str(work / "targets")) as f:
        yield f, work


def test_simulator_serves_each_node_on_its_own_address_and_counts_its_cpu(fleet):
    f, work = fleet
    bodies = [f.scrape(i) for i in range(3)]
    stats = f.stats()
    assert [len(parse(b.encode())) for b in bodies] == [stats["series_per_node"]] * 3
    assert stats["series_per_node"] == stats["node_series"] + JOBS * stats["per_job_series"]
    assert len(set(bodies)) == 3
    assert stats["per_node_scrapes"][:3] == [1, 1, 1] and stats["cpu_seconds"] > 0
    node_targets = (work / "targets" / "hpcwatch-node-alpha.yml").read_text()
    assert all(f"{address(i)}:{f.port}" in node_targets for i in range(3))
