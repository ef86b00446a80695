"""`type = "elasticsearch"` settings, and the Authorization header they describe."""

from __future__ import annotations

import base64
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from shipper.sink_api import HttpSinkSettings, SecretRef, remember, sink_section

# Lowercase, no path or wildcard characters, not hidden: a safe subset of Elasticsearch's rules.
INDEX_PATTERN = r"^[a-z0-9][a-z0-9._+-]{0,254}$"


class ElasticsearchSettings(HttpSinkSettings):
    """`type = "elasticsearch"`: Elasticsearch or OpenSearch through the `_bulk` API."""

    type: Literal["elasticsearch"] = Field(
        default="elasticsearch", description="Elasticsearch or OpenSearch (`_bulk` API)."
    )
    url: str = Field(
        description="Cluster URL, e.g. https://es.example.com:9200 (no trailing /_bulk)."
    )
    format: str = Field(
        default="ecs", description="Document shape: ecs (default), normalized, raw or ocsf."
    )
    index: str = Field(
        default="logs-openai.audit-default",
        pattern=INDEX_PATTERN,
        description="Data stream or index; the default matches the built-in logs-*-* template.",
    )
    pipeline: str | None = Field(
        default=None, description="Ingest pipeline applied to every document."
    )
    api_key: SecretRef | None = Field(
        default=None, description="An API key (encoded, or id:api_key): a variable or a file."
    )
    username: str | None = Field(default=None, description="User for basic authentication.")
    password: SecretRef | None = Field(
        default=None, description="The basic-auth password: a variable or a file."
    )
    batch_max_events: int = Field(
        default=1000, ge=1, le=10_000, description="Most documents in one _bulk request."
    )
    batch_max_bytes: int = Field(
        default=5_000_000,
        ge=1024,
        le=100_000_000,
        description="Most bytes (uncompressed) in one _bulk request (<= http.max_content_length).",
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("ecs", "normalized", "raw", "ocsf")

    @model_validator(mode="after")
    def _one_way_to_authenticate(self) -> ElasticsearchSettings:
        password = self.password is not None
        if self.api_key is not None and (self.username is not None or password):
            raise ValueError("use either an API key or username + password, not both")
        if password and self.username is None:
            raise ValueError("password_env/password_file need username")
        if self.username is not None and not password:
            raise ValueError("username needs password_env or password_file")
        if self.format not in self.allowed_formats:
            raise ValueError(f"format must be one of {', '.join(self.allowed_formats)}")
        return self


def _base64(text: str) -> str:
    encoded = base64.b64encode(text.encode("utf-8")).decode("ascii")
    remember(encoded)  # the header value is as secret as what it encodes
    return encoded


def authorization(settings: ElasticsearchSettings) -> dict[str, str]:
    """The Authorization header; `SecretUnavailableError` if the secret cannot be read."""
    section = sink_section(settings.name)
    if settings.api_key is not None:
        key = settings.api_key.read(section).get_secret_value()
        # Kibana shows both forms; the "id:api_key" one must be encoded before use.
        return {"authorization": f"ApiKey {_base64(key) if ':' in key else key}"}
    if settings.username is not None and settings.password is not None:
        password = settings.password.read(section).get_secret_value()
        return {"authorization": f"Basic {_base64(f'{settings.username}:{password}')}"}
    return {}
