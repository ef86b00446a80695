"""`type = "sentinel"` settings: where to send (endpoint, DCR, stream), how to sign in, which table shape."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from shipper.sink_api import HttpSinkSettings, SecretRef

# Documented "1 MB" per call, "both compressed and uncompressed"; the 413 message counts
# 1,048,576. Keeping the uncompressed JSON array at most 1,000,000 bytes satisfies every reading.
MAX_REQUEST_BYTES = 1_000_000

CLOUDS = {
    # cloud: (authority host, audience of the Logs Ingestion API)
    "public": ("https://login.microsoftonline.com", "https://monitor.azure.com"),
    "us_government": ("https://login.microsoftonline.us", "https://monitor.azure.us"),
    "china": ("https://login.chinacloudapi.cn", "https://monitor.azure.cn"),
}
KNOWN_AUTHORITIES = frozenset(host for host, _ in CLOUDS.values())

PROFILES = {
    # profile: (default stream, what is sent)
    "openai_solution": ("Custom-OpenAIAuditLogs_CL", "Microsoft's OpenAI solution table"),
    "generic": ("Custom-OpenAIShipperEvents", "the shipped generic table"),
}

Auth = Literal["client_secret", "certificate", "workload_identity", "managed_identity"]


class SentinelSettings(HttpSinkSettings):
    """`type = "sentinel"`: Microsoft Sentinel / Azure Monitor Logs through the Logs Ingestion API."""

    type: Literal["sentinel"] = Field(
        default="sentinel", description="Microsoft Sentinel (Azure Monitor Logs Ingestion API)."
    )
    url: str = Field(
        description="Logs ingestion endpoint: the DCR's `logsIngestion` endpoint or a DCE URL, "
        "e.g. https://my-dce.westeurope-1.ingest.monitor.azure.com."
    )
    dcr_immutable_id: str = Field(
        pattern=r"^dcr-[0-9a-f]{32}$",
        description="The DCR's immutable id (its overview page, or `properties.immutableId`).",
    )
    stream: str | None = Field(
        default=None,
        pattern=r"^Custom-[A-Za-z][A-Za-z0-9_]{0,63}$",
        description="Input stream: a key of the DCR's `streamDeclarations` (not the table); "
        "default Custom-OpenAIAuditLogs_CL (profile openai_solution) or "
        "Custom-OpenAIShipperEvents (profile generic).",
    )
    profile: Literal["openai_solution", "generic"] = Field(
        default="openai_solution",
        description="Record shape: openai_solution (the columns of Microsoft's OpenAI solution, "
        "table OpenAIAuditLogs_CL; audit log only) or generic (EventId, EventType, SourceType, "
        "TimeGenerated and the whole document in Event; any source).",
    )
    format: str = Field(
        default="normalized",
        description="Profile generic: the document put in the Event column (normalized, raw, "
        "ecs or ocsf). Profile openai_solution always sends the API's own fields.",
    )
    connector_name: str = Field(
        default="shipper",
        max_length=256,
        description="Profile openai_solution: the value of `friendlyName` (column ConnectorName).",
    )
    compression: Literal["gzip", "none"] = Field(
        default="gzip", description="Request body encoding (gzip is the only one the API defines)."
    )
    batch_max_bytes: int = Field(
        default=MAX_REQUEST_BYTES,
        ge=1024,
        le=MAX_REQUEST_BYTES,
        description="Most bytes of the uncompressed JSON array in one request (the API's 1 MB).",
    )
    batch_max_events: int = Field(
        default=1000, ge=1, le=100_000, description="Most records in one request."
    )
    # -- Entra ID -------------------------------------------------------------------------------
    auth: Auth = Field(
        default="client_secret",
        description="How to sign in to Entra ID: client_secret, certificate, workload_identity "
        "(AKS; reads AZURE_* variables) or managed_identity.",
    )
    tenant_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9.-]{1,100}$",
        description="Directory (tenant) id; workload_identity defaults to AZURE_TENANT_ID.",
    )
    client_id: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9-]{1,100}$",
        description="Application (client) id; for managed_identity, a user-assigned identity's "
        "client id (unset: the system-assigned one); workload_identity defaults to AZURE_CLIENT_ID.",
    )
    client_secret: SecretRef | None = Field(
        default=None, description="auth client_secret: the app's client secret."
    )
    certificate_path: Path | None = Field(
        default=None,
        description="auth certificate: PEM or PKCS#12 file with the certificate and its key.",
    )
    certificate_password: SecretRef | None = Field(
        default=None, description="auth certificate: the password of the certificate file, if any."
    )
    token_file: Path | None = Field(
        default=None,
        description="auth workload_identity: the federated token file; default "
        "AZURE_FEDERATED_TOKEN_FILE (set by AKS).",
    )
    cloud: Literal["public", "us_government", "china"] = Field(
        default="public",
        description="Azure cloud: sets the authority host and the token audience "
        "(monitor.azure.com, monitor.azure.us, monitor.azure.cn).",
    )
    authority_host: str | None = Field(
        default=None,
        description="Entra ID authority host (https://...), overriding the cloud's; another "
        "host than the three clouds' turns MSAL's instance discovery off.",
    )
    scope: str | None = Field(
        default=None,
        description="Token scope, overriding the cloud's (e.g. https://monitor.azure.com/.default).",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("normalized", "raw", "ecs", "ocsf")

    @model_validator(mode="after")
    def _consistent(self) -> SentinelSettings:
        if not self.url.startswith("https://") and not self.allow_plain_http:
            # Bearer tokens never travel in clear text, not even to loopback.
            raise ValueError(f"url must start with https:// (got {self.url!r})")
        if self.format not in self.allowed_formats:
            raise ValueError(f"format must be one of {', '.join(self.allowed_formats)}")
        if self.authority_host is not None and not self.authority_host.startswith("https://"):
            raise ValueError("authority_host must start with https:// (Entra ID requires TLS)")
        needs = {
            "client_secret": ("tenant_id", "client_id", "client_secret"),
            "certificate": ("tenant_id", "client_id", "certificate_path"),
        }.get(self.auth, ())
        if missing := [key for key in needs if getattr(self, key) is None]:
            keys = ", ".join(
                k + ("_env or client_secret_file" if k == "client_secret" else "") for k in missing
            )
            raise ValueError(f'auth = "{self.auth}" needs {keys}')
        if self.client_secret is not None and self.auth != "client_secret":
            raise ValueError(
                f'client_secret is only used with auth = "client_secret" (auth is "{self.auth}")'
            )
        if self.certificate_path is not None and self.auth != "certificate":
            raise ValueError(
                f'certificate_path is only used with auth = "certificate" (auth is "{self.auth}")'
            )
        if self.token_file is not None and self.auth != "workload_identity":
            raise ValueError(
                f'token_file is only used with auth = "workload_identity" (auth is "{self.auth}")'
            )
        return self

    @property
    def stream_name(self) -> str:
        return self.stream or PROFILES[self.profile][0]

    @property
    def authority(self) -> str:
        return (self.authority_host or CLOUDS[self.cloud][0]).rstrip("/")

    @property
    def token_scope(self) -> str:
        return self.scope or CLOUDS[self.cloud][1] + "/.default"

    @property
    def ingest_path(self) -> str:
        return f"/dataCollectionRules/{self.dcr_immutable_id}/streams/{self.stream_name}"
