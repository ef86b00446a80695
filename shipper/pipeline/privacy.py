"""What one sink may see: its event types, and its source objects with named fields dropped or hashed.

A `[[sinks]]` table's `event_types` and `privacy` keys (`SinkSettings`) become a `SinkView`,
which the sink's worker applies to a window's events before the sink gets them. The sink, every
format it renders and its dead-letter file therefore only ever see the edited object: nothing a
renderer or a sink does can reach the original. Events are shared by every sink, so the view
never changes one: an edited event is a new event of the same class with the same id, type,
effective_at and organization. A sink without these keys has no view and pays nothing.

Paths (docs/privacy.md): dot-separated keys into the source object, e.g. `actor.user_email`;
a segment `*` matches every key of an object or every element of a list; `\\.`, `\\*` and `\\\\`
write a literal dot, star or backslash inside a key. A path that does not match (a missing key,
a string where an object was expected) changes nothing.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import orjson
from pydantic import AfterValidator, ConfigDict, Field, SecretStr, model_validator

from shipper.config.secret_ref import SecretFields, SecretRef
from shipper.model.event import AuditEvent, compact_json

# A wildcard segment; every other segment is a key, matched exactly.
ANY = None
Segment = str | None
# Deeper paths are a typo or an attack on the walk's recursion, which is as deep as the path.
MAX_SEGMENTS = 32
# A hash key shorter than this is refused: guessable, and below what log redaction masks.
MIN_HASH_KEY_CHARS = 16
HMAC_PREFIX = "hmac-sha256:"
SHA256_PREFIX = "sha256:"

_ESCAPES = {".": ".", "*": "*", "\\": "\\"}


def parse_path(text: str) -> tuple[Segment, ...]:
    """`text` as segments (`ANY` for `*`); `ValueError` saying what is wrong with it."""
    segments: list[Segment] = []
    current: list[str] = []
    escaped = False  # whether `current` holds an escaped character (then `*` is not ANY)
    chars = iter(text)
    for char in chars:
        if char == "\\":
            nxt = next(chars, "")
            if nxt not in _ESCAPES:
                raise ValueError(f"path {text!r}: a backslash escapes only '.', '*' or '\\'")
            current.append(_ESCAPES[nxt])
            escaped = True
        elif char == ".":
            segments.append(_segment(text, current, escaped))
            current, escaped = [], False
        else:
            current.append(char)
    segments.append(_segment(text, current, escaped))
    if len(segments) > MAX_SEGMENTS:
        raise ValueError(f"path {text!r}: more than {MAX_SEGMENTS} segments")
    return tuple(segments)


def _segment(text: str, chars: list[str], escaped: bool) -> Segment:
    segment = "".join(chars)
    if not segment:
        raise ValueError(f"path {text!r}: empty segment (a path is keys separated by single dots)")
    if escaped:
        return segment
    if segment == "*":
        return ANY
    if "*" in segment:
        raise ValueError(
            f"path {text!r}: '*' matches a whole segment only (write \\* for a literal star)"
        )
    return segment


def _checked(path: str) -> str:
    parse_path(path)
    return path


FieldPath = Annotated[str, AfterValidator(_checked)]


class PrivacySettings(SecretFields):
    """`privacy = { ... }` in a `[[sinks]]` table: fields this sink never receives as they are."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    drop: list[FieldPath] = Field(
        default_factory=list,
        description="Paths into the source object removed before this sink sees the event (docs/privacy.md).",
    )
    hash: list[FieldPath] = Field(
        default_factory=list,
        description='Paths whose values are replaced by a keyed hash, "hmac-sha256:<hex>" ("sha256:<hex>" without hash_key); drop wins over hash.',
    )
    hash_key: SecretRef | None = Field(
        default=None,
        description="Key for HMAC-SHA256 of the hash paths (recommended: plain SHA-256 of an e-mail address can be reversed by guessing).",
    )

    @model_validator(mode="after")
    def _key_has_a_use(self) -> PrivacySettings:
        if self.hash_key is not None and not self.hash:
            raise ValueError("hash_key is set but hash names no path")
        return self


Action = Literal["drop", "hash"]
Rule = tuple[tuple[Segment, ...], Action]


class _Unencodable(Exception):
    """A value to hash, or the edited object, that cannot be encoded (nested too deep)."""


def hasher(key: SecretStr | None) -> Callable[[Any], str]:
    """The hash of a value in its documented string form (docs/privacy.md).

    A string is hashed as its UTF-8 bytes (so `hmac(key, "a@example.com")` computed elsewhere
    joins with it); any other value as its compact JSON with sorted keys.
    """
    secret = key.get_secret_value().encode() if key is not None else None

    def digest(value: Any) -> str:
        if isinstance(value, str):
            data = value.encode("utf-8", "surrogatepass")
        else:
            try:
                data = orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            except (TypeError, ValueError, RecursionError) as exc:
                raise _Unencodable(str(exc)) from None
        if secret is None:
            return SHA256_PREFIX + hashlib.sha256(data).hexdigest()
        return HMAC_PREFIX + hmac.new(secret, data, hashlib.sha256).hexdigest()

    return digest


_DROP: Any = object()  # what `_child` returns for a value that is to be removed


