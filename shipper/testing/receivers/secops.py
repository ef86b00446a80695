"""A fake Google Security Operations (Chronicle API) and its OAuth token endpoint, on loopback.

What it answers, as Google documents it (and, where Google does not, as stated):

- `POST /token`: the service-account JWT exchange (RFC 7523) that google-auth performs. The
  form's `grant_type` must be `urn:ietf:params:oauth:grant-type:jwt-bearer`; the `assertion` is
  verified against the account's public key (RS256), its `aud` must be Google's token endpoint
  (google-auth puts `https://oauth2.googleapis.com/token` there whatever `token_uri` says), and its
  `scope` must include cloud-platform (or chronicle). Answers `{"access_token", "expires_in",
  "token_type"}`, or 400 `{"error": "invalid_grant" | "invalid_scope" | ...}` as Google's token
  endpoint does. `new_account()` makes a key file (a fresh RSA key) whose `token_uri` is here.
- `POST /{version}/projects/P/locations/L/instances/I/logTypes/T/logs:import` (documented in
  v1alpha and v1beta; v1 accepted too): bearer token required (401 UNAUTHENTICATED), the account
  needs `chronicle.logs.import` (403 PERMISSION_DENIED), a wrong project/location/instance or an
  unknown log type is 404 NOT_FOUND (an assumption: Google does not document this answer).
  The body `{"inlineSource": {"logs": [...]}}` is checked field by field: unknown fields are
  refused (as Google's JSON transcoding does), `data` must be base64, `logEntryTime` and
  `collectionTime` RFC 3339 (0/3/6/9 fractional digits) with collection strictly after entry.
  Any fault refuses the whole request with 400 INVALID_ARGUMENT; success is 200 `{}`.
- Limits: `max_log_bytes` (documented for the legacy Ingestion API: 1 MB per log) is measured
  on each log's decoded `data`; `max_request_bytes` and `max_logs` are not documented by Google:
  the defaults are the sink's conservative ones, measured on the request body as the API reads
  it (after any gzip) and on the number of logs. Over a limit: 400 INVALID_ARGUMENT.
- `GET .../logTypes/T` (logTypes.get): 200 with the log type, 404, or 403 without read access.
- Throttling: `throttle(n, retry_after)` answers the next n imports 429 RESOURCE_EXHAUSTED
  with `Retry-After`; `unavailable(n)` 503 UNAVAILABLE; `throttle_tokens(n)` 503 on /token.
  `reject(event_id)` makes any request holding that event's log 400 (as Chronicle would for
  content it cannot take). `revoke_tokens()` forgets every issued token (answers become 401).
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import jwt

from shipper.testing.receivers.base import Receiver, Recorded, Reply

JWT_GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"
TOKEN_AUDIENCE = "https://oauth2.googleapis.com/token"
SCOPES_ACCEPTED = (
    "https://www.googleapis.com/auth/cloud-platform",
    "https://www.googleapis.com/auth/chronicle",
)
VERSIONS = ("v1alpha", "v1beta", "v1")
RESOURCE = re.compile(
    r"^/(?P<version>[^/]+)/projects/(?P<project>[^/]+)/locations/(?P<location>[^/]+)"
    r"/instances/(?P<instance>[^/]+)/logTypes/(?P<log_type>[^/:]+)(?P<import>/logs:import)?$"
)
RFC3339 = re.compile(
    r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.(\d{3}|\d{6}|\d{9}))?(Z|[+-]\d{2}:\d{2})$"
)
LOG_FIELDS = {
    "data",
    "logEntryTime",
    "log_entry_time",
    "collectionTime",
    "collection_time",
    "environmentNamespace",
    "environment_namespace",
    "labels",
    "additionals",
}
SOURCE_FIELDS = {"logs", "forwarder", "sourceFilename", "source_filename"}
DEFAULT_MAX_REQUEST_BYTES = 1_000_000
DEFAULT_MAX_LOGS = 1000
DEFAULT_MAX_LOG_BYTES = 1_000_000


def google_error(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Reply:
    """Google's JSON error body: `{"error": {"code", "message", "status"}}`."""
    body = {"error": {"code": status, "message": message, "status": code}}
    return Reply.json(status, body, headers)


def oauth_error(status: int, error: str, description: str) -> Reply:
    return Reply.json(status, {"error": error, "error_description": description})


