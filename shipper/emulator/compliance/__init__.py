"""A loopback stand-in for the ChatGPT Enterprise Compliance Logs Platform: log-file listing,
307 downloads to signed URLs on a second port, realistic records of every known type, faults."""

from shipper.emulator.compliance.faults import ComplianceFault
from shipper.emulator.compliance.records import (
    EVENT_TYPES,
    ORGANIZATION_EVENT_TYPES,
    WORKSPACE_EVENT_TYPES,
    generate_record,
)
from shipper.emulator.compliance.server import ComplianceEmulator, ComplianceStats
from shipper.emulator.compliance.store import LogFile

__all__ = [
    "EVENT_TYPES",
    "ORGANIZATION_EVENT_TYPES",
    "WORKSPACE_EVENT_TYPES",
    "ComplianceEmulator",
    "ComplianceFault",
    "ComplianceStats",
    "LogFile",
    "generate_record",
]
