"""A fake Elasticsearch/OpenSearch on a real loopback port, answering as the `_bulk` docs describe.

- Security: with `api_key` or `basic` set, every request needs `Authorization: ApiKey <key>` or
  `Basic <base64(user:password)>`, else 401 `security_exception` in Elasticsearch's error shape.
- `POST /_bulk` and `POST /<index>/_bulk`: NDJSON (gzip too), terminated by a newline. `create`
  of an `_id` already stored answers that item 409 `version_conflict_engine_exception`; `index`
  overwrites. Names shaped like `logs-<dataset>-<namespace>` are data streams (Elasticsearch's
  built-in template): they accept only `create` and require `@timestamp`. The answer is
  `{"took", "errors", "items"}` with one item per action, in order.
- Scripted trouble: per-item 429 `es_rejected_execution_exception` for the first N attempts of an
  id (`throttle`), per-item 400 for chosen ids (`reject`), whole-request errors (`fail_requests`,
  or any reply with `script`), 413 above `max_content_length`, 403 without write privilege, 404
  when auto-create is off.
- `GET /` cluster info (Elasticsearch or OpenSearch flavour), `_security/user/_has_privileges`.

Documents are kept by index and id, across `restart()`, so tests compare them field by field.
`reset()` empties the cluster without rebinding the port, so a module can share one server.
"""

from __future__ import annotations

import base64
import re
import threading
from collections import Counter, deque
from collections.abc import Iterator
from contextlib import contextmanager
from types import TracebackType
from typing import Any, Literal

import orjson

from shipper.testing.receivers.base import Receiver, Recorded, Reply

DEFAULT_INDEX = "logs-openai.audit-default"
_DATA_STREAM = re.compile(r"^(logs|metrics|traces|synthetics)-[^-]+-[^-]+$")
_BULK_PRIVILEGES = "[create_doc,create,delete,index,write,all]"


def es_error(status: int, error_type: str, reason: str, **extra: Any) -> Reply:
    """A whole-request error exactly as Elasticsearch shapes it."""
    cause = {"type": error_type, "reason": reason, **extra}
    body = {"error": {"root_cause": [cause], **cause}, "status": status}
    headers = {"content-type": "application/json"}
    if status == 401:
        headers["www-authenticate"] = 'Basic realm="security" charset="UTF-8", ApiKey'
    return Reply(status, orjson.dumps(body), headers)


def _json(status: int, obj: Any) -> Reply:
    return Reply(status, orjson.dumps(obj), {"content-type": "application/json"})


