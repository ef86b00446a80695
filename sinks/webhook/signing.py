"""Standard Webhooks signatures (https://www.standardwebhooks.com, spec 1.0.0, symmetric `v1`).

Headers: `webhook-id` (stable across retries of one batch, so receivers can drop duplicates),
`webhook-timestamp` (Unix seconds of *this* attempt) and `webhook-signature: v1,<base64>`, the
HMAC-SHA256 of `{id}.{timestamp}.{payload}` keyed with the base64-decoded part of `whsec_<base64>`.

The payload signed is the JSON document before any `Content-Encoding`: gzip is a transport
coding, and a receiver decodes it before it can read (or verify) the payload.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from collections.abc import Iterable

SECRET_PREFIX = "whsec_"  # noqa: S105 (a prefix, not a secret)
MIN_KEY_BYTES = 24  # the spec asks for at least 24 random bytes


class BadSigningSecretError(ValueError):
    """The configured signing secret is not `whsec_` + base64 of enough bytes."""


def signing_key(secret: str) -> bytes:
    """The HMAC key from a `whsec_<base64>` secret (the prefix is optional)."""
    encoded = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise BadSigningSecretError("the signing secret is not whsec_ followed by base64") from None
    if len(key) < MIN_KEY_BYTES:
        raise BadSigningSecretError(
            f"the signing secret decodes to {len(key)} bytes; Standard Webhooks asks for at least "
            f"{MIN_KEY_BYTES}"
        )
    return key


def message_id(event_ids: Iterable[str]) -> str:
    """A `webhook-id` derived from the batch's event ids: equal batches get equal ids."""
    digest = hashlib.sha256("\n".join(event_ids).encode("utf-8")).hexdigest()
    return f"msg_{digest[:40]}"


def signature(key: bytes, msg_id: str, timestamp: int, payload: bytes) -> str:
    """The `webhook-signature` header value for one attempt."""
    signed = b"%s.%d.%s" % (msg_id.encode("ascii"), timestamp, payload)
    mac = hmac.new(key, signed, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode("ascii")


def signature_headers(key: bytes, msg_id: str, timestamp: int, payload: bytes) -> dict[str, str]:
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature(key, msg_id, timestamp, payload),
    }
