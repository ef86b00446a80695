"""A fake Microsoft Entra ID token endpoint and Azure Monitor Logs Ingestion API, over loopback TLS.

Written from Microsoft's documentation (the facts in docs/sinks/sentinel.md), not from the sink:

Entra ID (`FakeSentinel.entra`, the authority host):
- `GET /{tenant}/v2.0/.well-known/openid-configuration`: the discovery document MSAL reads
  before it asks for a token (the real `azure-identity` library talks to this fake; it only
  accepts an https authority, hence TLS, and needs `disable_instance_discovery`, or it asks
  the public cloud whether the authority is known).
- `POST /{tenant}/oauth2/v2.0/token`, form-encoded, `grant_type=client_credentials`: a client
  secret (`client_secret`) or an assertion (`client_assertion`: a workload identity's federated
  token from `assertions`, or a certificate-signed JWT whose issuer is the client id and whose
  audience is the token endpoint; its signature is not checked). `scope` must be the
  configured audience + `/.default`. Unknown tenant -> 400 AADSTS90002, unknown client ->
  400 AADSTS700016, wrong secret -> 401 AADSTS7000215 (`invalid_client`).

Logs Ingestion API (`FakeSentinel.ingestion`, the DCE or DCR endpoint):
- `POST /dataCollectionRules/{dcr}/streams/{stream}?api-version=2023-01-01`, `Authorization:
  Bearer <a token this fake issued>` (else 401), `Content-Type: application/json`, optional
  `Content-Encoding: gzip`. The caller lacking the role (`role_granted = False`) -> 403; an
  unknown DCR or stream -> 404.
- The 1 MB limit counted as documented, on "both compressed and uncompressed data": the
  request's bytes on the wire and the decoded body must each be <= `max_request_bytes`
  (1,048,576), else 413 `ContentLengthLimitExceeded` with the service's message.
- The body must be a JSON array of objects (else 400). An empty array is answered 204 and
  stores nothing. Keys not declared for the stream (`columns`) are dropped, as the service
  does; string values longer than 64 KB (`max_field_bytes`) are truncated to it.
- Throttling: over `max_requests_per_minute` requests or `max_bytes_per_minute` bytes in a
  rolling minute (clock injectable), 429 with `Retry-After` (seconds until the window frees).
  `throttle(n, retry_after)`: the next n requests get 429; `busy(n)`: the next n get 503.
- Success is 204 with no body; accepted records are in `records`.

For failure drills: a request holding a record whose id is in `reject_ids` is refused with
400 (the whole request, as the service does for a bad payload); with `echo`, every error
answer quotes the request's headers and body, as careless servers do; inside `with
fake.down():` the ingestion endpoint refuses connections (same port again afterwards).
"""

from __future__ import annotations

import base64
import json
import secrets
import socket
import ssl
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any
from urllib.parse import parse_qs

from shipper.testing.receivers.base import Receiver, Recorded, Reply, _Server

API_VERSION = "2023-01-01"
MAX_REQUEST_BYTES = 1_048_576  # "1 MB", as the 413 message counts it
MAX_FIELD_BYTES = 64 * 1024
TENANT = "72f988bf-0000-4000-8000-00000000cafe"
CLIENT_ID = "11111111-2222-4333-8444-555555555555"
DCR_ID = "dcr-00112233445566778899aabbccddeeff"
OPENAI_STREAM = "Custom-OpenAIAuditLogs_CL"
# The input stream of Microsoft's OpenAI solution DCR (Solutions/OpenAI, OpenAI_DCR.json).
OPENAI_COLUMNS = {
    "id": "string",
    "type": "string",
    "effective_at": "long",
    "project": "dynamic",
    "EventDetails": "dynamic",
    "friendlyName": "string",
    "actor": "dynamic",
}
AUDIENCE = "https://monitor.azure.com"


class TlsReceiver(Receiver):
    """A `Receiver` that speaks HTTPS with `context` (the handshake runs in the request's thread)."""

    def __init__(self, respond: Callable[[Recorded], Reply], context: ssl.SSLContext) -> None:
        super().__init__(respond)
        self.context = context

    def start(self) -> None:
        if self._server is not None:
            return
        context = self.context

        class Server(_Server):
            def get_request(self) -> tuple[socket.socket, Any]:
                sock, address = super().get_request()
                # No handshake here: a client that never speaks must not block accept().
                return context.wrap_socket(
                    sock, server_side=True, do_handshake_on_connect=False
                ), address

        self._server = Server(("127.0.0.1", self._port), self._handler_class())
        self._port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"