class FakeElasticsearch:
    """See the module docstring. Use as a context manager; `url` is the address to configure."""

    def __init__(
        self,
        *,
        api_key: str | None = None,
        basic: tuple[str, str] | None = None,
        distribution: Literal["elasticsearch", "opensearch"] = "elasticsearch",
        version: str = "8.14.0",
    ) -> None:
        self._lock = threading.Lock()
        self.receiver = Receiver(self._respond)
        self.reset(api_key=api_key, basic=basic, distribution=distribution, version=version)

    def reset(
        self,
        *,
        api_key: str | None = None,
        basic: tuple[str, str] | None = None,
        distribution: Literal["elasticsearch", "opensearch"] = "elasticsearch",
        version: str = "8.14.0",
    ) -> None:
        """A fresh, empty cluster on the same port: every attribute below may then be changed."""
        self.api_key = api_key  # when set (or `basic`), requests must authenticate
        self.basic = basic
        self.distribution = distribution
        self.version = version
        self.auto_create_index = True
        self.pipelines: set[str] = set()  # ingest pipelines that exist
        self.max_content_length: int | None = None  # bodies above it get 413
        self.write_privilege = True  # False: the whole _bulk request is 403
        self.monitor_privilege = True  # False: GET / is 403
        self.denied_indices: set[str] = set()  # items for these indices are 403
        self.indices: set[str] = set()  # existing indices (matters when auto-create is off)
        self.documents: dict[str, dict[str, dict[str, Any]]] = {}
        self.created: list[str] = []  # ids in the order they were stored
        self.conflicts = 0  # creates answered 409
        self.fail_ids: set[str] = set()  # a _bulk request holding one of these: 500, every time
        self.attempts: Counter[str] = Counter()  # bulk items seen per id
        with self._lock:
            self._throttled: Counter[str] = Counter()
            self._rejects: dict[str, tuple[str, str]] = {}
            self._scripted: deque[tuple[str, Reply]] = deque()
        self.receiver.requests.clear()

    # -- lifecycle (documents survive restarts) ---------------------------------------------
    def __enter__(self) -> FakeElasticsearch:
        self.receiver.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.receiver.stop()

    @property
    def url(self) -> str:
        return self.receiver.url

    def restart(self) -> None:
        self.receiver.restart()

    @contextmanager
    def down(self) -> Iterator[None]:
        with self.receiver.down():
            yield

    # -- scripting -------------------------------------------------------------------------
    def throttle(self, event_id: str, times: int = 1) -> None:
        """The next `times` bulk items for this id get 429 es_rejected_execution_exception."""
        with self._lock:
            self._throttled[event_id] += times

    def reject(
        self,
        event_id: str,
        error_type: str = "document_parsing_exception",
        reason: str | None = None,
    ) -> None:
        """Every bulk item for this id gets 400 with this error (a mapping conflict, say)."""
        reason = (
            reason
            or f"[1:42] failed to parse field [actor_ip] of type [ip] in document with id '{event_id}'"
        )
        with self._lock:
            self._rejects[event_id] = (error_type, reason)

    def accept(self, event_id: str) -> None:
        """Undo `reject`: the mapping was fixed, the event is welcome now."""
        with self._lock:
            self._rejects.pop(event_id, None)

    def fail_requests(self, status: int, times: int = 1, retry_after: str | None = None) -> None:
        """The next `times` _bulk requests are refused whole with `status`."""
        kind = (
            "es_rejected_execution_exception" if status == 429 else "unavailable_shards_exception"
        )
        reply = es_error(status, kind, f"scripted {status}")
        if retry_after is not None:
            reply = Reply(reply.status, reply.body, {**reply.headers, "retry-after": retry_after})
        self.script(*([reply] * times))

    def script(self, *replies: Reply, path: str = "/_bulk") -> None:
        """The next requests to `path` get these replies, once each, whatever they carry."""
        with self._lock:
            self._scripted.extend((path, reply) for reply in replies)

    def _take_scripted(self, path: str) -> Reply | None:
        with self._lock:
            for index, (wanted, reply) in enumerate(self._scripted):
                if wanted == path:
                    del self._scripted[index]
                    return reply
        return None

    def docs(self, index: str = DEFAULT_INDEX) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self.documents.get(index, {}))

    def bulk_requests(self) -> list[Recorded]:
        return [r for r in self.receiver.requests if r.path.endswith("/_bulk")]

    # -- answering -------------------------------------------------------------------------
    def _respond(self, request: Recorded) -> Reply:
        scripted = self._take_scripted(request.path)
        if scripted is not None:
            return scripted
        refusal = self._authenticate(request)
        if refusal is not None:
            return refusal
        if request.path == "/" and request.method == "GET":
            return self._info()
        if request.path.endswith("/_bulk") and request.method in ("POST", "PUT"):
            return self._bulk(request)
        if (
            request.path == "/_security/user/_has_privileges"
            and self.distribution == "elasticsearch"
        ):
            return self._has_privileges(request)
        return _json(
            400,
            {
                "error": f"no handler found for uri [{request.path}] and method [{request.method}]",
                "status": 400,
            },
        )

    def _authenticate(self, request: Recorded) -> Reply | None:
        if self.api_key is None and self.basic is None:
            return None  # security disabled
        given = request.headers.get("authorization", "")
        if self.api_key is not None and given == f"ApiKey {self.api_key}":
            return None
        if self.basic is not None:
            token = base64.b64encode(f"{self.basic[0]}:{self.basic[1]}".encode()).decode()
            if given == f"Basic {token}":
                return None
        return es_error(
            401,
            "security_exception",
            "unable to authenticate with provided credentials and anonymous access is not allowed "
            "for this request",
            additional_unsuccessful_credentials="API key: invalid credentials",
        )

    def _user(self) -> str:
        return self.basic[0] if self.basic else "shipper-key"

    def _info(self) -> Reply:
        if not self.monitor_privilege:
            return es_error(
                403,
                "security_exception",
                f"action [cluster:monitor/main] is unauthorized for user [{self._user()}]",
            )
        version: dict[str, Any] = {
            "number": self.version,
            "build_type": "docker",
            "lucene_version": "9.10.0",
        }
        if self.distribution == "opensearch":
            version["distribution"] = "opensearch"
            tagline = "The OpenSearch Project: https://opensearch.org/"
        else:
            version["build_flavor"] = "default"
            tagline = "You Know, for Search"
        return _json(
            200,
            {
                "name": "node-1",
                "cluster_name": "fake-cluster",
                "cluster_uuid": "fake-uuid",
                "version": version,
                "tagline": tagline,
            },
        )

    def _has_privileges(self, request: Recorded) -> Reply:
        asked = orjson.loads(request.body)
        index_answer = {}
        for entry in asked.get("index", []):
            for name in entry["names"]:
                may_write = self.write_privilege and name not in self.denied_indices
                index_answer[name] = {
                    p: (
                        may_write if p != "auto_configure" else may_write and self.auto_create_index
                    )
                    for p in entry["privileges"]
                }
        every = all(all(v.values()) for v in index_answer.values())
        return _json(
            200,
            {
                "username": self._user(),
                "has_all_requested": every,
                "cluster": {},
                "index": index_answer,
                "application": {},
            },
        )

    def _bulk(self, request: Recorded) -> Reply:
        content_type = request.headers.get("content-type", "").split(";")[0].strip()
        if content_type not in ("application/x-ndjson", "application/json"):
            return _json(
                406,
                {"error": f"Content-Type header [{content_type}] is not supported", "status": 406},
            )
        if self.max_content_length is not None and len(request.body) > self.max_content_length:
            return Reply(413, b"")
        if not self.write_privilege:
            return es_error(
                403,
                "security_exception",
                f"action [indices:data/write/bulk] is unauthorized for user [{self._user()}] with effective "
                f"roles [reader], this action is granted by the index privileges {_BULK_PRIVILEGES}",
            )
        if not request.body.endswith(b"\n"):
            return es_error(
                400,
                "illegal_argument_exception",
                "The bulk request must be terminated by a newline [\\n]",
            )
        if self.fail_ids and any(f'"{i}"'.encode() in request.body for i in self.fail_ids):
            return es_error(500, "exception", "a node failed on this request")
        path_index = request.path[1 : -len("/_bulk")] or None
        try:
            operations = _parse_operations(request.body, path_index)
        except _Malformed as exc:
            return es_error(400, exc.error_type, str(exc))
        pipelines = request.query.get("pipeline")
        pipeline = pipelines[0] if pipelines else None
        with self._lock:
            items = [self._apply(op, pipeline) for op in operations]
        errors = any(next(iter(i.values()))["status"] >= 300 for i in items)
        return _json(200, {"took": 1, "errors": errors, "items": items})

    def _apply(self, op: _Operation, pipeline: str | None) -> dict[str, Any]:
        self.attempts[op.doc_id] += 1
        status, error = self._refusal(op, pipeline)
        head: dict[str, Any] = {"_index": op.index, "_id": op.doc_id}
        if error is not None:
            error = {**error, "index": op.index}
            return {op.action: {**head, "status": status, "error": error}}
        stored = self.documents.setdefault(op.index, {})
        result = "updated" if op.doc_id in stored else "created"
        stored[op.doc_id] = op.source
        self.indices.add(op.index)
        self.created.append(op.doc_id)
        return {
            op.action: {
                **head,
                "_version": 1,
                "result": result,
                "_seq_no": len(self.created),
                "_primary_term": 1,
                "status": 201 if result == "created" else 200,
            }
        }

    def _refusal(self, op: _Operation, pipeline: str | None) -> tuple[int, dict[str, Any] | None]:
        """The first reason this operation fails, in the order Elasticsearch would find it."""
        if not self.auto_create_index and op.index not in self.indices:
            return 404, {
                "type": "index_not_found_exception",
                "reason": f"no such index [{op.index}]",
            }
        if op.index in self.denied_indices:
            return 403, {
                "type": "security_exception",
                "reason": f"action [indices:data/write/bulk[s]] is unauthorized for user [{self._user()}] on indices [{op.index}], this action is granted by the index privileges {_BULK_PRIVILEGES}",
            }
        if pipeline is not None and pipeline not in self.pipelines:
            return 400, {
                "type": "illegal_argument_exception",
                "reason": f"pipeline with id [{pipeline}] does not exist",
            }
        if self._throttled[op.doc_id] > 0:
            self._throttled[op.doc_id] -= 1
            return 429, {
                "type": "es_rejected_execution_exception",
                "reason": "rejected execution of coordinating operation [shard_detail=[logs][0]], write queue full",
            }
        if op.doc_id in self._rejects:
            error_type, reason = self._rejects[op.doc_id]
            return 400, {"type": error_type, "reason": reason}
        if not isinstance(op.source, dict):
            return 400, {
                "type": "document_parsing_exception",
                "reason": "[1:1] failed to parse: source is not a JSON object",
            }
        if self.distribution == "elasticsearch" and _DATA_STREAM.match(op.index):
            if op.action != "create":
                return 400, {
                    "type": "illegal_argument_exception",
                    "reason": "only write ops with an op_type of create are allowed in data streams",
                }
            if "@timestamp" not in op.source:
                return 400, {
                    "type": "document_parsing_exception",
                    "reason": "data stream timestamp field [@timestamp] is missing",
                }
        if op.action == "create" and op.doc_id in self.documents.get(op.index, {}):
            self.conflicts += 1
            return 409, {
                "type": "version_conflict_engine_exception",
                "reason": f"[{op.doc_id}]: version conflict, document already exists (current version [1])",
            }
        return 201, None


