"""Renderings of ChatGPT Compliance Logs Platform records (`ComplianceRecord`).

The same formats as audit-log events, with mappings of their own: `render_normalized`,
`render_ecs`, `render_ocsf`, `render_cef`. `shipper.render.document_renderer` and `renderer`
route a record here by its `source_type`. `sourcetype(type)` names the Splunk sourcetype of a
record type, and `TYPES` says which Splunk CIM data models each type feeds.
"""

from __future__ import annotations

from shipper.render.compliance.cef import render_cef
from shipper.render.compliance.ecs import render_ecs
from shipper.render.compliance.normalized import render_normalized
from shipper.render.compliance.ocsf import render_ocsf
from shipper.render.compliance.types import (
    OTHER_SOURCETYPE,
    SOURCE_TYPE,
    TYPES,
    TypeInfo,
    sourcetype,
    type_info,
)

__all__ = [
    "OTHER_SOURCETYPE",
    "SOURCE_TYPE",
    "TYPES",
    "TypeInfo",
    "render_cef",
    "render_ecs",
    "render_normalized",
    "render_ocsf",
    "sourcetype",
    "type_info",
]
