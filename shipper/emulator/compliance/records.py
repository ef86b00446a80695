"""Realistic compliance-log records, generated from the peers' samples shipped beside this module.

A record is a pure function of `(event_type, scope id, seed, timestamp, size)`: the same arguments
give the same bytes, so a file body can be regenerated record by record whenever it is served
(never held whole in memory) and a duplicate in another file is the same call again.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache
from importlib import resources
from typing import Any

import orjson

Record = dict[str, Any]

# Every wire `event_type` a peer has shown (EVENT-TYPES.md §1), with the scope it is served under.
WORKSPACE_EVENT_TYPES: tuple[str, ...] = (
    "AUDIT_LOG",
    "AUTH_LOG",
    "APP_LOG",
    "APP_AUTH_LOG",
    "CODEX_LOG",
    "CODEX_SECURITY_LOG",
    "CONVERSATION_MESSAGE",
    "CUSTOM_AGENTS_LOG",
    "CHATGPT_PLUGIN_SPREADSHEET",
)
ORGANIZATION_EVENT_TYPES: tuple[str, ...] = ("COSTS",)
EVENT_TYPES: tuple[str, ...] = WORKSPACE_EVENT_TYPES + ORGANIZATION_EVENT_TYPES

# The ids the samples were written with; each generated record swaps in its own.
_SAMPLE_SCOPE_IDS = ("3f2b8c1d-7a4e-4c55-9e21-6d0b5a9c4e10", "org-Xq7Lm2Pz9Rt4Vb6Nc8Kd1Wf3")
_UUID = re.compile(rb"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_BASE62 = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_NAMES = ("alex", "bo", "chen", "dana", "eli", "fatima", "goran", "hana", "ivan", "jo", "kim",
          "lena", "mo", "noor", "omar", "priya", "quinn", "rosa", "sam", "tariq", "uma", "vic")  # fmt: skip
_FILLER = "The quick brown fox jumps over the lazy dog while the logs keep growing. "


@dataclass(frozen=True)
class User:
    user_id: str
    email: str


@cache
def templates(event_type: str) -> tuple[bytes, ...]:
    """The sample records of one type, as JSON bytes (keys starting with `_` are notes, dropped)."""
    text = resources.files(__package__).joinpath("samples", f"{event_type}.jsonl").read_text()
    out = []
    for line in text.splitlines():
        if line.strip():
            record = {k: v for k, v in orjson.loads(line).items() if not k.startswith("_")}
            out.append(orjson.dumps(record))
    return tuple(out)


def user_pool(seed: int, size: int = 40) -> tuple[User, ...]:
    """`size` distinct users with `user-` ids and example.com addresses."""
    rng = random.Random(seed)  # noqa: S311 -- test data, not secrets
    users = []
    for n in range(size):
        user_id = "user-" + "".join(rng.choice(_BASE62) for _ in range(24))
        users.append(User(user_id, f"{_NAMES[n % len(_NAMES)]}.{n}@example.com"))
    return tuple(users)


def format_time(micros: int) -> str:
    """`2026-07-20T08:03:47.000000Z`: the listing's `end_time` form (microseconds, `Z`)."""
    when = datetime.fromtimestamp(micros // 1_000_000, UTC).replace(microsecond=micros % 1_000_000)
    return when.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def generate_record(
    event_type: str,
    *,
    scope_id: str,
    seed: int,
    micros: int,
    users: tuple[User, ...],
    size: int = 0,
) -> Record:
    """One record of `event_type`: a sample with fresh ids, the given time, one of `users` as
    its actor, and its longest text stretched so the JSON is about `size` bytes (0: as is)."""
    rng = random.Random(seed)  # noqa: S311 -- test data, not secrets
    blob = rng.choice(templates(event_type))
    for sample_id in _SAMPLE_SCOPE_IDS:
        blob = blob.replace(sample_id.encode(), scope_id.encode())
    record: Record = orjson.loads(_fresh_uuids(blob, rng, keep=scope_id.encode()))
    record["event_id"] = _uuid(rng)
    record["timestamp"] = format_time(micros)
    user = rng.choice(users)
    _become(record, user)
    if event_type == "COSTS":
        _costs_hour(record, micros, user)
    if size > 0:
        _stretch(record, size, rng)
    return record


def _uuid(rng: random.Random) -> str:
    hex32 = f"{rng.getrandbits(128):032x}"
    return f"{hex32[:8]}-{hex32[8:12]}-4{hex32[13:16]}-a{hex32[17:20]}-{hex32[20:]}"


def _fresh_uuids(blob: bytes, rng: random.Random, *, keep: bytes) -> bytes:
    """Every UUID but the scope's replaced, the same one consistently within the record."""
    fresh: dict[bytes, bytes] = {keep: keep}

    def swap(match: re.Match[bytes]) -> bytes:
        old = match.group(0)
        if old not in fresh:
            fresh[old] = _uuid(rng).encode()
        return fresh[old]

    return _UUID.sub(swap, blob)


def _become(record: Record, user: User) -> None:
    """Make `user` the acting account user, wherever the sample named its own actor."""
    actor = record.get("actor")
    if not isinstance(actor, dict):
        return
    for holder in (actor, actor.get("agent_runtime", {}).get("delegator")):
        if isinstance(holder, dict) and "user_id" in holder:
            holder["user_id"] = user.user_id
            if "user_email" in holder:
                holder["user_email"] = user.email


def _costs_hour(record: Record, micros: int, user: User) -> None:
    """COSTS aggregates are hourly per user: the payload's day, hour and identity follow."""
    payload = record.get("payload")
    if not isinstance(payload, dict):
        return
    when = datetime.fromtimestamp(micros // 1_000_000, UTC)
    payload["day"], payload["hour"] = when.strftime("%Y-%m-%d"), when.hour
    identity = payload.get("identity")
    if isinstance(identity, dict):
        identity["user_id"], identity["email"] = user.user_id, user.email


def _stretch(record: Record, size: int, rng: random.Random) -> None:
    """Lengthen the record's longest string (a message, a tool output...) to reach `size`."""
    missing = size - len(orjson.dumps(record))
    path = _longest_string(record)
    if missing <= 0 or path is None:
        return
    holder, key = path
    start = rng.randrange(len(_FILLER))
    repeated = (_FILLER * (missing // len(_FILLER) + 2))[start : start + missing]
    holder[key] = holder[key] + repeated


def _longest_string(node: Any) -> tuple[Any, Any] | None:
    best: tuple[Any, Any] | None = None
    best_len = -1
    stack = [node]
    while stack:
        current = stack.pop()
        items = current.items() if isinstance(current, dict) else enumerate(current)
        for key, value in items:
            if isinstance(value, str) and len(value) > best_len and key not in _IDENTITY_KEYS:
                best, best_len = (current, key), len(value)
            elif isinstance(value, dict | list):
                stack.append(value)
    return best


# Strings that identify something: never stretched.
_IDENTITY_KEYS = frozenset({"event_id", "type", "timestamp", "id", "user_id", "user_email"})
