"""A fake webhook receiver that checks requests as a Standard Webhooks consumer would.

Written from the spec, not from the sink's code, so a shared misreading cannot pass both:
the key is the base64 after `whsec_`; the signed content is `{webhook-id}.{webhook-timestamp}.
{payload}`; `webhook-signature` is a space-separated list of `v1,<base64>`, compared in constant
time; the timestamp must be within `tolerance` seconds of now. Any failure -> 401. The payload
verified is the body after removing the `Content-Encoding` (gzip).

Auth (`bearer`, `basic`) failures -> 401. Bodies are NDJSON or a JSON array, chosen by
`content-type`; a malformed body -> 400; a document whose `id` is in `reject_ids` -> 422 for
the whole request. With `dedupe`, a `webhook-id` already accepted is answered 200 and ignored.

For failure drills: a request carrying an id in `fail_ids` is answered 500 (a receiver that
chokes on one event); `refuse_all` answers that status to every request; with `echo`, every
error answer carries the request's headers and body, as careless receivers do.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from typing import Any

from shipper.testing.receivers.base import Receiver, Recorded, Reply, document_id


@dataclass(frozen=True)
class Delivery:
    webhook_id: str | None
    documents: list[dict[str, Any]]


def _verify(secret: str, request: Recorded, tolerance: float) -> str | None:
    """None when the signature is valid, else why not."""
    msg_id = request.headers.get("webhook-id")
    stamp = request.headers.get("webhook-timestamp")
    signatures = request.headers.get("webhook-signature")
    if not (msg_id and stamp and signatures):
        return "missing webhook-* header"
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > tolerance:
        return "timestamp outside tolerance"
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = msg_id.encode() + b"." + stamp.encode() + b"." + request.body
    expected = base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()
    for entry in signatures.split(" "):
        version, _, value = entry.partition(",")
        if version == "v1" and hmac.compare_digest(value, expected):
            return None
    return "no matching signature"


def echo(request: Recorded) -> bytes:
    """The request as a careless receiver quotes it back: credentials first, then the body."""
    headers = sorted(request.headers.items(), key=lambda kv: kv[0] != "authorization")
    lines = [f"{name}: {value}" for name, value in headers]
    return ("\n".join(lines) + "\n\n").encode() + request.body


def _documents(request: Recorded) -> list[Any]:
    text = request.body.decode("utf-8")
    if request.headers.get("content-type", "").startswith("application/json"):
        docs = json.loads(text)
        if not isinstance(docs, list):
            raise ValueError("not an array")
        return docs
    if not text.endswith("\n"):
        raise ValueError("NDJSON body must end with a newline")
    return [json.loads(line) for line in text[:-1].split("\n")]


class FakeWebhook:
    def __init__(
        self,
        *,
        secret: str | None = None,
        bearer: str | None = None,
        basic: tuple[str, str] | None = None,
        dedupe: bool = False,
        tolerance: float = 300.0,
    ) -> None:
        self.secret = secret
        self.bearer = bearer
        self.basic = basic
        self.dedupe = dedupe
        self.tolerance = tolerance
        self.reject_ids: set[str] = set()
        self.fail_ids: set[str] = set()
        self.refuse_all: int | None = None
        # Accept this many deliveries, then answer every request 503 (a receiver going down).
        self.down_after: int | None = None
        self.echo = False
        self.deliveries: list[Delivery] = []
        self.duplicates_dropped = 0
        self.refusals: list[str] = []
        self._lock = threading.Lock()
        self.receiver = Receiver(self.handle)

    @property
    def documents(self) -> list[dict[str, Any]]:
        with self._lock:
            return [doc for d in self.deliveries for doc in d.documents]

    def ids(self) -> list[str]:
        return [document_id(doc) for doc in self.documents]

    def handle(self, request: Recorded) -> Reply:
        reply = self._handle(request)
        if self.echo and reply.status >= 400:
            return Reply(reply.status, reply.body + b"; you sent: " + echo(request))
        return reply

    def _handle(self, request: Recorded) -> Reply:
        if self.refuse_all is not None:
            return Reply(self.refuse_all, b"refusing everything")
        if self.down_after is not None and len(self.deliveries) >= self.down_after:
            return Reply(503, b"down")
        if request.method not in ("POST", "PUT"):
            return Reply(204, headers={"allow": "POST, PUT"})
        if (problem := self._auth_problem(request)) is not None:
            self.refusals.append(problem)
            return Reply(401, problem.encode())
        try:
            docs = _documents(request)
        except ValueError as exc:  # includes JSON and UTF-8 decoding errors
            return Reply(400, f"malformed body: {exc}".encode())
        ids = [document_id(d) for d in docs]
        if any(i in self.fail_ids for i in ids):
            return Reply(500, b"internal error")
        if bad := [i for i in ids if i in self.reject_ids]:
            return Reply.json(422, {"error": "rejected documents", "ids": bad})
        return self._accept(request.headers.get("webhook-id"), docs)

    def _accept(self, webhook_id: str | None, docs: list[Any]) -> Reply:
        with self._lock:
            seen = {d.webhook_id for d in self.deliveries}
            if self.dedupe and webhook_id is not None and webhook_id in seen:
                self.duplicates_dropped += 1
                return Reply(200, b"duplicate ignored")
            self.deliveries.append(Delivery(webhook_id, docs))
        return Reply(200, b"ok")

    def _auth_problem(self, request: Recorded) -> str | None:
        header = request.headers.get("authorization", "")
        if self.bearer is not None and not hmac.compare_digest(header, f"Bearer {self.bearer}"):
            return "bad bearer token"
        if self.basic is not None:
            expected = base64.b64encode(":".join(self.basic).encode()).decode()
            if not hmac.compare_digest(header, f"Basic {expected}"):
                return "bad basic credentials"
        if self.secret is not None:
            return _verify(self.secret, request, self.tolerance)
        return None
