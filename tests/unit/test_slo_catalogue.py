"""The catalogue's job-success SLI against the exporter's own outcome table: every (outcome, cause)
pair the Slurm and Flux adapters can emit lands where docs/slo.md says (error, good, out of the total).

Where a pair lands is read from the generated queries by the history engine's PromQL reader (the
same reading `slo report` replays), so the queries, the replay and the docs are held to one table."""

from __future__ import annotations

import itertools
import os
import re

import pytest
from hpcwatch.exporters.scheduler import outcomes as oc
from hpcwatch.slo import load_specs
from hpcwatch.slo.catalogue import FINISHED, owner_withdrawn
from hpcwatch.slo.history.query import Linear, parse_sli_query
from hpcwatch.slo.loader import load_documents

ROOT = os.path.join(os.path.dirname(__file__), "..", "..")
DOCS = os.path.join(ROOT, "docs", "slo.md")


def emitted_pairs() -> set[tuple[str, str]]:
    """Every pair the adapters return, driven through their public functions (not their tables)."""
    out = set()
    for state in [*oc.SLURM_TERMINAL, *oc.SLURM_NOT_FINISHED]:
        for text, exit_code in itertools.product((state, f"{state} by 1000", f"{state} by 0"), ("0:0", "1:0")):
            out.add(oc.slurm_outcome(text, exit_code, uid=1000))
    for result, etype, note in itertools.product(oc.FLUX_RESULTS, ("", *oc.FLUX_EXCEPTIONS, "something-new"),
                                                 ("", "lost contact with broker")):
        out.add(oc.flux_outcome(result, etype, note))
    out.discard(None)
    return out


def documented() -> dict[tuple[str, str], str]:
    """The table under docs/slo.md's 'Where each finished job lands' heading."""
    with open(DOCS, encoding="utf-8") as fh:
        text = fh.read()
    section = text.split("Where each finished job lands", 1)[1].split("\n#", 1)[0]
    rows = re.findall(r"^\| `(\w+)` \| `(\w+)` \| (error|good|out of the total) \|", section, re.M)
    return {(o, c): where for o, c, where in rows}


def coefficient(q: Linear, labels: dict[str, str]) -> float:
    return sum(coef for term, coef in q.terms if term.metric == FINISHED
               and all(m.matches(labels.get(m.label, "")) for m in term.matchers))


def landing(slo, outcome: str, cause: str) -> str:
    labels = {"cluster": "alpha", "queue": "batch", "outcome": outcome, "cause": cause}
    err = coefficient(parse_sli_query(slo.sli.error_query), labels)
    tot = coefficient(parse_sli_query(slo.sli.total_query), labels)
    assert err in (0, 1) and tot in (0, 1) and err <= tot, (outcome, cause, err, tot)
    return "out of the total" if tot == 0 else "error" if err else "good"


def _catalogue(**slo) -> object:
    entry = {"sli": "job-success", "objective": 99, "queues": ["batch"], **slo}
    doc = {"apiVersion": "hpcwatch/v1", "kind": "SLOCatalogue", "spec": {"clusters": ["alpha"], "slos": [entry]}}
    return load_documents([("c.yaml", doc)])[0]


def test_adapters_emit_only_the_exported_pairs():
    """NEUTRAL_PAIRS (what every queue starts at 0) covers everything the adapters return."""
    assert emitted_pairs() <= set(oc.NEUTRAL_PAIRS)
    assert ("cancelled", "none") in emitted_pairs() and ("cancelled", "user") not in emitted_pairs()


def test_every_pair_lands_where_the_docs_say():
    table = documented()
    assert set(table) == set(oc.NEUTRAL_PAIRS), "docs/slo.md's table must list every exported pair"
    slo = _catalogue()
    assert {p: landing(slo, *p) for p in oc.NEUTRAL_PAIRS} == table


def test_owner_cancels_leave_the_total():
    """An owner's cancel is cancelled/none in the exporter; the catalogue removes exactly that."""
    assert owner_withdrawn() == (("cancelled", "none"),)
    slo = _catalogue()
    assert landing(slo, "cancelled", "none") == "out of the total"
    assert landing(slo, "cancelled", "system") == "error"
    assert landing(_catalogue(count_user_cancels=True), "cancelled", "none") == "good"


@pytest.mark.parametrize("spec,pair,where", [
    ({"ignore_outcomes": ["preempted"]}, ("preempted", "system"), "out of the total"),
    ({"error_causes": ["system", "user"]}, ("failed", "user"), "error"),
    ({"error_outcomes": ["node_fail"]}, ("preempted", "system"), "good"),
])
def test_options_move_pairs(spec, pair, where):
    assert landing(_catalogue(**spec), *pair) == where


def test_shipped_catalogue_example():
    """examples/slo/hpc-catalogue.yaml (what `hpcwatch generate` ships) keeps preempted jobs out."""
    slos = load_specs([os.path.join(ROOT, "examples", "slo", "hpc-catalogue.yaml")])
    js = next(s for s in slos if s.name == "job-success-alpha-batch")
    assert landing(js, "cancelled", "none") == "out of the total"
    assert landing(js, "preempted", "system") == "out of the total"
    assert landing(js, "node_fail", "system") == "error" and landing(js, "failed", "user") == "good"
