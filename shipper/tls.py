"""TLS client contexts for sinks: verified by default, optional CA file and client certificate."""

from __future__ import annotations

import ssl
from pathlib import Path

from pydantic import BaseModel, Field


class TlsSettings(BaseModel):
    """Mixin for sinks that speak TLS."""

    tls_verify: bool = Field(
        default=True, description="Verify the receiver's certificate; false is logged as a warning."
    )
    ca_file: Path | None = Field(
        default=None, description="PEM bundle of CAs to trust instead of the system's."
    )
    cert_file: Path | None = Field(
        default=None, description="Client certificate (PEM) for mutual TLS."
    )
    key_file: Path | None = Field(default=None, description="Private key (PEM) of `cert_file`.")


def client_context(settings: TlsSettings) -> ssl.SSLContext:
    """An `SSLContext` honouring the settings; raises `OSError`/`ssl.SSLError` on unreadable files."""
    context = ssl.create_default_context(cafile=str(settings.ca_file) if settings.ca_file else None)
    if not settings.tls_verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if settings.cert_file is not None:
        context.load_cert_chain(
            str(settings.cert_file), str(settings.key_file) if settings.key_file else None
        )
    return context
