"""Contract harness for the Elasticsearch sink: a fake Elasticsearch on a real loopback port."""

from __future__ import annotations

import contextlib
import importlib.util
from collections.abc import Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

from shipper.pipeline.sink import Sink, SinkContext
from shipper.testing.receivers.elasticsearch import FakeElasticsearch
from sinks.elasticsearch.settings import ElasticsearchSettings
from sinks.elasticsearch.sink import ElasticsearchSink


def default_format() -> str:
    """The sink's default (ecs) once its renderer exists; the normalized shape until then."""
    return "ecs" if importlib.util.find_spec("shipper.render.ecs") else "normalized"


class ElasticsearchHarness:
    sink_type = "elasticsearch"

    def __init__(self, es: FakeElasticsearch, tmp_path: Path) -> None:
        self.es = es
        self.tmp_path = tmp_path

    def make_sink(self, **overrides: Any) -> Sink:
        settings = ElasticsearchSettings.model_validate(
            {"name": "es", "url": self.es.url, "format": default_format(), **overrides}
        )
        context = SinkContext(state_dir=self.tmp_path / "state")
        return ElasticsearchSink(settings, context, sleep=lambda _: None)

    def received_ids(self) -> list[str]:
        return list(self.es.created)

    def receiver_down(self) -> AbstractContextManager[None]:
        return self.es.down()

    def restart_receiver(self) -> None:
        self.es.restart()

    def reject_permanently(self, event_id: str) -> bool:
        self.es.reject(event_id)
        return True


@contextlib.contextmanager
def make_harness(tmp_path: Path) -> Iterator[ElasticsearchHarness]:
    with FakeElasticsearch() as es:
        yield ElasticsearchHarness(es, tmp_path)
