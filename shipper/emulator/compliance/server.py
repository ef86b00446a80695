"""`ComplianceEmulator`: the Compliance Logs Platform on two loopback ports, with faults.

The API port answers the listing (`GET /v1/compliance/{scope}/{id}/logs`) and the download
(`.../logs/{file_id}`, a 307 to a signed URL); the storage port serves the signed URL, checking
its signature and expiry, and streams the JSONL body. Every behaviour API.md marks UNKNOWN is an
attribute a test can flip; the defaults follow what the peers saw.
"""

from __future__ import annotations

import hashlib
import hmac
import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import parse_qs, quote, urlencode

import orjson

from shipper.emulator.compliance.faults import ComplianceFault, ComplianceFaultSchedule
from shipper.emulator.compliance.handler import ComplianceServer, replacing_answer
from shipper.emulator.compliance.query import (
    API_PREFIX,
    QueryError,
    QueryRules,
    parse_list_query,
    parse_path,
    parse_time,
)
from shipper.emulator.compliance.records import (
    EVENT_TYPES,
    ORGANIZATION_EVENT_TYPES,
    Record,
    format_time,
    user_pool,
)
from shipper.emulator.compliance.store import (
    Bodies,
    FileIndex,
    LogFile,
    RecordSpec,
    Scope,
)
from shipper.emulator.faults import Canned, api_error, invalid_key, missing_key
from shipper.emulator.handler import bearer

if TYPE_CHECKING:
    from shipper.emulator.compliance.handler import Handler

__all__ = ["ComplianceEmulator", "ComplianceStats"]

DEFAULT_WORKSPACE_ID = "3f2b8c1d-7a4e-4c55-9e21-6d0b5a9c4e10"
DEFAULT_ORGANIZATION_ID = "org-Xq7Lm2Pz9Rt4Vb6Nc8Kd1Wf3"
DEFAULT_START = datetime(2026, 7, 20, tzinfo=UTC)
# COSTS repeats records across files: gram measured 3.4 % on the live feed.
COSTS_DUPLICATE_RATIO = 0.03
STORAGE_PATH = "/logs/"


def _real_time() -> float:
    return time.clock_gettime(time.CLOCK_REALTIME)


def _micros(when: datetime) -> int:
    if when.tzinfo is None:
        raise ValueError("times must carry a time zone")
    return int(when.timestamp()) * 1_000_000 + when.microsecond


@dataclass
class ComplianceStats:
    """Counters since the emulator was created; `ComplianceEmulator.stats` hands out a copy."""

    requests: int = 0
    list_requests: int = 0
    download_requests: int = 0
    storage_requests: int = 0
    files_served: int = 0  # bodies sent whole
    bytes_served: int = 0
    records_served: dict[str, int] = field(default_factory=dict)  # per event type, whole bodies
    faults_served: dict[str, int] = field(default_factory=dict)  # "where:kind"
    responses_by_status: dict[int, int] = field(default_factory=dict)


class _Recorder:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stats = ComplianceStats()
        self._served_files: set[str] = set()

    def count(self, counter: str | None) -> None:
        """One more request, and one more of `counter` (a kind of request) unless None."""
        with self._lock:
            self._stats.requests += 1
            if counter is not None:
                setattr(self._stats, counter, getattr(self._stats, counter) + 1)

    def tally(self, counter: str, key: str | int) -> None:
        with self._lock:
            values: dict[Any, int] = getattr(self._stats, counter)
            values[key] = values.get(key, 0) + 1

    def served(self, log_file: LogFile, size: int) -> None:
        with self._lock:
            self._stats.files_served += 1
            self._stats.bytes_served += size
            counts = self._stats.records_served
            counts[log_file.event_type] = counts.get(log_file.event_type, 0) + len(log_file.records)
            self._served_files.add(log_file.id)

    def served_files(self) -> set[str]:
        with self._lock:
            return set(self._served_files)

    def snapshot(self) -> ComplianceStats:
        with self._lock:
            return replace(
                self._stats,
                records_served=dict(self._stats.records_served),
                faults_served=dict(self._stats.faults_served),
                responses_by_status=dict(self._stats.responses_by_status),
            )


