"""Entra ID tokens through `azure-identity`, with its own retries off (the sink's are the only ones).

`azure-identity` is Microsoft's library for Entra ID: it signs the client assertion of a
certificate, reads and re-reads the workload identity's federated token file (which AKS
rotates), finds the managed identity endpoint (IMDS, App Service, Arc, ...) and caches tokens,
asking for a new one when less than five minutes remain. Its pipelines retry by themselves
(azure-core's `RetryPolicy`: up to 10 attempts, sleeping up to 120 s); `retry_total=0` turns
that off so a token request is retried by `shipper.retry` like every other request.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, Union

from shipper.sink_api import SinkFatalError, SinkRetryableError, redact, remember, sink_section
from sinks.sentinel.settings import KNOWN_AUTHORITIES, SentinelSettings

if TYPE_CHECKING:  # imported when used: `shipper --help` need not load azure-identity
    from azure.identity import (
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )


# These ManagedIdentityCredential all have `get_token` and `close`.
Credential = Union[
    "ClientSecretCredential",
    "CertificateCredential",
    "WorkloadIdentityCredential",
    "ManagedIdentityCredential",
]


# Entra ID's own word that trying again may help (AADSTS90033: "a transient error has
# occurred"; AADSTS50196: a client loop was detected, back off). Any other AADSTS code is a
# verdict on the request itself (unknown tenant or app, wrong secret, expired certificate, ...).
TRANSIENT_AADSTS = frozenset({"AADSTS90033", "AADSTS50196"})
_AADSTS = re.compile(r"AADSTS\d+")


def make_credential(settings: SentinelSettings, timeout: float) -> Credential:
    """The credential `auth` names; `SinkFatalError` if it cannot be built (missing file, ...)."""
    from azure.identity import (
        CertificateCredential,
        ClientSecretCredential,
        ManagedIdentityCredential,
        WorkloadIdentityCredential,
    )

    section = sink_section(settings.name)
    pipeline: dict[str, Any] = {
        "retry_total": 0,
        "connection_timeout": timeout,
        "read_timeout": timeout,
    }
    if settings.ca_file is not None:
        pipeline["connection_verify"] = str(settings.ca_file)
    entra: dict[str, Any] = {
        **pipeline,
        "authority": settings.authority,
        # Discovery asks the public cloud whether the authority is known; a private host
        # (Azure Stack, a test endpoint) is not, and discovery would refuse it.
        "disable_instance_discovery": settings.authority not in KNOWN_AUTHORITIES,
    }
    try:
        if settings.auth == "client_secret":
            assert settings.client_secret is not None  # enforced by the settings
            secret = settings.client_secret.read(section).get_secret_value()
            return ClientSecretCredential(
                str(settings.tenant_id), str(settings.client_id), secret, **entra
            )
        if settings.auth == "certificate":
            password = None
            if settings.certificate_password is not None:
                password = settings.certificate_password.read(section).get_secret_value()
            return CertificateCredential(
                str(settings.tenant_id),
                str(settings.client_id),
                certificate_path=str(settings.certificate_path),
                password=password,
                **entra,
            )
        if settings.auth == "workload_identity":
            credential = WorkloadIdentityCredential(
                tenant_id=settings.tenant_id,
                client_id=settings.client_id,
                token_file_path=str(settings.token_file) if settings.token_file else None,
                **entra,
            )
            _remember_federated_token(credential)
            return credential
        return ManagedIdentityCredential(client_id=settings.client_id, **pipeline)
    except (ValueError, OSError, TypeError) as exc:
        raise SinkFatalError(
            settings.name, f"{section}: cannot set up auth = {settings.auth!r}: {redact(str(exc))}"
        ) from None


def _remember_federated_token(credential: Any) -> None:
    """The federated token is a credential too: keep it out of logs and errors."""
    path = getattr(credential, "_token_file_path", None)
    if path:
        try:
            with open(path, encoding="utf-8") as handle:
                remember(handle.read().strip())
        except OSError:
            pass  # azure-identity reports the unreadable file when it first needs it


def token(credential: Credential, settings: SentinelSettings) -> str:
    """A valid access token (cached by the credential); the sink's errors when there is none."""
    from azure.core.exceptions import AzureError, ClientAuthenticationError
    from azure.identity import CredentialUnavailableError

    try:
        value = credential.get_token(settings.token_scope).token
    except CredentialUnavailableError as exc:
        raise SinkFatalError(
            settings.name,
            f"auth = {settings.auth!r} is not available here: {redact(str(exc))[:500]}"
            + _hint(settings),
        ) from None
    except ClientAuthenticationError as exc:
        message = redact(str(exc))[:500]
        codes = set(_AADSTS.findall(message))
        if codes and not codes <= TRANSIENT_AADSTS:
            raise SinkFatalError(
                settings.name,
                f"Entra ID refused to issue a token ({settings.authority}): {message}"
                + _hint(settings),
            ) from None
        raise SinkRetryableError(
            settings.name, f"no token from Entra ID ({settings.authority}) for now: {message}"
        ) from None
    except AzureError as exc:
        raise SinkRetryableError(
            settings.name, f"no token from Entra ID for now: {redact(str(exc))[:500]}"
        ) from None
    remember(value)
    return value


def _hint(settings: SentinelSettings) -> str:
    if settings.auth == "client_secret":
        return (
            f"; check tenant_id {settings.tenant_id!r}, client_id {settings.client_id!r} and the "
            "secret (client_secret_env / client_secret_file: the secret's value, not its id)"
        )
    if settings.auth == "certificate":
        return (
            f"; check tenant_id, client_id {settings.client_id!r} and that the certificate "
            f"{str(settings.certificate_path)!r} is uploaded to the app registration"
        )
    if settings.auth == "workload_identity":
        return (
            "; check the federated credential of the app (issuer = the cluster's OIDC issuer, "
            "subject = system:serviceaccount:<namespace>:<service account>) and the pod's "
            "azure.workload.identity/use label"
        )
    return "; is a managed identity assigned to this VM/pod/app (and client_id its client id)?"