@dataclass
class Account:
    email: str
    public_pem: bytes
    importer: bool = True  # has chronicle.logs.import
    reader: bool = True  # has chronicle.logTypes.get


@dataclass(frozen=True)
class ImportedLog:
    log_type: str
    data: bytes
    log_entry_time: str
    collection_time: str
    namespace: str | None
    labels: dict[str, Any]

    def json(self) -> Any:
        return json.loads(self.data)


@dataclass
class _Token:
    email: str
    expires: float


@dataclass
class _Faults:
    throttle: int = 0
    retry_after: str = "1"
    unavailable: int = 0
    token_busy: int = 0


def new_key() -> tuple[str, bytes]:
    """A throwaway RSA key: (PKCS#8 private PEM text, public PEM bytes)."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode("ascii")
    public = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private, public


class FakeSecOps:
    def __init__(
        self,
        *,
        project: str = "secops-project",
        location: str = "us",
        instance: str = "0b6b5a5e-6a4b-4c1e-9d1b-2f5a3c4d5e6f",
        log_types: set[str] | None = None,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        max_logs: int = DEFAULT_MAX_LOGS,
        max_log_bytes: int = DEFAULT_MAX_LOG_BYTES,
        token_ttl: int = 3600,
    ) -> None:
        self.project = project
        self.location = location
        self.instance = instance
        self.log_types = log_types if log_types is not None else {"OPENAI_AUDITLOG"}
        self.max_request_bytes = max_request_bytes
        self.max_logs = max_logs
        self.max_log_bytes = max_log_bytes
        self.token_ttl = token_ttl
        self.accounts: dict[str, Account] = {}
        self.logs: list[ImportedLog] = []
        self.refusals: list[tuple[int, str]] = []  # (status, message) of every non-200 import
        self.import_sizes: list[tuple[int, int]] = []  # (body bytes, logs) of every import seen
        self.tokens_issued = 0
        self._tokens: dict[str, _Token] = {}
        self._rejected_ids: set[str] = set()
        self._faults = _Faults()
        self._lock = threading.Lock()
        self.receiver = Receiver(self.handle)

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> FakeSecOps:
        self.receiver.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.receiver.stop()

    @property
    def url(self) -> str:
        return self.receiver.url

    @property
    def token_uri(self) -> str:
        return self.receiver.url + "/token"

    # -- scripting -------------------------------------------------------------------------
    def new_account(
        self, email: str = "shipper@secops-project.iam.gserviceaccount.com", **rights: bool
    ) -> dict[str, str]:
        """A service-account key file's content (fresh RSA key) registered with this fake."""
        private, public = new_key()
        with self._lock:
            self.accounts[email] = Account(email, public, **rights)
        return {
            "type": "service_account",
            "project_id": self.project,
            "private_key_id": secrets.token_hex(20),
            "private_key": private,
            "client_email": email,
            "client_id": "1" + "0" * 20,
            "token_uri": self.token_uri,
        }

    def throttle(self, times: int, retry_after: str = "1") -> None:
        with self._lock:
            self._faults.throttle += times
            self._faults.retry_after = retry_after

    def unavailable(self, times: int) -> None:
        with self._lock:
            self._faults.unavailable += times

    def throttle_tokens(self, times: int) -> None:
        with self._lock:
            self._faults.token_busy += times

    def reject(self, event_id: str) -> None:
        with self._lock:
            self._rejected_ids.add(event_id)

    def revoke_tokens(self) -> None:
        with self._lock:
            self._tokens.clear()

    def reset(self) -> None:
        with self._lock:
            self.logs.clear()
            self.refusals.clear()
            self.import_sizes.clear()
            self._rejected_ids.clear()
            self._faults = _Faults()
        self.receiver.requests.clear()

    def event_ids(self) -> list[str]:
        with self._lock:
            logs = list(self.logs)
        return [str(log.json().get("id", "")) for log in logs]

    # -- protocol --------------------------------------------------------------------------
    def handle(self, request: Recorded) -> Reply:
        if request.path == "/token":
            return self._token(request)
        match = RESOURCE.match(request.path)
        if match is None or match["version"] not in VERSIONS:
            return Reply(404, b"<html>Error 404 (Not Found)</html>", {"content-type": "text/html"})
        account, refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        resource = request.path.removeprefix(f"/{match['version']}/").removesuffix("/logs:import")
        if match["import"]:
            if request.method != "POST":
                return google_error(405, "METHOD_NOT_ALLOWED", "use POST")
            return self._import(request, match, account, resource)
        if request.method != "GET":
            return google_error(405, "METHOD_NOT_ALLOWED", "use GET")
        if not account.reader:
            return google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'chronicle.logTypes.get' denied on resource '{resource}' "
                "(or it may not exist).",
            )
        if not self._exists(match):
            return google_error(404, "NOT_FOUND", f"LogType {resource} not found.")
        return Reply.json(200, {"name": resource, "displayName": match["log_type"]})

    def _exists(self, match: re.Match[str]) -> bool:
        return (
            match["project"] == self.project
            and match["location"] == self.location
            and match["instance"] == self.instance
            and match["log_type"] in self.log_types
        )

    def _authenticate(self, request: Recorded) -> tuple[Account, Reply | None]:
        nobody = Account("", b"")
        scheme, _, value = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not value:
            return nobody, google_error(
                401,
                "UNAUTHENTICATED",
                "Request is missing required authentication credential. Expected OAuth 2 "
                "access token, login cookie or other valid authentication credential.",
            )
        with self._lock:
            token = self._tokens.get(value)
            account = self.accounts.get(token.email) if token is not None else None
        if token is None or account is None or token.expires < time.time():
            return nobody, google_error(
                401,
                "UNAUTHENTICATED",
                "Request had invalid authentication credentials. Expected OAuth 2 access token, "
                "login cookie or other valid authentication credential.",
            )
        return account, None

    def _token(self, request: Recorded) -> Reply:
        with self._lock:
            if self._faults.token_busy > 0:
                self._faults.token_busy -= 1
                return oauth_error(503, "temporarily_unavailable", "try again later")
        form = {k: v[0] for k, v in parse_qs(request.body.decode("utf-8", "replace")).items()}
        if form.get("grant_type") != JWT_GRANT:
            return oauth_error(400, "unsupported_grant_type", "Invalid grant_type.")
        assertion = form.get("assertion", "")
        try:
            claims = jwt.decode(assertion, verify=False)  # type: ignore[no-untyped-call]
        except (ValueError, TypeError):
            return oauth_error(400, "invalid_grant", "Invalid JWT: malformed.")
        with self._lock:
            account = self.accounts.get(str(claims.get("iss", "")))
        if account is None:
            return oauth_error(400, "invalid_grant", "Invalid grant: account not found")
        try:
            jwt.decode(  # type: ignore[no-untyped-call]
                assertion, certs=account.public_pem, audience=TOKEN_AUDIENCE
            )
        except ValueError:
            return oauth_error(400, "invalid_grant", "Invalid JWT Signature.")
        scopes = str(claims.get("scope", "")).split()
        if not any(scope in SCOPES_ACCEPTED for scope in scopes):
            return oauth_error(400, "invalid_scope", "Invalid OAuth scope or ID token audience.")
        access = "ya29.fake-" + secrets.token_urlsafe(32)
        with self._lock:
            self._tokens[access] = _Token(account.email, time.time() + self.token_ttl)
            self.tokens_issued += 1
        body = {"access_token": access, "expires_in": self.token_ttl, "token_type": "Bearer"}
        return Reply.json(200, body)

    def _import(
        self, request: Recorded, match: re.Match[str], account: Account, resource: str
    ) -> Reply:
        with self._lock:
            self.import_sizes.append((len(request.body), _count_logs(request.body)))
            reply = self._fault()
        if reply is None and not account.importer:
            reply = google_error(
                403,
                "PERMISSION_DENIED",
                f"Permission 'chronicle.logs.import' denied on resource '{resource}' "
                "(or it may not exist).",
            )
        if reply is None and not self._exists(match):
            reply = google_error(404, "NOT_FOUND", f"Resource {resource} not found.")
        if reply is None:
            logs, reply = self._parse(request, match["log_type"])
            if reply is None:
                with self._lock:
                    self.logs.extend(logs)
                return Reply.json(200, {})
        with self._lock:
            self.refusals.append((reply.status, reply.body.decode("utf-8", "replace")))
        return reply

    def _fault(self) -> Reply | None:
        faults = self._faults
        if faults.throttle > 0:
            faults.throttle -= 1
            return google_error(
                429,
                "RESOURCE_EXHAUSTED",
                "Quota exceeded for quota metric 'Import requests'.",
                {"retry-after": faults.retry_after},
            )
        if faults.unavailable > 0:
            faults.unavailable -= 1
            return google_error(503, "UNAVAILABLE", "The service is currently unavailable.")
        return None

    def _parse(self, request: Recorded, log_type: str) -> tuple[list[ImportedLog], Reply | None]:
        def bad(message: str) -> tuple[list[ImportedLog], Reply | None]:
            return [], google_error(400, "INVALID_ARGUMENT", message)

        if len(request.body) > self.max_request_bytes:
            return bad(f"Request payload size exceeds the limit: {self.max_request_bytes} bytes.")
        try:
            body = json.loads(request.body)
        except ValueError:
            return bad("Invalid JSON payload received.")
        if not isinstance(body, dict) or set(body) - {"inlineSource", "inline_source", "hint"}:
            return bad("Invalid JSON payload received. Unknown name in the request body.")
        source = body.get("inlineSource", body.get("inline_source"))
        if not isinstance(source, dict) or set(source) - SOURCE_FIELDS:
            return bad("inline_source is required and takes logs, forwarder, source_filename.")
        raw_logs = source.get("logs")
        if not isinstance(raw_logs, list) or not raw_logs:
            return bad("inline_source.logs must not be empty.")
        if len(raw_logs) > self.max_logs:
            return bad(f"Too many logs in one request: {len(raw_logs)} > {self.max_logs}.")
        logs: list[ImportedLog] = []
        for index, raw in enumerate(raw_logs):
            log, problem = self._log(raw, log_type)
            if problem:
                return bad(f"logs[{index}]: {problem}")
            assert log is not None
            logs.append(log)
        with self._lock:
            rejected = set(self._rejected_ids)
        for index, log in enumerate(logs):
            if _log_id(log.data) in rejected:
                return bad(f"logs[{index}]: the log could not be imported.")
        return logs, None

    def _log(self, raw: Any, log_type: str) -> tuple[ImportedLog | None, str]:
        if not isinstance(raw, dict) or set(raw) - LOG_FIELDS:
            return None, "unknown field in Log"
        try:
            data = base64.b64decode(str(raw.get("data", "")), validate=True)
        except (binascii.Error, ValueError):
            return None, "data is not valid base64"
        if not data:
            return None, "data is required"
        if len(data) > self.max_log_bytes:
            return None, f"log size {len(data)} exceeds the maximum of {self.max_log_bytes} bytes"
        entry = raw.get("logEntryTime", raw.get("log_entry_time"))
        collection = raw.get("collectionTime", raw.get("collection_time"))
        entry_at, collected_at = _time(entry), _time(collection)
        if entry_at is None:
            return None, "log_entry_time is required (RFC 3339)"
        if collected_at is None:
            return None, "collection_time is required (RFC 3339)"
        if collected_at <= entry_at:
            return None, "collection_time must be after log_entry_time"
        labels = raw.get("labels", {})
        if not isinstance(labels, dict) or not all(
            isinstance(v, dict) and isinstance(v.get("value"), str) for v in labels.values()
        ):
            return None, "labels must map keys to {value: string}"
        namespace = raw.get("environmentNamespace", raw.get("environment_namespace"))
        return ImportedLog(log_type, data, str(entry), str(collection), namespace, labels), ""


def _time(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not RFC3339.match(value):
        return None
    text = value.replace("Z", "+00:00")
    if "." in text:  # Python reads at most 6 fractional digits
        head, _, rest = text.partition(".")
        digits = re.match(r"\d+", rest)
        assert digits is not None
        text = f"{head}.{digits.group()[:6]}{rest[len(digits.group()) :]}"
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _log_id(data: bytes) -> str:
    try:
        obj = json.loads(data)
    except ValueError:
        return ""
    return str(obj.get("id", "")) if isinstance(obj, dict) else ""


def _count_logs(body: bytes) -> int:
    try:
        source = json.loads(body).get("inlineSource", {})
        return len(source.get("logs", []))
    except (ValueError, AttributeError, TypeError):
        return 0


__all__ = ["FakeSecOps", "ImportedLog", "google_error", "new_key"]
