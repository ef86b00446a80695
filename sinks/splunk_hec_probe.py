"""`shipper check` for Splunk HEC: is HEC healthy, and is the token good? Nothing is indexed.

Health: `GET /services/collector/health` answers 200 code 17 "HEC is healthy", or 503 codes
18-20 (queues full, ack service unavailable). Token: an empty `POST /services/collector/event`
is refused with 400 code 5 "No data" *after* the token was checked, so that answer proves the
token valid without indexing anything; codes 1-4 (401/403) mean it is wrong or disabled.
"""

from __future__ import annotations

import httpx

from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.secrets import redact
from sinks.http_common import describe
from sinks.splunk_hec_protocol import (
    CHANNEL_CODES,
    CODE_HEALTHY,
    CODE_NO_DATA,
    EVENT_PATH,
    HEALTH_PATH,
    TOKEN_CODES,
    parse_reply,
)


def _request(
    sink: str,
    client: httpx.Client,
    method: str,
    url: str,
    *,
    content: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> httpx.Response:
    try:
        return client.request(method, url, content=content, headers=headers)
    except httpx.TransportError as exc:
        raise SinkRetryableError(
            sink, f"unreachable: {type(exc).__name__}: {redact(str(exc))}"
        ) from None


def _health(sink: str, client: httpx.Client, base: str) -> tuple[bool, str]:
    reply = parse_reply(_request(sink, client, "GET", base + HEALTH_PATH))
    healthy = reply.status == 200 and reply.code in (CODE_HEALTHY, None)
    text = reply.text or f"HTTP {reply.status}"
    return healthy, f"health: {text} (HTTP {reply.status}, code {reply.code})"


def _token(
    sink: str, client: httpx.Client, base: str, headers: dict[str, str]
) -> tuple[bool | None, str]:
    """(True: valid, False: refused, None: could not tell) and a description."""
    response = _request(sink, client, "POST", base + EVENT_PATH, content=b"", headers=headers)
    reply = parse_reply(response)
    if reply.code == CODE_NO_DATA:
        return True, "token: accepted"
    if reply.code in TOKEN_CODES or reply.status in (401, 403):
        return False, f"token: refused ({reply.text or reply.status}), wrong or disabled"
    if reply.code in CHANNEL_CODES:
        return False, f"token: accepted, but the data channel was refused ({reply.text})"
    known = reply.status >= 500 or reply.status in (408, 429)
    return (None if known else False), f"token: not checked ({describe(response)})"


def probe_hec(sink: str, client: httpx.Client, base: str, headers: dict[str, str]) -> str:
    """A one-line verdict; raises with the same line when HEC is unhealthy or the token is bad."""
    healthy, health = _health(sink, client, base)
    token_ok, token = _token(sink, client, base, headers)
    verdict = f"{base}: {health}; {token}"
    if token_ok is False:
        raise SinkFatalError(sink, verdict)
    if not (healthy and token_ok):
        raise SinkRetryableError(sink, verdict)
    return verdict