def edit(obj: Any, rules: Sequence[Rule], digest: Callable[[Any], str]) -> Any:
    """`obj` with the rules applied; the same object when nothing matched.

    Containers on a changed path are copied, nothing is changed in place, so `obj` may be
    shared. Recursion is as deep as the longest path, whatever the depth of `obj`.
    """
    if rules and isinstance(obj, dict):
        return _edit_object(obj, rules, digest)
    if rules and isinstance(obj, list):
        return _edit_list(obj, rules, digest)
    return obj  # a scalar where the path goes on: nothing there to match


def _edit_object(
    obj: dict[str, Any], rules: Sequence[Rule], digest: Callable[[Any], str]
) -> dict[str, Any]:
    if any(path[0] is ANY for path, _ in rules):
        keys = list(obj)
    else:  # only the named keys: a wide object costs no more than a narrow one
        keys = [k for k in {path[0] for path, _ in rules} if k in obj]
    changed: dict[str, Any] = {}
    for key in keys:
        child = obj[key]
        new = _child(child, [r for r in rules if r[0][0] is ANY or r[0][0] == key], digest)
        if new is not child:
            changed[key] = new
    if not changed:
        return obj
    return {k: changed.get(k, v) for k, v in obj.items() if changed.get(k) is not _DROP}


def _edit_list(obj: list[Any], rules: Sequence[Rule], digest: Callable[[Any], str]) -> list[Any]:
    wild = [r for r in rules if r[0][0] is ANY]  # a key names no list element
    if not wild:
        return obj
    items = [_child(item, wild, digest) for item in obj]
    if all(new is old for new, old in zip(items, obj, strict=True)):
        return obj
    return [item for item in items if item is not _DROP]


def _child(value: Any, rules: list[Rule], digest: Callable[[Any], str]) -> Any:
    """`value` (matched by the first segment of each of `rules`) after the rest of the rules."""
    ends = {action for path, action in rules if len(path) == 1}
    if "drop" in ends:
        return _DROP
    if "hash" in ends:
        return value if value is None else digest(value)
    return edit(value, [(path[1:], action) for path, action in rules], digest)


@dataclass(frozen=True, slots=True)
class SinkView:
    """What one sink receives of a window: only `event_types` (all when None), edited by `rules`."""

    event_types: frozenset[str] | None
    rules: tuple[Rule, ...]
    digest: Callable[[Any], str]

    def takes(self, event: AuditEvent) -> bool:
        """Whether the sink receives events of `event`'s type."""
        return self.event_types is None or event.type in self.event_types

    def prepare(
        self, events: Sequence[AuditEvent]
    ) -> tuple[list[AuditEvent], list[tuple[AuditEvent, str]]]:
        """The events to send, and those that cannot be sent safely, with why (to dead-letter).

        Events of other types are left out; the caller counts them as settled all the same.
        """
        chosen = events if self.event_types is None else [e for e in events if self.takes(e)]
        if not self.rules:
            return list(chosen), []
        send: list[AuditEvent] = []
        refused: list[tuple[AuditEvent, str]] = []
        for event in chosen:
            try:
                send.append(self.apply(event))
            except _Unencodable as exc:
                # Fail closed: the sink, and its dead-letter file, get the event's identity only.
                stub = type(event)(
                    event.id,
                    event.type,
                    event.effective_at,
                    organization=event.organization,
                    json=compact_json({"id": event.id, "type": event.type}),
                )
                reason = f"privacy rules could not be applied ({exc}); event withheld"
                refused.append((stub, reason))
        return send, refused

    def apply(self, event: AuditEvent) -> AuditEvent:
        """`event` with the rules applied to its source object (itself when nothing matched)."""
        try:
            obj = event.raw
        except (TypeError, ValueError, RecursionError) as exc:
            raise _Unencodable(str(exc)) from None
        edited = edit(obj, self.rules, self.digest)
        if edited is obj:
            return event
        try:
            data = compact_json(edited)
        except (TypeError, ValueError, RecursionError) as exc:
            raise _Unencodable(str(exc)) from None
        # The same class (a ComplianceRecord stays one: renderers choose their mapping by it).
        return type(event)(
            event.id, event.type, event.effective_at, organization=event.organization, json=data
        )


def prepare(
    view: SinkView | None, events: Sequence[AuditEvent]
) -> tuple[Sequence[AuditEvent], list[tuple[AuditEvent, str]]]:
    """`view.prepare(events)`, or all of `events` untouched when the sink has no view.

    Everything that hands events to a sink goes through here: the worker, and the replays of
    dead letters and of quarantined entries (which may predate the sink's rules).
    """
    return (events, []) if view is None else view.prepare(events)


def sink_view(
    event_types: Sequence[str], privacy: PrivacySettings | None, key: SecretStr | None
) -> SinkView | None:
    """The view a sink's settings ask for; None when they ask for none (the sink sees all)."""
    rules: list[Rule] = []
    if privacy is not None:
        rules += [(parse_path(p), "drop") for p in privacy.drop]
        rules += [(parse_path(p), "hash") for p in privacy.hash]
    if not rules and not event_types:
        return None
    types = frozenset(event_types) if event_types else None
    return SinkView(types, tuple(rules), hasher(key))
