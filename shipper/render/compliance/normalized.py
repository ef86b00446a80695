"""The flat `normalized` shape of a compliance record (docs/formats.md, "compliance records").

One key per envelope fact, the same keys for every type; the type-specific content as sent under
`details`, and the whole record under `raw`. Keys whose value would be null are left out.
"""

from __future__ import annotations

from shipper.model.event import AuditEvent, JsonDict
from shipper.render.compliance.record import RecordView, view_of


def normalized_document(view: RecordView) -> JsonDict:
    event, actor, net = view.event, view.actor, view.network
    geo = net.geo
    doc: JsonDict = {
        "source_type": event.source_type,
        "event_id": event.id,
        "type": event.type,
        "timestamp": view.timestamp,
        "time_source": view.time_source,
        "effective_at": event.effective_at,
        "organization": event.organization,
        "principal_id": view.principal_id,
        "principal_type": view.principal_type,
        "workspace_id": view.workspace_id,
        "client_id": view.client_id,
        "action": view.action,
        "outcome": view.outcome,
        "model": view.model,
        "actor_kind": actor.kind,
        "actor_user_id": actor.user_id,
        "actor_user_email": actor.user_email,
        "actor_delegated": actor.delegated or None,
        "actor_api_key_id": actor.api_key_id,
        "actor_agent_id": actor.agent_id,
        "actor_agent_name": actor.agent_name,
        "actor_agent_product_id": actor.agent_product_id,
        "actor_system_id": actor.system_id,
        "client_ip": net.ip_text or net.raw_ip,
        "client_geo_country": geo.country,
        "client_geo_city": geo.city,
        "client_geo_region": geo.region,
        "client_geo_region_code": geo.region_iso_code,
        "client_geo_asn": geo.asn,
        "client_geo_latitude": geo.lat,
        "client_geo_longitude": geo.lon,
        "client_user_agent": net.user_agent,
        "client_ja3": net.ja3,
        "client_ja4": net.ja4,
        "destination_hostname": net.destination,
        "details": view.content() or None,
        "raw": view.raw,
    }
    return {k: v for k, v in doc.items() if v is not None}


def render_normalized(event: AuditEvent) -> JsonDict:
    """The normalized document of one compliance record."""
    return normalized_document(view_of(event))
