"""Renderers: turn an `AuditEvent` into one document in a SIEM's vocabulary.

A renderer is a pure function `AuditEvent -> bytes` (one document, no trailing newline).
JSON formats also expose `AuditEvent -> dict` for sinks that embed the document in an envelope.
Formats are imported lazily so `shipper --help` stays fast.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from operator import attrgetter
from typing import Any, Literal

import orjson

from shipper.model.event import AuditEvent, JsonDict

Format = Literal["raw", "normalized", "ecs", "ocsf", "cef"]
FORMATS: tuple[Format, ...] = ("raw", "normalized", "ecs", "ocsf", "cef")
JSON_FORMATS: frozenset[str] = frozenset({"raw", "normalized", "ecs", "ocsf"})

DocumentRenderer = Callable[[AuditEvent], JsonDict]
Renderer = Callable[[AuditEvent], bytes]

# format -> "module:function" returning a dict (JSON formats) or a str (CEF).
_DOCUMENT_RENDERERS: dict[str, str] = {
    "raw": "shipper.render.basic:render_raw",
    "normalized": "shipper.render.basic:render_normalized",
    "ecs": "shipper.render.ecs:render_ecs",
    "ocsf": "shipper.render.ocsf:render_ocsf",
}
_TEXT_RENDERERS: dict[str, str] = {"cef": "shipper.render.cef:render_cef"}


def _load(spec: str) -> Callable[..., Any]:
    module, _, name = spec.partition(":")
    func: Callable[..., Any] = getattr(importlib.import_module(module), name)
    return func


def document_renderer(fmt: str) -> DocumentRenderer:
    """The dict-producing renderer of a JSON format; `ValueError` for CEF or an unknown name."""
    if fmt not in _DOCUMENT_RENDERERS:
        raise ValueError(
            f"format {fmt!r} is not a JSON format (choose one of {sorted(JSON_FORMATS)})"
        )
    render: DocumentRenderer = _load(_DOCUMENT_RENDERERS[fmt])
    return render


def renderer(fmt: str) -> Renderer:
    """The bytes-producing renderer for any format."""
    if fmt in _TEXT_RENDERERS:
        text = _load(_TEXT_RENDERERS[fmt])
        return lambda event: str(text(event)).encode("utf-8")
    if fmt == "raw":
        # The API object as received, in the bytes the source already holds (attrgetter: no
        # Python frame of its own, and the sinks call this once per event).
        raw: Renderer = attrgetter("json")
        return raw
    render_doc = document_renderer(fmt)
    return lambda event: orjson.dumps(render_doc(event))
