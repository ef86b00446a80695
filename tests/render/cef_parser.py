"""A strict CEF:0 parser written from the ArcSight CEF specification, for the tests.

No maintained CEF parser exists on PyPI (`pycef`, last released 2020, neither unescapes values
nor accepts an escaped `\\|` in the header), so this one is independent of the renderer and
rejects what the spec does not allow: unknown escapes, raw CR/LF, fewer than 7 header fields,
a key that is not alphanumeric, a duplicate key, an unescaped `=` inside a value.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_KEY = re.compile(r"[A-Za-z0-9_]+")
_HEADER_ESCAPES = {"\\": "\\", "|": "|"}
_VALUE_ESCAPES = {"\\": "\\", "=": "=", "n": "\n", "r": "\r"}
HEADER_NAMES = (
    "version",
    "vendor",
    "product",
    "device_version",
    "signature_id",
    "name",
    "severity",
)


class CefError(ValueError):
    pass


@dataclass(frozen=True)
class Cef:
    header: dict[str, str]
    extensions: dict[str, str]


def _header(line: str) -> tuple[list[str], int]:
    fields: list[str] = []
    current: list[str] = []
    i = 0
    while len(fields) < 7:
        if i >= len(line):
            raise CefError(f"header has {len(fields)} of 7 fields")
        ch = line[i]
        if ch == "\\":
            nxt = line[i + 1 : i + 2]
            if nxt not in _HEADER_ESCAPES:
                raise CefError(f"bad header escape \\{nxt!r} at {i}")
            current.append(_HEADER_ESCAPES[nxt])
            i += 2
            continue
        if ch == "|":
            fields.append("".join(current))
            current = []
        elif ch in "\r\n" or ord(ch) < 0x20:
            raise CefError(f"control character {ch!r} in header")
        else:
            current.append(ch)
        i += 1
    return fields, i


def _tokens(text: str) -> list[tuple[str, bool]]:
    """(character, escaped) pairs of the extension part."""
    out: list[tuple[str, bool]] = []
    i = 0
    while i < len(text):
        ch = text[i]
        if ch in "\r\n\x00":
            raise CefError(f"raw {ch!r} in extension")
        if ch == "\\":
            nxt = text[i + 1 : i + 2]
            if nxt not in _VALUE_ESCAPES:
                raise CefError(f"bad extension escape \\{nxt!r} at {i}")
            out.append((_VALUE_ESCAPES[nxt], True))
            i += 2
        else:
            out.append((ch, False))
            i += 1
    return out


def _split_key(chars: list[tuple[str, bool]], first: bool) -> tuple[str, str]:
    """Split `<previous value> <key>` at the last unescaped space."""
    spaces = [i for i, (ch, esc) in enumerate(chars) if ch == " " and not esc]
    cut = spaces[-1] if spaces else -1
    if first and cut != -1:
        raise CefError("text before the first extension key")
    if not first and cut == -1:
        raise CefError("unescaped '=' inside a value")
    key_chars = chars[cut + 1 :]
    key = "".join(ch for ch, _ in key_chars)
    if any(esc for _, esc in key_chars) or not _KEY.fullmatch(key):
        raise CefError(f"bad extension key {key!r}")
    return "".join(ch for ch, _ in chars[:cut]) if cut != -1 else "", key


def _extensions(text: str) -> dict[str, str]:
    if not text:
        return {}
    result: dict[str, str] = {}
    key: str | None = None
    pending: list[tuple[str, bool]] = []
    for ch, escaped in _tokens(text):
        if ch == "=" and not escaped:
            value, next_key = _split_key(pending, first=key is None)
            if key is not None:
                result[key] = value
            if next_key in result or next_key == key:
                raise CefError(f"duplicate key {next_key!r}")
            key, pending = next_key, []
        else:
            pending.append((ch, escaped))
    if key is None:
        raise CefError("extension without key=value")
    result[key] = "".join(ch for ch, _ in pending)
    return result


def parse(line: str) -> Cef:
    if not line.startswith("CEF:0|"):
        raise CefError("not a CEF:0 line")
    fields, end = _header(line)
    severity = fields[6]
    if not (severity.isdigit() and 0 <= int(severity) <= 10):
        raise CefError(f"severity {severity!r} is not 0-10")
    if any(not f for f in fields):
        raise CefError("empty header field")
    return Cef(dict(zip(HEADER_NAMES, fields, strict=True)), _extensions(line[end:]))
