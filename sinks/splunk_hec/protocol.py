"""Splunk HEC wire format: the event envelope, and what each HEC answer means for the sink.

HEC answers `{"text": ..., "code": N}` (plus `ackId` with indexer acknowledgement, plus
`invalid-event-number` when one event of a batch is bad). Codes, from Splunk's "Troubleshoot
HTTP Event Collector" table: 0 success; 1 token disabled (403); 2 token required (401);
3 invalid authorization (401); 4 invalid token (403); 5 no data (400); 6 invalid data format
(400); 7 incorrect index (400); 8 internal error (500); 9 server busy (503); 10 data channel
missing (400); 11 invalid data channel (400); 12 event field required (400); 13 event field
blank (400); 14 ACK disabled (400); 15 error in handling indexed fields (400); 16 query-string
authorization not enabled (400); 17 healthy (200); 18-20 unhealthy (503).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from shipper.sink_api import (
    AuditEvent,
    JsonDict,
    Refused,
    SinkFatalError,
    describe,
    occurred_ms,
    splunk_sourcetype,
)

EVENT_PATH = "/services/collector/event"
ACK_PATH = "/services/collector/ack"
HEALTH_PATH = "/services/collector/health"

TOKEN_CODES = frozenset({1, 2, 3, 4})
CHANNEL_CODES = frozenset({10, 11})
CODE_NO_DATA = 5
CODE_INVALID_FORMAT = 6
CODE_INCORRECT_INDEX = 7
CODE_ACK_DISABLED = 14
CODE_HEALTHY = 17


@dataclass(frozen=True, slots=True)
class Envelope:
    """The metadata keys of every event sent. `sourcetype` and `source` None: each event's own
    (the stanza of `deploy/splunk/props.conf` for its kind and type, `splunk_sourcetype`, and
    `openai:<source type>`); `host` and `index` None are left out (HEC then uses the token's
    defaults)."""

    sourcetype: str | None
    source: str | None
    host: str | None
    index: str | None
    indexed_fields: bool


def envelope(event: AuditEvent, document: JsonDict, meta: Envelope) -> bytes:
    """One HEC event object; JSON escaping keeps any content inside its string (no framing risk).

    `time` is when the event happened (`occurred_ms`): for a compliance record its own time,
    not the end time of its log file."""
    ms = occurred_ms(event)
    obj: JsonDict = {
        # Epoch seconds; milliseconds as the fraction only when there are any, so a whole
        # second stays an integer, as audit-log events have always been sent.
        "time": ms / 1000 if ms % 1000 else ms // 1000,
        "sourcetype": splunk_sourcetype(event) if meta.sourcetype is None else meta.sourcetype,
        "source": f"openai:{event.source_type}" if meta.source is None else meta.source,
    }
    if meta.host is not None:
        obj["host"] = meta.host
    if meta.index is not None:
        obj["index"] = meta.index
    obj["event"] = document
    if meta.indexed_fields:
        fields = {"event_type": event.type}
        if event.organization:
            fields["organization"] = event.organization
        obj["fields"] = fields
    return orjson.dumps(obj)


@dataclass(frozen=True, slots=True)
class HecReply:
    status: int
    code: int | None
    text: str
    ack_id: int | None
    invalid_event: int | None
    acks: dict[str, Any]


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def parse_reply(response: httpx.Response) -> HecReply:
    """The HEC fields of an answer; missing or unparseable fields are None (a proxy's HTML page)."""
    try:
        body = orjson.loads(response.content)
    except orjson.JSONDecodeError:
        body = None
    if not isinstance(body, dict):
        body = {}
    acks = body.get("acks")
    return HecReply(
        status=response.status_code,
        code=_int(body.get("code")),
        text=str(body.get("text", "")),
        ack_id=_int(body.get("ackId")),
        invalid_event=_int(body.get("invalid-event-number")),
        acks=acks if isinstance(acks, dict) else {},
    )


def raise_if_fatal(sink: str, response: httpx.Response, reply: HecReply, index: str | None) -> None:
    """`SinkFatalError` for answers no retry or dead letter can fix (token, index, channel, URL)."""
    what = describe(response)
    if reply.code in TOKEN_CODES or reply.status in (401, 403):
        raise SinkFatalError(
            sink,
            f"{what}: the HEC token is wrong or disabled (check token_env/token_file and "
            "the token under Settings > Data inputs > HTTP Event Collector)",
        )
    if reply.code == CODE_INCORRECT_INDEX:
        raise SinkFatalError(
            sink, f"{what}: index {index!r} does not exist or the token may not write to it"
        )
    if reply.code in CHANNEL_CODES:
        raise SinkFatalError(
            sink, f"{what}: HEC refused the data channel; check `channel` (a GUID)"
        )
    if reply.code == CODE_ACK_DISABLED:
        raise SinkFatalError(
            sink,
            f"{what}: indexer acknowledgement is disabled for this token; enable it on the "
            "token or set indexer_ack = false",
        )
    if reply.status in (404, 405) and reply.code is None:
        raise SinkFatalError(
            sink,
            f"{what}: no HEC endpoint here; url must be the HEC base such as "
            "https://splunk.example.com:8088 (is HEC enabled?)",
        )


def refusal(response: httpx.Response, reply: HecReply, *, prefix_accepted: bool) -> Refused | None:
    """None for success; else which events HEC refused (after `raise_if_fatal` ruled out the rest).

    HEC stops at the first bad event of a batch and reports its position; events before it were
    accepted. With indexer acknowledgement those have no ackId, so they are sent again instead.
    """
    if 200 <= reply.status < 300:
        return None
    index = reply.invalid_event if reply.status == 400 else None
    return Refused(describe(response), index=index, prefix_accepted=prefix_accepted)
