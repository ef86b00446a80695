"""A loopback audit-log API that serves hand-made entries byte for byte (poison included).

Entries are `(when, raw bytes)`: `when` places an entry in the `effective_at` range it is
listed for, whatever its bytes say (an entry without a readable time still needs a place).
Pages hold `limit` entries, oldest first; `last_id` is a cursor of the server's own
(`cur_<index>`). The `tenant_only` pass lists nothing. Every answer carries an x-request-id,
and `served` maps each one to the entries it listed.

    api = HandmadeApi([(t, b'{"id":"a","effective_at":...}'), ...])
    with Receiver(api) as rx:
        ... point a source at f"{rx.url}/v1" ...
"""

from __future__ import annotations

import threading

from shipper.testing.receivers.base import Recorded, Reply

Entry = tuple[int, bytes]


class HandmadeApi:
    def __init__(self, entries: list[Entry]) -> None:
        self.entries = sorted(entries, key=lambda entry: entry[0])
        self.served: dict[str, list[bytes]] = {}
        self._lock = threading.Lock()

    def __call__(self, request: Recorded) -> Reply:
        query = {key: values[0] for key, values in request.query.items()}
        listed: list[bytes] = []
        if query.get("tenant_only") != "true":
            low, high = int(query["effective_at[gte]"]), int(query["effective_at[lt]"])
            listed = [raw for when, raw in self.entries if low <= when < high]
        first = int(query.get("after", "cur_0").removeprefix("cur_"))
        last = first + int(query["limit"])
        page, more = listed[first:last], last < len(listed)
        with self._lock:
            request_id = f"req_handmade_{len(self.served)}"
            self.served[request_id] = page
        body = (
            b'{"object":"list","data":['
            + b",".join(page)
            + b'],"has_more":'
            + (b"true" if more else b"false")
            + f',"last_id":"cur_{min(last, len(listed))}"}}'.encode()
        )
        headers = {"content-type": "application/json", "x-request-id": request_id}
        return Reply(200, body, headers)

    def request_of(self, raw: bytes) -> str:
        """The request id of the answer that listed `raw` (the first, if several did)."""
        with self._lock:
            return next(rid for rid, page in self.served.items() if raw in page)