class _Malformed(Exception):
    def __init__(self, error_type: str, reason: str) -> None:
        super().__init__(reason)
        self.error_type = error_type


class _Operation:
    def __init__(self, action: str, index: str, doc_id: str, source: Any) -> None:
        self.action, self.index, self.doc_id, self.source = action, index, doc_id, source


def _parse_operations(body: bytes, path_index: str | None) -> list[_Operation]:
    lines = body.split(b"\n")[:-1]
    operations: list[_Operation] = []
    number = 0
    while number < len(lines):
        try:
            action_line = orjson.loads(lines[number])
        except orjson.JSONDecodeError:
            raise _Malformed(
                "x_content_parse_exception",
                f"[{number + 1}:1] Malformed action/metadata line [{number + 1}]",
            ) from None
        if not isinstance(action_line, dict) or len(action_line) != 1:
            raise _Malformed(
                "illegal_argument_exception",
                f"Malformed action/metadata line [{number + 1}], expected START_OBJECT",
            )
        ((action, meta),) = action_line.items()
        if action not in ("create", "index"):
            raise _Malformed(
                "illegal_argument_exception",
                f"Malformed action/metadata line [{number + 1}], fake supports create and index only, got [{action}]",
            )
        if number + 1 >= len(lines):
            raise _Malformed(
                "action_request_validation_exception", "Validation Failed: 1: source is missing;"
            )
        index = meta.get("_index", path_index)
        doc_id = meta.get("_id")
        if index is None:
            raise _Malformed(
                "action_request_validation_exception", "Validation Failed: 1: index is missing;"
            )
        if not isinstance(doc_id, str) or len(doc_id.encode()) > 512:
            raise _Malformed(
                "action_request_validation_exception",
                f"Validation Failed: 1: id [{doc_id}] is too long, must be no longer than 512 bytes;",
            )
        try:
            source = orjson.loads(lines[number + 1])
        except orjson.JSONDecodeError:
            source = None  # answered per item, as Elasticsearch parses sources per shard
        operations.append(_Operation(action, index, doc_id, source))
        number += 2
    return operations
