"""`shipper check` for Splunk HEC: is HEC healthy, and is the token good? Nothing is indexed.

Health: `GET /services/collector/health` answers 200 code 17 "HEC is healthy", or 503 codes
18-20 (queues full, ack service unavailable). Token: an empty `POST /services/collector/event`
is refused with 400 code 5 "No data" *after* the token was checked, so that answer proves the
token valid without indexing anything; codes 1-4 (401/403) mean it is wrong or disabled.
Indexer acknowledgement: a query on `/services/collector/ack` answers 200 `{"acks": ...}` when the
token has it, 400 code 14 "ACK is disabled" when it has not.
"""

from __future__ import annotations

import httpx
import orjson

from shipper.sink_api import SinkFatalError, SinkRetryableError, describe, redact
from sinks.splunk_hec.protocol import (
    ACK_PATH,
    CHANNEL_CODES,
    CODE_ACK_DISABLED,
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


ACK_OFF = "delivered then means only accepted by HEC, not indexed"


def ack_supported(
    client: httpx.Client, base: str, headers: dict[str, str]
) -> tuple[bool | None, str]:
    """Whether the token has indexer acknowledgement (None: could not tell), and why."""
    body = orjson.dumps({"acks": [0]})
    try:
        response = client.request("POST", base + ACK_PATH, content=body, headers=headers)
    except httpx.HTTPError as exc:
        return None, f"no answer: {type(exc).__name__}"
    reply = parse_reply(response)
    if 200 <= reply.status < 300 and _answers_acks(response):
        return True, "enabled on the token"
    if reply.code == CODE_ACK_DISABLED:
        return False, "disabled on the token (HEC code 14)"
    return None, describe(response)


def _answers_acks(response: httpx.Response) -> bool:
    """Whether the body is HEC's ack answer (`{"acks": {...}}`), not some other 200."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return False
    return isinstance(body, dict) and isinstance(body.get("acks"), dict)


def ack_verdict(setting: bool | str, supported: bool | None, why: str) -> str:
    """`check`'s words on indexer acknowledgement for `indexer_ack = setting`."""
    if setting is False:
        return f"indexer acknowledgement: OFF (indexer_ack = false): {ACK_OFF}"
    if supported is True:
        return "indexer acknowledgement: on (delivered means indexed)"
    if supported is None:
        return f"indexer acknowledgement: not checked ({why})"
    return (
        f"indexer acknowledgement: OFF, {why}: {ACK_OFF}; "
        "enable it on the token for delivery up to the index"
    )
