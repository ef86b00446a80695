"""Poison entries: list entries served byte for byte that a client must quarantine, not deliver.

Each is valid JSON grammar the real API could send (an audited user-controlled string with a
lone surrogate escape, a bad `id`, an `effective_at` past year 9999, nesting 1,000 deep). The
store keys them by a string id and an `effective_at` inside the window they are served in;
the bytes say otherwise. `entries_served` skips them when reading the ground truth.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Literal, get_args

if TYPE_CHECKING:
    from shipper.emulator.server import Emulator

PoisonKind = Literal["surrogate", "bad_id", "year_10000", "deep"]
POISON_KINDS: tuple[PoisonKind, ...] = get_args(PoisonKind)
MARKER_FIELD = "chaos_poison"  # every poison entry carries `"chaos_poison": "<key>"`
_YEAR_10000 = 253_402_300_800  # 10000-01-01T00:00:00Z


def _entry(key: str, when: int, extra: str, *, id_json: str | None = None) -> bytes:
    ident = f'"{key}"' if id_json is None else id_json
    return (
        f'{{"id":{ident},"type":"api_key.created","effective_at":{when},'
        f'"actor":{{"type":"session","session":{{"user":{{"id":"user-poison","email":'
        f'"poison@example.com"}},"ip_address":"203.0.113.9"}}}},'
        f'"api_key.created":{{"id":"key_poison","data":{{"scopes":["api.model.read"]}}}},'
        f'"{MARKER_FIELD}":"{key}"{extra}}}'
    ).encode()


_BUILDERS: dict[str, Callable[[str, int], bytes]] = {
    "surrogate": lambda key, when: _entry(key, when, ',"note":"lone \\ud800 surrogate"'),
    "bad_id": lambda key, when: _entry(key, when, "", id_json="12345"),
    "year_10000": lambda key, when: _entry(key, _YEAR_10000 + when % 86_400, ""),
    "deep": lambda key, when: _entry(key, when, ',"nested":' + "[" * 1000 + "]" * 1000),
}


def poison_entry(kind: PoisonKind, key: str, when: int) -> bytes:
    """The raw bytes of one poison entry of `kind`, marked with `key`."""
    return _BUILDERS[kind](key, when)


def add_poison(emulator: Emulator, kind: PoisonKind, key: str, when: int) -> bytes:
    """Serve a poison entry among the ordinary ones, as if its id were `key` at `when`."""
    blob = poison_entry(kind, key, when)
    emulator._store._insert(tenant=[], org=[(when, key, blob, None)])
    return blob


def entries_served(emulator: Emulator) -> list[bytes]:
    """Every entry's bytes, poison included, ascending by (effective_at, id)."""
    return emulator._store.blobs()
