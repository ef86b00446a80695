"""Log files: what a file is, its body served as a stream, and the listing's page of files.

A `LogFile` holds only the recipe of its records (seed, time, size of each), never their bytes:
a body of tens of megabytes is generated record by record each time it is served. Its length and
SHA-256 are computed by one such pass the first time a listing needs them, then kept.
"""

from __future__ import annotations

import bisect
import hashlib
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime

import orjson

from shipper.emulator.compliance.records import Record, User, format_time, generate_record

Scope = tuple[str, str]  # ("workspaces", "<uuid>") or ("organizations", "org-...")
_CHUNK = 64 * 1024  # bytes gathered before each write of a streamed body


@dataclass(frozen=True)
class RecordSpec:
    """Everything needed to regenerate one record byte for byte."""

    seed: int
    micros: int
    size: int = 0


@dataclass(frozen=True)
class LogFile:
    """One immutable JSONL file of `event_type` records under `scope`."""

    id: str
    event_type: str
    scope: Scope
    end_micros: int
    records: tuple[RecordSpec, ...]

    @property
    def end_time(self) -> str:
        return format_time(self.end_micros)

    @property
    def file_name(self) -> str:
        # Python's isoformat (as the peers' samples show): `.000000` dropped, `+00:00` kept.
        when = datetime.fromtimestamp(self.end_micros // 1_000_000, UTC)
        return f"{self.event_type}_{when.replace(microsecond=self.end_micros % 1_000_000).isoformat()}.jsonl"


def new_file_id() -> str:
    return f"eclf_{secrets.token_hex(16)}"


class Bodies:
    """Turns files into bytes; `concatenated` glues the objects with no newline between them."""

    def __init__(self, users: tuple[User, ...]) -> None:
        self.users = users
        self._lock = threading.Lock()
        self._digests: dict[tuple[str, bool], tuple[int, str]] = {}

    def records(self, log_file: LogFile) -> Iterator[Record]:
        for spec in log_file.records:
            yield generate_record(
                log_file.event_type,
                scope_id=log_file.scope[1],
                seed=spec.seed,
                micros=spec.micros,
                users=self.users,
                size=spec.size,
            )

    def chunks(self, log_file: LogFile, *, concatenated: bool) -> Iterator[bytes]:
        """The body in chunks of about 64 KiB; it always ends with one newline."""
        separator = b"" if concatenated else b"\n"
        pending: list[bytes] = []
        held = 0
        for n, record in enumerate(self.records(log_file)):
            blob = (separator if n else b"") + orjson.dumps(record)
            pending.append(blob)
            held += len(blob)
            if held >= _CHUNK:
                yield b"".join(pending)
                pending, held = [], 0
        pending.append(b"\n")
        yield b"".join(pending)

    def size_and_sha256(self, log_file: LogFile, *, concatenated: bool) -> tuple[int, str]:
        key = (log_file.id, concatenated)
        with self._lock:
            known = self._digests.get(key)
        if known is not None:
            return known
        digest, size = hashlib.sha256(), 0
        for chunk in self.chunks(log_file, concatenated=concatenated):
            digest.update(chunk)
            size += len(chunk)
        result = (size, digest.hexdigest())
        with self._lock:
            self._digests[key] = result
        return result


class FileIndex:
    """Files per (scope, event type), sorted by `(end_micros, id)`: the listing's order."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._sorted: dict[tuple[Scope, str], list[tuple[int, str]]] = {}
        self._by_id: dict[str, LogFile] = {}

    def add(self, log_file: LogFile) -> None:
        with self._lock:
            keys = self._sorted.setdefault((log_file.scope, log_file.event_type), [])
            bisect.insort(keys, (log_file.end_micros, log_file.id))
            self._by_id[log_file.id] = log_file

    def get(self, file_id: str) -> LogFile | None:
        with self._lock:
            return self._by_id.get(file_id)

    def all(self, event_type: str | None = None) -> list[LogFile]:
        with self._lock:
            files = [f for f in self._by_id.values() if event_type in (None, f.event_type)]
        return sorted(files, key=lambda f: (f.end_micros, f.id))

    def latest(self, scope: Scope, event_type: str) -> LogFile | None:
        with self._lock:
            keys = self._sorted.get((scope, event_type))
            return self._by_id[keys[-1][1]] if keys else None

    def page(
        self, scope: Scope, event_type: str, after: int, limit: int, *, inclusive: bool
    ) -> tuple[list[LogFile], bool]:
        """Up to `limit` files with `end_time >= after` (or `>`), oldest first; and has_more."""
        with self._lock:
            keys = self._sorted.get((scope, event_type), [])
            start = bisect.bisect_left(keys, (after, "") if inclusive else (after + 1, ""))
            chosen = keys[start : start + limit]
            return [self._by_id[file_id] for _, file_id in chosen], start + limit < len(keys)
