"""Datadog's Logs API v2 as pure functions: one log item per event, and what each answer means.

An item is `{"ddsource", "service", "hostname", "ddtags", "message", "timestamp"}`: `message` is
the rendered document as JSON text (Datadog parses a JSON message into attributes, and reserved
attribute names inside it cannot clash with the item's own keys), `timestamp` is the time the
event happened in milliseconds (`occurred_ms`: a compliance record's own time). Limits
(Datadog's "Send logs" page): 1,000 items and 5 MB uncompressed per request, 1 MB per log (a
bigger one is accepted but truncated, still 2xx), and event time at most 18 hours in the past.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import httpx
import orjson

from shipper.sink_api import AuditEvent, Refused, SinkFatalError, describe, rfc3339_ms

LOGS_PATH = "/api/v2/logs"
VALIDATE_PATH = "/api/v1/validate"
MAX_ITEMS = 1000
MAX_PAYLOAD_BYTES = 5_000_000  # uncompressed; Datadog answers 413 above it
MAX_LOG_BYTES = 1_000_000  # a bigger log is truncated, silently (2xx)
MAX_EVENT_AGE = 18 * 3600.0  # older event times are not kept by the intake
# Events this close to the 18-hour edge count as late: a retry or clock skew must not push an
# event over the edge after it was judged in time.
AGE_MARGIN = 15 * 60.0
LATE_TAG = "shipper_late:true"


@dataclass(frozen=True, slots=True)
class ItemMeta:
    """What every item carries besides the event: Datadog's reserved attributes."""

    ddsource: str
    service: str
    hostname: str | None
    tags: tuple[str, ...]


def is_late(time_ms: int, now: float) -> bool:
    """Whether the intake would not keep an event time of `time_ms` (epoch milliseconds, the
    event's `occurred_ms`) at `now` (epoch seconds), with `AGE_MARGIN` to spare."""
    return time_ms / 1000 < now - (MAX_EVENT_AGE - AGE_MARGIN)


def late_reason(time_ms: int, now: float) -> str:
    hours = (now - time_ms / 1000) / 3600
    return (
        f"event time {rfc3339_ms(time_ms)} is {hours:.1f} h old: Datadog keeps event times "
        "only up to 18 h back, so it would be stored with the wrong time "
        '(late_events = "refuse"; set "flag" to send it flagged instead)'
    )


def item(event: AuditEvent, message: bytes, meta: ItemMeta, *, time_ms: int, late: bool) -> bytes:
    """One log item; `time_ms` is when the event happened (`occurred_ms`). A late event carries
    no `timestamp` (Datadog stamps it on arrival) but the tag `shipper_late:true` and its real
    time in `event_time`, so no time changes unannounced."""
    tags = [*meta.tags, f"event_type:{event.type}"]
    if event.organization:
        tags.append(f"organization:{event.organization}")
    obj: dict[str, object] = {"ddsource": meta.ddsource, "service": meta.service}
    if meta.hostname is not None:
        obj["hostname"] = meta.hostname
    if late:
        tags.append(LATE_TAG)
        obj["event_time"] = rfc3339_ms(time_ms)
    else:
        obj["timestamp"] = time_ms
    obj["ddtags"] = ",".join(tags)
    obj["message"] = message.decode("utf-8")
    return orjson.dumps(obj)


def payload(items: Sequence[bytes]) -> bytes:
    """A JSON array of the items: one byte more than `batches` counts for them (the closing ])."""
    return b"[" + b",".join(items) + b"]"


# What an answer that is neither 2xx nor retried means, in the operator's terms.
KEY_MISSING = "Datadog got no API key: set api_key_env or api_key_file"
KEY_REFUSED = (
    "Datadog refused the API key: it is wrong or revoked, or belongs to another Datadog site "
    "(a key works only on its own site; site = {site!r}). Use an API key, not an application key"
)
NO_INTAKE = "no Datadog logs intake answers at {url}: check site (and url, if set)"
TOO_LARGE = "Datadog refused the request as over 5 MB uncompressed (413); it is split"
BAD_PAYLOAD = "Datadog refused the payload as malformed (400)"


def verdict(response: httpx.Response, *, sink: str, site: str, url: str) -> Refused | None:
    """None when accepted; `Refused` for a payload Datadog will never take; fatal for the rest."""
    status = response.status_code
    if 200 <= status < 300:
        return None
    what = describe(response)
    if status == 401:
        raise SinkFatalError(sink, f"{what}: {KEY_MISSING}")
    if status == 403:
        raise SinkFatalError(sink, f"{what}: {KEY_REFUSED.format(site=site)}")
    if status in (404, 405):
        raise SinkFatalError(sink, f"{what}: {NO_INTAKE.format(url=url)}")
    if status == 413:
        return Refused(f"{what}: {TOO_LARGE}")
    if status == 400:
        return Refused(f"{what}: {BAD_PAYLOAD}")
    return Refused(what)
