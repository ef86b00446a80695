"""`type = "secops"` settings: where the instance is, how to authenticate, and the limits.

Google does not publish request limits for `logs:import`; the defaults below are conservative
choices, and each description says which limits are documented and which are not.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, model_validator

from shipper.sink_api import HttpSinkSettings, SecretRef

# The audit log's log type in Google's default parser list: Google maps these objects to UDM.
AUDIT_LOG_TYPE = "OPENAI_AUDITLOG"
# Legacy Ingestion API: "1 MB" per log. The only per-log size Google documents; read as 10^6.
DOCUMENTED_MAX_LOG_BYTES = 1_000_000
# Not documented for logs:import. A peer (Tenzir) lowered its default to 1 MB "to align with
# the API"; we take the same, and bound what an operator may raise it to.
DEFAULT_MAX_REQUEST_BYTES = 1_000_000
MAX_REQUEST_BYTES_CEILING = 4_000_000
# Not documented either: a conservative count (1 MB of typical audit events is ~600 of them).
DEFAULT_MAX_LOGS = 1000
LOG_TYPE_PATTERN = r"^[A-Z][A-Z0-9_]{0,127}$"
# Cloud project ids are 6-30 characters; project numbers are digits.
PROJECT_PATTERN = r"^([a-z][a-z0-9-]{4,28}[a-z0-9]|[0-9]{1,20})$"
REGION_PATTERN = r"^[a-z][a-z0-9-]{1,40}$"
INSTANCE_PATTERN = r"^[A-Za-z0-9-]{1,64}$"


class SecOpsSettings(HttpSinkSettings):
    """`type = "secops"`: Google Security Operations (Chronicle API `logs:import`)."""

    type: Literal["secops"] = Field(
        default="secops", description="Google Security Operations (Chronicle API logs:import)."
    )
    url: str = Field(
        default="",
        description="API endpoint; default https://{region}-chronicle.googleapis.com "
        "(the documented https://chronicle.{region}.rep.googleapis.com works too).",
    )
    format: str = Field(
        default="raw",
        description="Only raw: the API object as received, which Google's parser maps.",
    )
    project: str = Field(
        pattern=PROJECT_PATTERN,
        description="Google Cloud project (id or number) bound to the SecOps instance.",
    )
    region: str = Field(
        pattern=REGION_PATTERN,
        description="The instance's location, e.g. us, eu, europe-west2 (also picks the host).",
    )
    instance: str = Field(
        pattern=INSTANCE_PATTERN,
        description="The SecOps instance (customer) id, a UUID shown under SIEM Settings > Profile.",
    )
    credentials: SecretRef = Field(
        description="The service account's JSON key: a variable holding it, or its file.",
    )
    api_version: Literal["v1alpha", "v1beta", "v1"] = Field(
        default="v1beta",
        description="Chronicle API version in the path; logs:import is documented in v1alpha and v1beta.",
    )
    log_type: str = Field(
        default=AUDIT_LOG_TYPE,
        pattern=LOG_TYPE_PATTERN,
        description="Log type of audit-log events; OPENAI_AUDITLOG has Google's default parser.",
    )
    compliance_log_type: str | None = Field(
        default=None,
        pattern=LOG_TYPE_PATTERN,
        description="Log type of ChatGPT compliance records (a custom log type you create); "
        "required once such records reach this sink.",
    )
    namespace: str | None = Field(
        default=None,
        min_length=1,
        max_length=256,
        description="SecOps environment namespace stamped on every log.",
    )
    labels: dict[str, str] = Field(
        default={}, description="Ingestion labels stamped on every log (key = value)."
    )
    max_log_bytes: int = Field(
        default=DOCUMENTED_MAX_LOG_BYTES,
        ge=1024,
        le=DOCUMENTED_MAX_LOG_BYTES,
        description="Largest single log (its raw bytes); Google documents 1 MB. Larger: dead letter.",
    )
    batch_max_events: int = Field(
        default=DEFAULT_MAX_LOGS,
        ge=1,
        le=10_000,
        description="Most logs in one import request (not documented by Google: a conservative default).",
    )
    batch_max_bytes: int = Field(
        default=DEFAULT_MAX_REQUEST_BYTES,
        ge=4096,
        le=MAX_REQUEST_BYTES_CEILING,
        description="Most bytes in one import request body, as sent before compression "
        "(not documented by Google: a conservative default).",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("raw",)

    @model_validator(mode="before")
    @classmethod
    def _regional_url(cls, data: Any) -> Any:
        region = data.get("region") if isinstance(data, dict) else None
        if isinstance(region, str) and re.fullmatch(REGION_PATTERN, region) and not data.get("url"):
            return {**data, "url": f"https://{region}-chronicle.googleapis.com"}
        return data

    @model_validator(mode="after")
    def _consistent(self) -> SecOpsSettings:
        if self.format not in self.allowed_formats:
            raise ValueError("format must be raw (Google's parser reads the API object itself)")
        if any(not key or not value for key, value in self.labels.items()):
            raise ValueError("labels: keys and values must not be empty")
        return self

    def parent(self) -> str:
        """`projects/P/locations/L/instances/I`, the prefix of every resource name."""
        return f"projects/{self.project}/locations/{self.region}/instances/{self.instance}"