def _storage_error(status: int, code: str, message: str) -> Canned:
    """An object store's error: XML, as blob and S3-style stores answer a signed URL."""
    body = (
        '<?xml version="1.0" encoding="utf-8"?><Error>'
        f"<Code>{code}</Code><Message>{message}</Message></Error>"
    )
    return Canned(status, body.encode(), "application/xml")


class ComplianceEmulator:
    """The Compliance Logs Platform (listing, 307 download, signed-URL storage) on loopback."""

    def __init__(
        self,
        *,
        api_key: str = "sk-proj-compliance-emulator-demo",
        workspace_id: str = DEFAULT_WORKSPACE_ID,
        organization_id: str = DEFAULT_ORGANIZATION_ID,
        keys_without_permission: Iterable[str] = (),
        host: str = "127.0.0.1",
        seed: int = 0,
    ) -> None:
        self.api_key = api_key
        self.keys_without_permission = frozenset(keys_without_permission)
        self.host = host
        # Switches for what API.md leaves UNKNOWN (defaults: what the peers saw).
        self.after_inclusive = True  # `end_time >= after`: the boundary file comes back
        self.null_last_end_time_on_empty = True  # else an empty page echoes `after`
        # "last_file": `last_end_time` is the page's last `end_time`; "watermark": on the last
        # page it is `max(that, watermark)` (a window end later than every file).
        self.last_end_time_mode: Literal["last_file", "watermark"] = "last_file"
        self.watermark: datetime | None = None
        self.include_sha256 = True  # `file_sha256` in the listing
        self.concatenated = False  # bodies as JSON objects glued without newlines
        self.storage_rejects_authorization = True  # a signed URL needs no other credential
        self.url_ttl = 300.0  # seconds a signed URL stays valid
        self.rules = QueryRules(known_event_types=frozenset(EVENT_TYPES))
        # The API's clock (Date headers, signed URL expiry): real time plus `clock_skew`.
        self.clock: Callable[[], float] = _real_time
        self.clock_skew = 0.0
        self._scopes: set[Scope] = {
            ("workspaces", workspace_id),
            ("organizations", organization_id),
        }
        self.workspace_id, self.organization_id = workspace_id, organization_id
        self._index = FileIndex()
        self._bodies = Bodies(user_pool(seed))
        self._faults = ComplianceFaultSchedule(seed)
        self._stats = _Recorder()
        self._rng = random.Random(seed)  # noqa: S311 -- reproducible test data, not secrets
        self._rng_lock = threading.Lock()
        self._history: dict[tuple[Scope, str], list[RecordSpec]] = {}
        self._signing_key = secrets.token_bytes(32)
        self._stopping = threading.Event()
        self._servers: list[ComplianceServer] = []
        self._threads: list[threading.Thread] = []

    # lifecycle

    def start(self) -> ComplianceEmulator:
        """Bind both ports and serve in daemon threads; returns self."""
        if self._servers:
            return self
        self._stopping = threading.Event()
        for storage in (False, True):
            server = ComplianceServer((self.host, 0), self, storage=storage)
            thread = threading.Thread(
                target=server.serve_forever,
                kwargs={"poll_interval": 0.05},  # bounds how long stop() waits
                name=f"compliance-{'storage' if storage else 'api'}-{server.server_port}",
                daemon=True,
            )
            thread.start()
            self._servers.append(server)
            self._threads.append(thread)
        return self

    def stop(self) -> None:
        """Stop both servers, drop open connections; safe to call twice."""
        servers, threads = self._servers, self._threads
        self._servers, self._threads = [], []
        self._stopping.set()  # wakes handlers held by a timeout fault
        for server in servers:
            server.shutdown()
            server.drop_connections()
            server.server_close()
        for thread in threads:
            thread.join()

    def __enter__(self) -> ComplianceEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _url(self, storage: bool) -> str:
        if not self._servers:
            raise RuntimeError("the emulator is not running (use it as a context manager)")
        return f"http://{self.host}:{self._servers[storage].server_port}"

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT/v1/compliance`: the source's base URL."""
        return self._url(False) + API_PREFIX

    @property
    def storage_url(self) -> str:
        """Origin of the signed URLs (another port: another host to an HTTP client)."""
        return self._url(True)

    def scope_url(self, scope: Literal["workspaces", "organizations"] = "workspaces") -> str:
        scope_id = self.workspace_id if scope == "workspaces" else self.organization_id
        return f"{self.base_url}/{scope}/{scope_id}"

    def api_time(self) -> float:
        return self.clock() + self.clock_skew

    # data

    def add_files(
        self,
        event_type: str,
        *,
        count: int = 1,
        records_per_file: int = 5,
        start: datetime | None = None,
        spacing: float = 300.0,
        end_times: Sequence[datetime] | None = None,
        scope_id: str | None = None,
        record_bytes: int = 0,
        duplicate_ratio: float | None = None,
    ) -> list[LogFile]:
        """Add `count` files of `event_type`, `spacing` seconds apart, the first ending at
        `start + spacing` (default: after the newest file of that type, or 2026-07-20), or
        ending at `end_times` exactly (ties allowed). Each holds `records_per_file` records of
        about `record_bytes` bytes each (0: sample-sized), the last dated at the file's
        `end_time`. A `duplicate_ratio` of the records (default 3 % for COSTS, else none)
        repeats a record of an earlier file of the same feed. The scope defaults to the
        organization for COSTS, else the workspace; bodies are generated when served."""
        if records_per_file < 1 or count < 0 or spacing <= 0:
            raise ValueError("need records_per_file >= 1, count >= 0 and spacing > 0")
        scope = self._scope_for(event_type, scope_id)
        if duplicate_ratio is None:
            duplicate_ratio = COSTS_DUPLICATE_RATIO if event_type == "COSTS" else 0.0
        step = int(spacing * 1_000_000)
        if end_times is None:
            latest = self._index.latest(scope, event_type)
            first = (
                _micros(start or DEFAULT_START) if latest is None or start else latest.end_micros
            )
            ends = [first + step * (n + 1) for n in range(count)]
        else:
            ends = [_micros(when) for when in end_times]
        self.rules.known_event_types |= {event_type}
        files = [
            self._new_file(
                scope,
                event_type,
                end,
                step=step,
                records=records_per_file,
                size=record_bytes,
                duplicate_ratio=duplicate_ratio,
            )
            for end in ends
        ]
        for log_file in files:
            self._index.add(log_file)
        return files

    def _scope_for(self, event_type: str, scope_id: str | None) -> Scope:
        if scope_id is None:
            org = event_type in ORGANIZATION_EVENT_TYPES
            scope_id = self.organization_id if org else self.workspace_id
        scope: Scope = ("organizations" if scope_id.startswith("org-") else "workspaces", scope_id)
        try:
            route = parse_path(f"{API_PREFIX}/{scope[0]}/{scope_id}/logs")  # validates the id
        except QueryError as exc:
            raise ValueError(orjson.loads(exc.canned.body)["error"]["message"]) from None
        if route is None:  # a "/" in the id
            raise ValueError(f"Invalid {scope[0][:-1]} id {scope_id!r}: it contains '/'.")
        self._scopes.add(scope)
        return scope

    def _new_file(
        self, scope: Scope, event_type: str, end: int, *, step: int, records: int, size: int,
        duplicate_ratio: float,
    ) -> LogFile:  # fmt: skip
        history = self._history.setdefault((scope, event_type), [])
        specs: list[RecordSpec] = []
        fresh: list[RecordSpec] = []
        with self._rng_lock:
            file_id = f"eclf_{self._rng.getrandbits(128):032x}"
            for n in range(records):
                if history and self._rng.random() < duplicate_ratio:
                    specs.append(self._rng.choice(history))  # the same record, byte for byte
                    continue
                micros = end - (records - 1 - n) * (step // records)
                fresh.append(RecordSpec(self._rng.getrandbits(64), micros, size))
                specs.append(fresh[-1])
            history.extend(fresh)
        return LogFile(file_id, event_type, scope, end, tuple(specs))

    def files(self, event_type: str | None = None) -> list[LogFile]:
        """Every file held (of one type), in listing order."""
        return self._index.all(event_type)

    def records(self, event_type: str) -> list[Record]:
        """Ground truth: every record in every file of `event_type`, duplicates included."""
        return [r for f in self._index.all(event_type) for r in self._bodies.records(f)]

    def file_records(self, log_file: LogFile) -> list[Record]:
        return list(self._bodies.records(log_file))

    def served_records(self, event_type: str) -> list[Record]:
        """The records of every `event_type` file whose body was sent whole at least once."""
        served = self._stats.served_files()
        return [
            r
            for f in self._index.all(event_type)
            if f.id in served
            for r in self._bodies.records(f)
        ]

    def body(self, log_file: LogFile) -> bytes:
        """The body as served (for small files: it is built in memory)."""
        return b"".join(self._bodies.chunks(log_file, concatenated=self.concatenated))

    # faults, stats

    def inject(self, fault: ComplianceFault) -> None:
        self._faults.add(fault)

    def clear_faults(self) -> None:
        self._faults.clear()

    @property
    def stats(self) -> ComplianceStats:
        return self._stats.snapshot()

    # the API host

    def _serve_api(self, handler: Handler, path: str, query: str) -> None:
        try:
            route = parse_path(path)
        except QueryError as exc:
            self._stats.count(None)
            handler.send(exc.canned)
            return
        if route is None:
            self._stats.count(None)
            handler.send(Canned(404, api_error(f"Invalid URL ({handler.command} {path})")))
            return
        where: Literal["list", "download"] = "list" if route.file_id is None else "download"
        self._stats.count(f"{where}_requests")
        fault = self._faults.next(where, route.file_id)
        if self._fault_answered(handler, where, fault):
            return
        try:
            answer = self._api_answer(route.scope, route.file_id, query, handler, fault)
        except QueryError as exc:
            answer = exc.canned
        if fault is not None and fault.kind == "concatenated":
            answer = replace(answer, body=answer.body + b"\n" + answer.body)
        handler.send(answer, truncated=fault is not None and fault.kind == "truncated")

    def _api_answer(
        self,
        scope: Scope,
        file_id: str | None,
        query: str,
        handler: Handler,
        fault: ComplianceFault | None,
    ) -> Canned:
        key = bearer(handler.headers.get("Authorization"))
        if key is None:
            return missing_key()
        if key in self.keys_without_permission:
            message = (
                "This API key lacks the Compliance API read permission for this "
                f"{scope[0][:-1]}. Ask OpenAI support to enable compliance read access on it."
            )
            return Canned(403, api_error(message, type="permission_error"))
        if key != self.api_key:
            return invalid_key(key)
        if scope not in self._scopes:
            raise QueryError(Canned(404, api_error(f"No {scope[0][:-1]} {scope[1]!r}.")))
        if file_id is None:
            return self._listing(scope, query)
        log_file = self._index.get(file_id)
        if log_file is None or log_file.scope != scope:
            return Canned(404, api_error(f"No log file {file_id!r}.", type="not_found_error"))
        expired = fault is not None and fault.kind == "expired_url"
        location = self.signed_url(log_file, expired=expired)
        return Canned(307, b"", "text/plain", (("Location", location),))

    def _listing(self, scope: Scope, query: str) -> Canned:
        q = parse_list_query(query, self.rules)
        files, has_more = self._index.page(
            scope, q.event_type, q.after, q.limit, inclusive=self.after_inclusive
        )
        data = []
        for log_file in files:
            size, sha256 = self._bodies.size_and_sha256(log_file, concatenated=self.concatenated)
            item: dict[str, object] = {
                "id": log_file.id,
                "event_type": log_file.event_type,
                "end_time": log_file.end_time,
                "file_name": log_file.file_name,
                "file_size": size,
            }
            if self.include_sha256:
                item["file_sha256"] = sha256
            data.append(item)
        last: str | None = None
        if files:
            last_micros = files[-1].end_micros
            if self.last_end_time_mode == "watermark" and not has_more and self.watermark:
                last_micros = max(last_micros, _micros(self.watermark))
            last = format_time(last_micros)
        elif not self.null_last_end_time_on_empty:
            last = format_time(q.after)
        body = {"data": data, "has_more": has_more, "last_end_time": last}
        return Canned(200, orjson.dumps(body))

    def signed_url(self, log_file: LogFile, *, expired: bool = False) -> str:
        """A URL on the storage port, valid for `url_ttl` seconds (or expired a second ago)."""
        expires = int(self.api_time() + (-1 if expired else self.url_ttl))
        se = datetime.fromtimestamp(expires, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        query = urlencode({"sp": "r", "se": se, "sig": self._sign(log_file.id, se)})
        return f"{self.storage_url}{STORAGE_PATH}{quote(log_file.id)}.jsonl?{query}"

    def _sign(self, file_id: str, se: str) -> str:
        return hmac.new(self._signing_key, f"{file_id}\n{se}".encode(), hashlib.sha256).hexdigest()

    # the storage host

    def _fault_answered(self, handler: Handler, where: str, fault: ComplianceFault | None) -> bool:
        """Play `fault` where it replaces the answer (a reset, a timeout that outlived the
        emulator, a canned error); False when the request goes on (no fault, or one that only
        alters the answer, or a timeout that ended)."""
        if fault is None:
            return False
        self._stats.tally("faults_served", f"{where}:{fault.kind}")
        if fault.kind == "reset":
            handler.hang_up(reset=True)
            return True
        if fault.kind == "timeout" and not handler.hold(fault.delay):
            return True
        if (canned := replacing_answer(fault)) is not None:
            handler.send(canned)
            return True
        return False

    def _serve_storage(self, handler: Handler, path: str, query: str) -> None:
        self._stats.count("storage_requests")
        file_id = path.removeprefix(STORAGE_PATH).removesuffix(".jsonl")
        log_file = self._index.get(file_id) if path.startswith(STORAGE_PATH) else None
        fault = self._faults.next("storage", file_id)
        if self._fault_answered(handler, "storage", fault):
            return
        refusal = self._storage_refusal(handler, log_file, file_id, query)
        if refusal is not None:
            handler.send(refusal)
            return
        assert log_file is not None
        size, _ = self._bodies.size_and_sha256(log_file, concatenated=self.concatenated)
        chunks = self._bodies.chunks(log_file, concatenated=self.concatenated)
        if fault is not None and fault.kind == "checksum":
            chunks = _corrupt_last_byte(chunks)
        truncated = fault is not None and fault.kind == "truncated"
        canned = Canned(200, b"", "application/jsonl")
        handler.stream(
            canned,
            size,
            chunks,
            stop_at=size // 2 if truncated else size,
            completing=lambda: self._stats.served(log_file, size),
        )

    def _storage_refusal(
        self, handler: Handler, log_file: LogFile | None, file_id: str, query: str
    ) -> Canned | None:
        if self.storage_rejects_authorization and handler.headers.get("Authorization"):
            message = "Only one auth mechanism allowed; the signed URL already authorizes this."
            return _storage_error(400, "InvalidArgument", message)
        params = {k: v[-1] for k, v in parse_qs(query).items()}
        se, sig = params.get("se", ""), params.get("sig", "")
        if not hmac.compare_digest(sig, self._sign(file_id, se)):
            message = "Server failed to authenticate the request: signature did not match."
            return _storage_error(403, "AuthenticationFailed", message)
        expires = parse_time(se, naive_is_utc=False) / 1_000_000
        if self.api_time() > expires:
            now = datetime.fromtimestamp(self.api_time(), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
            message = f"Signed expiry time [{se}] must be after the current time [{now}]."
            return _storage_error(403, "AuthenticationFailed", message)
        if log_file is None:
            return _storage_error(404, "BlobNotFound", "The specified blob does not exist.")
        return None

    # control

    def _control(self, method: str, path: str, body: bytes) -> Canned:
        args = orjson.loads(body) if body else None
        if (method, path) == ("POST", "/_emulator/faults"):
            if not isinstance(args, dict):
                raise ValueError("a fault is a JSON object")
            self.inject(ComplianceFault(**args))
        elif (method, path) == ("DELETE", "/_emulator/faults"):
            self.clear_faults()
        elif (method, path) == ("GET", "/_emulator/stats"):
            stats = orjson.dumps(self.stats, option=orjson.OPT_NON_STR_KEYS)
            return Canned(200, stats)
        elif (method, path) == ("POST", "/_emulator/files"):
            if not isinstance(args, dict) or not isinstance(args.get("event_type"), str):
                raise ValueError('expected {"event_type": T, ...add_files arguments}')
            start = args.pop("start", None)
            files = self.add_files(
                **args, start=datetime.fromisoformat(start) if start is not None else None
            )
            return Canned(200, orjson.dumps({"added": [f.id for f in files]}))
        else:
            return Canned(404, api_error(f"Invalid URL ({method} {path})"))
        return Canned(200, b'{"ok":true}')


def _corrupt_last_byte(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The body's final newline becomes a space: same length, same records, another SHA-256."""
    previous: bytes | None = None
    for chunk in chunks:
        if previous is not None:
            yield previous
        previous = chunk
    if previous is not None:
        yield previous[:-1] + b" "
