"""A loopback stand-in for `GET /v1/organization/audit_logs`: events, faults, an HTTP server."""

from shipper.emulator.events import EVENT_TYPES, TENANT_SCOPED_TYPES, generate_events
from shipper.emulator.faults import Fault
from shipper.emulator.server import Emulator
from shipper.source.audit_log.event_types import is_tenant_scoped

__all__ = [
    "EVENT_TYPES",
    "TENANT_SCOPED_TYPES",
    "Emulator",
    "Fault",
    "generate_events",
    "is_tenant_scoped",
]
