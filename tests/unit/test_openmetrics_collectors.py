"""Every collector, on its fixture examples, serves OpenMetrics that prometheus_client's strict parser
accepts, with exactly the series the text format carries (what Prometheus stores either way)."""

from __future__ import annotations

import logging
import os

import pytest
from hpcwatch.exporters.exposition import OPENMETRICS_EOF, render_openmetrics_family, render_text
from hpcwatch.exporters.registry import load_all
from hpcwatch.exporters.scrape import ScrapeCollector
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_openmetrics
from prometheus_client.parser import text_string_to_metric_families as parse_text

from hpcwatch.docexamples import examples as doc_examples

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def _series(families) -> list[tuple]:
    return sorted((s.name, tuple(sorted(s.labels.items())), s.value) for f in families for s in f.samples
                  if not s.name.endswith("_created"))


@pytest.mark.parametrize("name", sorted(load_all()))
def test_openmetrics_body_is_valid_and_carries_the_text_series(name, caplog):
    examples = doc_examples(name, REPO)
    assert examples, f"{name} has no example in hpcwatch/docexamples.py"
    for collector in examples:   # one at a time, as an agent runs one instance of each
        with caplog.at_level(logging.ERROR):
            for source in collector.sources():
                source.refresh_now()
        scrape = ScrapeCollector([collector])
        try:
            families = [f for f in scrape.collect() if f.name != "hpcwatch_collector_duration_seconds"]
        finally:
            scrape.close()
            collector.close()
        body = (b"".join(render_openmetrics_family(f) for f in families) + OPENMETRICS_EOF).decode()
        parsed = list(parse_openmetrics(body))
        assert _series(parsed) == _series(parse_text(render_text(families).decode()))
