"""What every SIEM renderer reads from an event, parsed once and defensively.

The API sends geo details as strings and may send anything at all; a value that does not parse
(an IP that is not one, a latitude of "north") is kept in `leftover` for the renderer to park in
its vendor namespace, never raised and never silently dropped.
"""

from __future__ import annotations

import ipaddress
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

from shipper.model.event import Actor, AuditEvent, JsonDict, read_actor
from shipper.render.mapping import Mapping, mapping_for

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_COUNTRY = re.compile(r"[A-Za-z]{2}")
_REGION_CODE = re.compile(r"[A-Za-z0-9]{1,3}")
_ASN = re.compile(r"(?:AS)?([0-9]{1,10})", re.IGNORECASE)
# OCSF 1.8.0 email_t (dictionary.json types); ECS accepts any keyword, OCSF does not.
_EMAIL = re.compile(r"[a-zA-Z0-9!#$%&'*+-/=?^_`{|}~.]+@[a-zA-Z0-9-]+\.[a-zA-Z0-9-.]+")
_MAX_ASN = 2**32 - 1


@dataclass(frozen=True, slots=True)
class Geo:
    """`ip_address_details`, converted; what did not convert is in `leftover` as sent."""

    country: str | None = None
    city: str | None = None
    region: str | None = None
    region_iso_code: str | None = None
    lat: float | None = None
    lon: float | None = None
    asn: int | None = None
    leftover: JsonDict = field(default_factory=dict)


def read_ip(value: Any) -> tuple[IPAddress | None, str | None]:
    """An IP address that every SIEM accepts (no zone index, no surrounding text) and its
    canonical text, which is what the renderers write; `(None, None)` for anything else."""
    if not isinstance(value, str) or "%" in value or len(value) > 45:
        return None, None
    return _read_ip_text(value)


@lru_cache(maxsize=4096)
def _read_ip_text(value: str) -> tuple[IPAddress | None, str | None]:
    # Cached: an organization's audit log comes from few addresses, each seen again and again,
    # and parsing one costs more than the rest of its source fields. The results are immutable
    # (an address and a string), so sharing them is safe.
    try:
        ip = ipaddress.ip_address(value)
    except ValueError:
        return None, None
    return ip, str(ip)


def valid_email(value: str | None) -> str | None:
    return value if value is not None and _EMAIL.fullmatch(value) else None


def email_domain(email: str | None) -> str | None:
    if not email or "@" not in email:
        return None
    return email.rpartition("@")[2] or None


def clean_text(value: Any) -> str | None:
    """A string with its edge spaces trimmed; None for an empty or non-string value."""
    if not isinstance(value, str):
        return None
    return value.strip() or None


def _number(value: Any, bound: float) -> float | None:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        return None
    try:
        number = float(value)
    except (ValueError, OverflowError):
        return None
    return number if math.isfinite(number) and -bound <= number <= bound else None