def loopback_tls(directory: Path) -> tuple[ssl.SSLContext, Path]:
    """A server context for 127.0.0.1 signed by a fresh test CA, and the CA's PEM file.

    Needs `trustme` (a test dependency, imported here only)."""
    import trustme

    ca = trustme.CA()
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server)
    ca_file = directory / "fake-azure-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return server, ca_file


def ingestion_error(status: int, code: str, message: str, **headers: str) -> Reply:
    """An answer in the API's error shape, with the `x-ms-error-code` header the spec names."""
    return Reply.json(
        status, {"error": {"code": code, "message": message}}, {"x-ms-error-code": code, **headers}
    )


def _entra_error(status: int, error: str, description: str) -> Reply:
    return Reply.json(
        status,
        {"error": error, "error_description": description, "error_codes": [], "timestamp": ""},
    )


def _jwt_claims(token: str) -> dict[str, Any] | None:
    parts = token.split(".")
    if len(parts) != 3:
        return None
    try:
        padded = parts[1] + "=" * (-len(parts[1]) % 4)
        claims = json.loads(base64.urlsafe_b64decode(padded))
    except (ValueError, UnicodeDecodeError):
        return None
    return claims if isinstance(claims, dict) else None


class FakeSentinel:
    """Both services; start and stop them with `with FakeSentinel(...) as fake:`."""

    def __init__(
        self,
        server_context: ssl.SSLContext,
        *,
        tenant: str = TENANT,
        client_id: str = CLIENT_ID,
        client_secret: str | None = None,
        assertions: set[str] | None = None,
        audience: str = AUDIENCE,
        dcr_id: str = DCR_ID,
        stream: str = OPENAI_STREAM,
        columns: dict[str, str] | None = None,
        max_request_bytes: int = MAX_REQUEST_BYTES,
        max_field_bytes: int = MAX_FIELD_BYTES,
        max_requests_per_minute: int = 12_000,
        max_bytes_per_minute: int = 2 * 1024**3,
        token_lifetime: int = 3599,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.tenant = tenant
        self.client_id = client_id
        self.client_secret = client_secret
        self.assertions = set(assertions or ())
        self.audience = audience
        self.dcr_id = dcr_id
        self.streams: dict[str, dict[str, str] | None] = {
            stream: OPENAI_COLUMNS if columns is None and stream == OPENAI_STREAM else columns
        }
        self.max_request_bytes = max_request_bytes
        self.max_field_bytes = max_field_bytes
        self.max_requests_per_minute = max_requests_per_minute
        self.max_bytes_per_minute = max_bytes_per_minute
        self.token_lifetime = token_lifetime
        self.clock = clock
        self.role_granted = True
        self.echo = False
        self.reject_ids: set[str] = set()
        self.records: list[dict[str, Any]] = []
        self.issued_tokens: list[str] = []
        self.token_requests: list[dict[str, str]] = []
        self.truncated_fields = 0
        self.dropped_columns: set[str] = set()
        self._throttle: deque[int] = deque()
        self._busy = 0
        self._window: deque[tuple[float, int]] = deque()  # (when, bytes) of accepted requests
        self._lock = threading.Lock()
        self.entra = TlsReceiver(self.handle_entra, server_context)
        self.ingestion = TlsReceiver(self.handle_ingestion, server_context)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeSentinel:
        self.entra.start()
        self.ingestion.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.ingestion.stop()
        self.entra.stop()

    @contextmanager
    def down(self) -> Iterator[None]:
        """Inside the block the ingestion endpoint refuses connections; Entra ID still answers."""
        with self.ingestion.down():
            yield

    @property
    def authority(self) -> str:
        return self.entra.url

    @property
    def endpoint(self) -> str:
        return self.ingestion.url

    # -- scripting -------------------------------------------------------------------------
    def throttle(self, times: int, retry_after: int = 1) -> None:
        """The next `times` ingestion requests are answered 429 with `Retry-After`."""
        with self._lock:
            self._throttle.extend([retry_after] * times)

    def busy(self, times: int) -> None:
        """The next `times` ingestion requests are answered 503."""
        with self._lock:
            self._busy += times

    def declare_stream(self, stream: str, columns: dict[str, str] | None) -> None:
        """Add an input stream to the DCR (`columns` None: every key is kept)."""
        with self._lock:
            self.streams[stream] = columns

    def record_ids(self) -> list[str]:
        """Ids of stored records in arrival order: `id` (OpenAI stream) or `EventId` (generic)."""
        with self._lock:
            return [str(r.get("id", r.get("EventId", ""))) for r in self.records]

    def ingestion_requests(self) -> list[Recorded]:
        return [r for r in self.ingestion.requests if r.path.startswith("/dataCollectionRules/")]

    # -- Entra ID --------------------------------------------------------------------------
    def handle_entra(self, request: Recorded) -> Reply:
        tenant, _, rest = request.path.strip("/").partition("/")
        if rest == "v2.0/.well-known/openid-configuration" and request.method == "GET":
            if tenant != self.tenant:
                return _entra_error(
                    400, "invalid_tenant", f"AADSTS90002: Tenant '{tenant}' not found."
                )
            base = f"{self.entra.url}/{tenant}"
            return Reply.json(
                200,
                {
                    "token_endpoint": f"{base}/oauth2/v2.0/token",
                    "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
                    "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
                    "issuer": f"{base}/v2.0",
                    "tenant_region_scope": "EU",
                },
            )
        if rest == "oauth2/v2.0/token" and request.method == "POST":
            return self._token(tenant, request)
        return Reply(404, b"not found")

    def _token(self, tenant: str, request: Recorded) -> Reply:
        form = {k: v[-1] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        with self._lock:
            self.token_requests.append(form)
        if tenant != self.tenant:
            return _entra_error(
                400, "invalid_request", f"AADSTS90002: Tenant '{tenant}' not found."
            )
        if form.get("grant_type") != "client_credentials":
            return _entra_error(400, "unsupported_grant_type", "AADSTS70003: unsupported grant")
        if form.get("client_id") != self.client_id:
            return _entra_error(
                400,
                "unauthorized_client",
                f"AADSTS700016: Application with identifier '{form.get('client_id')}' was not found"
                f" in the directory '{tenant}'.",
            )
        if form.get("scope") != f"{self.audience}/.default":
            return _entra_error(
                400,
                "invalid_scope",
                f"AADSTS1002012: The provided value for scope {form.get('scope')} is not valid.",
            )
        if not self._client_proves_itself(form, request):
            return _entra_error(
                401, "invalid_client", "AADSTS7000215: Invalid client secret provided."
            )
        token = "fake-token-" + secrets.token_urlsafe(24)
        with self._lock:
            self.issued_tokens.append(token)
        return Reply.json(
            200,
            {
                "token_type": "Bearer",
                "expires_in": self.token_lifetime,
                "ext_expires_in": self.token_lifetime,
                "access_token": token,
            },
        )

    def _client_proves_itself(self, form: dict[str, str], request: Recorded) -> bool:
        if "client_secret" in form:
            return self.client_secret is not None and secrets.compare_digest(
                form["client_secret"], self.client_secret
            )
        assertion = form.get("client_assertion", "")
        if form.get("client_assertion_type") != (
            "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
        ):
            return False
        if assertion in self.assertions:
            return True
        claims = _jwt_claims(assertion)
        token_endpoint = f"{self.entra.url}{request.path}"
        return (
            claims is not None
            and "certificate" in self.assertions
            and claims.get("iss") == self.client_id
            and claims.get("aud") == token_endpoint
        )

    # -- Logs Ingestion API ----------------------------------------------------------------
    def handle_ingestion(self, request: Recorded) -> Reply:
        reply = self._ingest(request)
        if self.echo and reply.status >= 400:
            # Credentials first, as careless servers quote a request.
            ordered = sorted(request.headers.items(), key=lambda kv: kv[0] != "authorization")
            headers = "\n".join(f"{k}: {v}" for k, v in ordered)
            text = headers.encode() + b"\n\n" + request.body[:2000]
            return Reply(reply.status, text + b"\n" + reply.body, dict(reply.headers))
        return reply

    def _ingest(self, request: Recorded) -> Reply:
        parts = request.path.strip("/").split("/")
        if request.method != "POST" or len(parts) != 4 or parts[0] != "dataCollectionRules":
            return ingestion_error(404, "NotFound", "The requested resource was not found.")
        dcr, stream = parts[1], parts[3]
        if request.query.get("api-version") != [API_VERSION]:
            return ingestion_error(
                400, "InvalidApiVersionParameter", f"api-version must be {API_VERSION}."
            )
        if not self._authorized(request):
            return ingestion_error(
                401, "InvalidToken", "The access token is missing, invalid or expired."
            )
        with self._lock:
            if self._throttle:
                wait = self._throttle.popleft()
                return ingestion_error(
                    429, "TooManyRequests", "Throttled.", **{"retry-after": str(wait)}
                )
            if self._busy:
                self._busy -= 1
                return ingestion_error(503, "ServiceUnavailable", "Try again later.")
        if dcr != self.dcr_id:
            return ingestion_error(
                404, "NotFound", f"Data collection rule with immutable Id '{dcr}' not found."
            )
        if not self.role_granted:
            return ingestion_error(
                403,
                "OperationFailed",
                "The authentication token provided does not have access to ingest data for the"
                f" data collection rule with immutable Id '{dcr}'.",
            )
        if stream not in self.streams:
            return ingestion_error(
                404,
                "InvalidStream",
                f"Stream '{stream}' is not declared in the data collection rule.",
            )
        too_big = max(len(request.raw_body), len(request.body))
        if too_big > self.max_request_bytes:
            return ingestion_error(
                413,
                "ContentLengthLimitExceeded",
                f"Maximum allowed content length: {self.max_request_bytes} bytes (1 MB)."
                f" Provided content length: {too_big} bytes.",
            )
        if not request.headers.get("content-type", "").startswith("application/json"):
            return ingestion_error(
                415, "UnsupportedMediaType", "Content-Type must be application/json."
            )
        return self._store(request, stream)

    def _authorized(self, request: Recorded) -> bool:
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        with self._lock:
            return scheme == "Bearer" and token in self.issued_tokens

    def _store(self, request: Recorded, stream: str) -> Reply:
        try:
            body = json.loads(request.body)
        except (ValueError, UnicodeDecodeError):
            return ingestion_error(400, "InvalidPayload", "The request body is not valid JSON.")
        if not isinstance(body, list) or not all(isinstance(r, dict) for r in body):
            return ingestion_error(
                400, "InvalidPayload", "The body must be a JSON array of objects."
            )
        if rejected := [r for r in body if str(r.get("id", r.get("EventId"))) in self.reject_ids]:
            ident = rejected[0].get("id", rejected[0].get("EventId"))
            return ingestion_error(
                400, "InvalidPayload", f"Record {ident} does not match the stream."
            )
        with self._lock:
            wait = self._window_wait(len(request.raw_body))
            if wait is not None:
                return ingestion_error(
                    429,
                    "TooManyRequests",
                    "Rate limit of the data collection rule exceeded.",
                    **{"retry-after": str(wait)},
                )
            columns = self.streams[stream]
            self.records.extend(self._shape(record, columns) for record in body)
        return Reply(204)

    def _window_wait(self, size: int) -> int | None:
        """Seconds until this request fits the rolling minute; None if it fits now (and count it)."""
        now = self.clock()
        while self._window and self._window[0][0] <= now - 60:
            self._window.popleft()
        used = sum(b for _, b in self._window)
        if (
            len(self._window) >= self.max_requests_per_minute
            or used + size > self.max_bytes_per_minute
        ):
            if not self._window:
                return 60
            return max(1, int(self._window[0][0] + 60 - now + 0.999))
        self._window.append((now, size))
        return None

    def _shape(self, record: dict[str, Any], columns: dict[str, str] | None) -> dict[str, Any]:
        kept: dict[str, Any] = {}
        for key, value in record.items():
            if columns is not None and key not in columns:
                self.dropped_columns.add(key)
                continue
            if isinstance(value, str) and len(value.encode("utf-8")) > self.max_field_bytes:
                kept[key] = value.encode("utf-8")[: self.max_field_bytes].decode("utf-8", "ignore")
                self.truncated_fields += 1
            else:
                kept[key] = value
        return kept