def _asn(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if 0 <= value <= _MAX_ASN else None
    match = _ASN.fullmatch(value.strip()) if isinstance(value, str) else None
    number = int(match.group(1)) if match else -1
    return number if 0 <= number <= _MAX_ASN else None


def _convert(details: JsonDict) -> dict[str, Any]:
    """API key -> converted value, None where the value did not convert."""
    country = clean_text(details.get("country"))
    country = country.upper() if country and _COUNTRY.fullmatch(country) else None
    code = clean_text(details.get("region_code"))
    code = code.upper() if code and _REGION_CODE.fullmatch(code) else None
    lat = _number(details.get("latitude"), 90.0)
    lon = _number(details.get("longitude"), 180.0)
    located = lat is not None and lon is not None
    return {
        "country": country,
        "city": clean_text(details.get("city")),
        "region": clean_text(details.get("region")),
        "region_code": f"{country}-{code}" if country and code else None,
        "asn": _asn(details.get("asn")),
        "latitude": lat if located else None,
        "longitude": lon if located else None,
    }


def parse_geo(details: Any) -> Geo:
    """Convert `ip_address_details`; anything unparseable (or unknown) lands in `leftover`."""
    if details is None:
        return Geo()
    if not isinstance(details, dict):
        return Geo(leftover={"value": details})
    return _parse_geo(details)


def _parse_geo(details: JsonDict) -> Geo:
    done = _convert(details)
    return Geo(
        country=done["country"],
        city=done["city"],
        region=done["region"],
        region_iso_code=done["region_code"],
        lat=done["latitude"],
        lon=done["longitude"],
        asn=done["asn"],
        leftover={k: v for k, v in details.items() if v is not None and done.get(k) is None},
    )


@dataclass(frozen=True, slots=True)
class EventView:
    """One event as the renderers see it: the mapping row plus every value they need."""

    event: AuditEvent
    mapping: Mapping
    actor: Actor
    ip: IPAddress | None
    ip_text: str | None  # `ip` in canonical form
    raw_ip: Any
    geo: Geo
    project_id: str | None
    project_name: str | None
    payload: Any
    target_ids: tuple[str, ...]
    target_names: tuple[str, ...]
    target_email: str | None
    principal_id: str | None
    principal_type: str | None
    resource_id: str | None
    resource_type: str | None
    extra: JsonDict

    @property
    def actor_label(self) -> str | None:
        """The best single name for who acted: email, else user, service account or key id."""
        actor = self.actor
        return actor.user_email or actor.user_id or actor.service_account_id or actor.api_key_id

    @property
    def target_id(self) -> str | None:
        return self.target_ids[0] if self.target_ids else None

    @property
    def target_name(self) -> str | None:
        return self.target_names[0] if self.target_names else None

    @property
    def error(self) -> tuple[str | None, str | None]:
        """`(error_code, error_message)` of a failed event's payload."""
        payload = self.payload if isinstance(self.payload, dict) else {}
        code, message = payload.get("error_code"), payload.get("error_message")
        return (
            code if isinstance(code, str) and code else None,
            message if isinstance(message, str) and message else None,
        )


_DECLARED = frozenset({"id", "object", "type", "effective_at", "actor", "project"})


def _session_field(raw_actor: Any, key: str) -> Any:
    if not isinstance(raw_actor, dict):
        return None
    session = raw_actor.get("session")
    return session.get(key) if isinstance(session, dict) else None


def view_of(event: AuditEvent) -> EventView:
    """Read an event once for rendering; never raises on odd content."""
    raw = event.raw
    mapping = mapping_for(event.type)
    raw_actor = raw.get("actor")
    actor = read_actor(raw_actor)
    payload = raw.get(event.type)
    project = raw.get("project")
    project = project if isinstance(project, dict) else {}
    target, principal = mapping.target, mapping.principal

    def first(path: Any) -> str | None:
        return path.first(payload) if path is not None else None

    ip, ip_text = read_ip(actor.ip)
    return EventView(
        event=event,
        mapping=mapping,
        actor=actor,
        ip=ip,
        ip_text=ip_text,
        raw_ip=_session_field(raw_actor, "ip_address"),
        geo=parse_geo(_session_field(raw_actor, "ip_address_details")),
        project_id=_text_value(project.get("id")),
        project_name=_text_value(project.get("name")),
        payload=payload,
        target_ids=target.id.strings(payload) if target and target.id else (),
        target_names=target.name.strings(payload) if target and target.name else (),
        target_email=first(target.email) if target else None,
        principal_id=first(principal.id) if principal else None,
        principal_type=first(principal.type) if principal else None,
        resource_id=first(principal.resource_id) if principal else None,
        resource_type=first(principal.resource_type) if principal else None,
        extra={k: v for k, v in raw.items() if k not in _DECLARED and k != event.type},
    )


def _text_value(value: Any) -> str | None:
    return value if isinstance(value, str) and value else None
