"""A small model of how Splunk reads one event, for testing the app in `deploy/splunk/`.

It does what the app relies on, in Splunk's order, and nothing more:

- index time: `TIME_PREFIX` + `TIME_FORMAT` over `MAX_TIMESTAMP_LOOKAHEAD` characters;
- search time: `EXTRACT-` (PCRE on `_raw`), `KV_MODE = json` (nested keys joined by `.`, arrays
  as `name{}`, every value a string: numbers as written, `true`/`false`, and JSON null as the
  string `null`, the pessimistic reading), `FIELDALIAS-`, then `EVAL-` (every calculated field sees
  the fields as they were before any of them: one cannot read another's result), then eventtypes
  (searches of `field=value` terms with `*`, `NOT`, `OR`, parentheses) and their tags.

The eval language is the subset the app uses: `"strings"`, numbers, bare and `'quoted'` field
names, `==`, `!=`, `AND`, `OR`, `NOT`, and the functions in `FUNCTIONS`. Anything else is an
error, so a conf line the model cannot read fails the tests instead of passing unseen.
"""

from __future__ import annotations

import configparser
import datetime as dt
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

Value = str | bool | list[str] | None
Fields = dict[str, list[str]]


def read_conf(path: Path) -> configparser.ConfigParser:
    """A Splunk .conf file: `[stanza]` and `key = value` lines, `#` comments, keys case-kept."""
    parser = configparser.ConfigParser(
        interpolation=None, delimiters=("=",), comment_prefixes=("#",), strict=True
    )
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text())
    return parser


def pcre(pattern: str) -> re.Pattern[str]:
    """Splunk's PCRE named groups and named back-references, in Python's spelling."""
    pattern = re.sub(r"\\k<(\w+)>", r"(?P=\1)", pattern)
    return re.compile(pattern.replace("(?<", "(?P<"))


# --- KV_MODE = json


def _scalar(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return value
    return orjson.dumps(value).decode()


def _walk(value: Any, name: str, out: Fields) -> None:
    if isinstance(value, dict):
        for key, inner in value.items():
            _walk(inner, f"{name}.{key}" if name else str(key), out)
    elif isinstance(value, list):
        for inner in value:
            _walk(inner, f"{name}{{}}", out)
    else:
        out.setdefault(name, []).append(_scalar(value))


def kv_json(raw: str) -> Fields:
    """The fields `KV_MODE = json` extracts from an event's text."""
    out: Fields = {}
    _walk(orjson.loads(raw), "", out)
    return out


# --- eval expressions

_TOKEN = re.compile(
    r"""\s*(?:
      (?P<string>"(?:[^"\\]|\\.)*")
    | (?P<quoted>'[^']*')
    | (?P<number>-?\d+(?:\.\d+)?)
    | (?P<op>==|!=|=|\(|\)|,)
    | (?P<word>[A-Za-z_][A-Za-z0-9_]*)
    )""",
    re.VERBOSE,
)


def _tokens(text: str) -> list[tuple[str, str]]:
    found: list[tuple[str, str]] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _TOKEN.match(text, pos)
        if match is None or match.end() == pos:
            raise ValueError(f"cannot read {text[pos:]!r} in {text!r}")
        kind = match.lastgroup
        assert kind is not None
        found.append((kind, match.group(kind)))
        pos = match.end()
    return found


def _unquote(literal: str) -> str:
    """An eval string literal: `\\"` and `\\\\` are escapes; any other backslash is kept."""
    return re.sub(r'\\(["\\])', r"\1", literal[1:-1])


def _first(value: Value) -> str | None:
    if isinstance(value, list):
        return value[0] if value else None
    if isinstance(value, bool):
        return "true" if value else "false"
    return value


def _truth(value: Value) -> bool:
    """A condition: null (a comparison or match() on a missing field) counts as false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise ValueError(f"not a boolean: {value!r}")
    return value


def _coalesce(*values: Value) -> Value:
    return next((v for v in values if v is not None), None)


def _if(cond: Value, then: Value, other: Value) -> Value:
    return then if _truth(cond) else other


def _case(*args: Value) -> Value:
    if len(args) % 2:
        raise ValueError("case() takes condition/value pairs")
    for cond, value in zip(args[::2], args[1::2], strict=True):
        if _truth(cond):
            return value
    return None


def _match(value: Value, regex: Value) -> Value:
    text, pattern = _first(value), _first(regex)
    if text is None or pattern is None:
        return None
    return pcre(pattern).search(text) is not None


def _replace(value: Value, regex: Value, repl: Value) -> Value:
    text, pattern, new = _first(value), _first(regex), _first(repl)
    if text is None or pattern is None or new is None:
        return None
    return pcre(pattern).sub(new, text)  # `\1` back-references read the same in both


def _lower(value: Value) -> Value:
    text = _first(value)
    return None if text is None else text.lower()


def _upper(value: Value) -> Value:
    text = _first(value)
    return None if text is None else text.upper()


def _mvindex(value: Value, index: Value) -> Value:
    position = _first(index)
    if value is None or position is None:
        return None
    values = value if isinstance(value, list) else [_first(value) or ""]
    at = int(position)
    return values[at] if -len(values) <= at < len(values) else None


FUNCTIONS: dict[str, Callable[..., Value]] = {
    "coalesce": _coalesce,
    "if": _if,
    "case": _case,
    "match": _match,
    "replace": _replace,
    "lower": _lower,
    "upper": _upper,
    "mvindex": _mvindex,
    "isnull": lambda v: v is None,
    "isnotnull": lambda v: v is not None,
    "null": lambda: None,
    "true": lambda: True,
    "false": lambda: False,
}


@dataclass
class Expr:
    """A parsed eval expression: `evaluate(fields)`, and the field names it reads."""

    text: str
    tokens: list[tuple[str, str]] = field(default_factory=list)
    pos: int = 0
    reads: set[str] = field(default_factory=set)

    @classmethod
    def parse(cls, text: str) -> Expr:
        expr = cls(text, _tokens(text))
        expr._parse_or(None)  # a dry run: syntax errors and the names read show up now
        if expr.pos != len(expr.tokens):
            raise ValueError(f"unexpected {expr.tokens[expr.pos][1]!r} in {text!r}")
        return expr

    def evaluate(self, fields: Fields) -> Value:
        self.pos = 0
        return self._parse_or(fields)

    # A recursive-descent evaluator; with `fields` None it only parses (and records names).
    def _peek(self) -> tuple[str, str] | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _take(self, want: str | None = None) -> tuple[str, str]:
        token = self._peek()
        if token is None or (want is not None and token[1] != want):
            raise ValueError(f"expected {want or 'more'} in {self.text!r}")
        self.pos += 1
        return token

    def _is_word(self, word: str) -> bool:
        token = self._peek()
        return token is not None and token[0] == "word" and token[1] == word

    def _parse_or(self, fields: Fields | None) -> Value:
        left = self._parse_and(fields)
        while self._is_word("OR"):
            self._take()
            right = self._parse_and(fields)
            left = None if fields is None else _truth(left) or _truth(right)
        return left

    def _parse_and(self, fields: Fields | None) -> Value:
        left = self._parse_not(fields)
        while self._is_word("AND"):
            self._take()
            right = self._parse_not(fields)
            left = None if fields is None else _truth(left) and _truth(right)
        return left

    def _parse_not(self, fields: Fields | None) -> Value:
        if self._is_word("NOT"):
            self._take()
            inner = self._parse_not(fields)
            return None if fields is None else not _truth(inner)
        return self._parse_compare(fields)

    def _parse_compare(self, fields: Fields | None) -> Value:
        left = self._parse_primary(fields)
        token = self._peek()
        if token is not None and token[0] == "op" and token[1] in ("==", "=", "!="):
            self._take()
            right = self._parse_primary(fields)
            if fields is None:
                return None
            if left is None or right is None:
                return False
            equal = _first(left) == _first(right)
            return equal if token[1] != "!=" else not equal
        return left

    def _parse_primary(self, fields: Fields | None) -> Value:
        kind, text = self._take()
        if kind == "op" and text == "(":
            value = self._parse_or(fields)
            self._take(")")
            return value
        if kind == "string":
            return _unquote(text)
        if kind == "number":
            return text
        if kind == "word" and self._peek() == ("op", "("):
            return self._call(text, fields)
        if kind in ("word", "quoted"):
            name = text.strip("'")
            self.reads.add(name)
            if fields is None:
                return None
            values = fields.get(name)
            if not values:
                return None
            return values[0] if len(values) == 1 else list(values)
        raise ValueError(f"unexpected {text!r} in {self.text!r}")

    def _call(self, name: str, fields: Fields | None) -> Value:
        if name not in FUNCTIONS:
            raise ValueError(f"{name}() is not in the model's eval subset: {self.text!r}")
        self._take("(")
        args: list[Value] = []
        if self._peek() != ("op", ")"):
            args.append(self._parse_or(fields))
            while self._peek() == ("op", ","):
                self._take()
                args.append(self._parse_or(fields))
        self._take(")")
        return None if fields is None else FUNCTIONS[name](*args)


# --- a props.conf stanza applied to one event


@dataclass(frozen=True)
class Stanza:
    """The search-time and timestamp settings of one props.conf stanza."""

    name: str
    settings: dict[str, str]

    @property
    def extracts(self) -> dict[str, re.Pattern[str]]:
        return {k: pcre(v) for k, v in self.settings.items() if k.startswith("EXTRACT-")}

    @property
    def aliases(self) -> list[tuple[str, str]]:
        pairs: list[tuple[str, str]] = []
        for key, value in self.settings.items():
            if key.startswith("FIELDALIAS-"):
                words = value.split()
                pairs += [(words[i], words[i + 2]) for i in range(0, len(words), 3)]
                assert all(words[i + 1] == "AS" for i in range(0, len(words), 3)), value
        return pairs

    @property
    def evals(self) -> dict[str, Expr]:
        return {
            k.removeprefix("EVAL-"): Expr.parse(v)
            for k, v in self.settings.items()
            if k.startswith("EVAL-")
        }

    def reads(self) -> set[str]:
        """Every field name an alias or a calculated field reads."""
        names = {source for source, _ in self.aliases}
        for expr in self.evals.values():
            names |= expr.reads
        return names

    def search_time(self, raw: str, given: Fields) -> Fields:
        """The fields of an event with this `_raw` and these default and indexed fields."""
        fields: Fields = {k: list(v) for k, v in given.items()}
        for pattern in self.extracts.values():
            match = pattern.search(raw)
            if match:
                for key, value in match.groupdict().items():
                    if value is not None:
                        fields[key] = [value]
        if self.settings.get("KV_MODE") == "json":
            for key, values in kv_json(raw).items():
                fields.setdefault(key, []).extend(values)
        for source, target in self.aliases:
            if source in fields:
                fields[target] = list(fields[source])
        before = {k: list(v) for k, v in fields.items()}
        for name, expr in self.evals.items():
            value = expr.evaluate(before)
            if value is None:
                fields.pop(name, None)
            elif isinstance(value, list):
                fields[name] = value
            else:
                fields[name] = [_first(value) or ""]
        return fields

    def event_time(self, raw: str) -> dt.datetime | None:
        """`_time` as the index-time timestamp settings read it from `_raw`."""
        prefix = pcre(self.settings["TIME_PREFIX"]).search(raw)
        if prefix is None:
            return None
        lookahead = int(self.settings["MAX_TIMESTAMP_LOOKAHEAD"])
        text = raw[prefix.end() : prefix.end() + lookahead]
        try:
            moment = dt.datetime.strptime(text, self.settings["TIME_FORMAT"])
        except ValueError:
            return None
        assert self.settings["TZ"] == "UTC"
        return moment.replace(tzinfo=dt.UTC)


def stanzas(props: configparser.ConfigParser) -> Iterator[Stanza]:
    for name in props.sections():
        yield Stanza(name, dict(props[name]))


# --- eventtype searches


_SEARCH_TOKEN = re.compile(r'\s*(\(|\)|"(?:[^"\\]|\\.)*"|[^\s()=!"]+|!=|=)')


def _search_tokens(text: str) -> list[str]:
    tokens: list[str] = []
    pos = 0
    text = text.strip()
    while pos < len(text):
        match = _SEARCH_TOKEN.match(text, pos)
        if match is None:
            raise ValueError(f"cannot read {text[pos:]!r} in {text!r}")
        tokens.append(match.group(1))
        pos = match.end()
    return tokens


def _wildcard(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "^" + ".*".join(re.escape(part) for part in pattern.split("*")) + "$", re.IGNORECASE
    )


@dataclass
class Search:
    """An eventtype's search: implicit AND, `OR`, `NOT`, parentheses, `field=value` terms."""

    text: str
    tokens: list[str] = field(default_factory=list)
    pos: int = 0

    @classmethod
    def parse(cls, text: str) -> Search:
        search = cls(text, _search_tokens(text))
        search.matches({})  # a dry run: the whole search must be readable
        return search

    def matches(self, fields: Fields) -> bool:
        self.pos = 0
        result = self._or(fields)
        if self.pos != len(self.tokens):
            raise ValueError(f"unexpected {self.tokens[self.pos]!r} in {self.text!r}")
        return result

    def fields(self) -> set[str]:
        """The field names the search's terms test."""
        return {self.tokens[i - 1] for i, t in enumerate(self.tokens) if t in ("=", "!=")}

    def _peek(self) -> str | None:
        return self.tokens[self.pos] if self.pos < len(self.tokens) else None

    def _or(self, fields: Fields) -> bool:
        result = self._and(fields)
        while self._peek() == "OR":
            self.pos += 1
            result = self._and(fields) or result
        return result

    def _and(self, fields: Fields) -> bool:
        result = self._unary(fields)
        while self._peek() not in (None, ")", "OR"):
            if self._peek() == "AND":
                self.pos += 1
            result = self._unary(fields) and result
        return result

    def _unary(self, fields: Fields) -> bool:
        token = self._peek()
        if token == "NOT":
            self.pos += 1
            return not self._unary(fields)
        if token == "(":
            self.pos += 1
            result = self._or(fields)
            if self._peek() != ")":
                raise ValueError(f"unbalanced parentheses in {self.text!r}")
            self.pos += 1
            return result
        if self.pos + 3 > len(self.tokens):
            raise ValueError(f"a term is cut short in {self.text!r}")
        name, op, value = self.tokens[self.pos : self.pos + 3]
        if op not in ("=", "!="):
            raise ValueError(f"only field=value terms are modelled: {self.text!r}")
        self.pos += 3
        wanted = _wildcard(value[1:-1] if value.startswith('"') else value)
        found = any(wanted.match(v) for v in fields.get(name, []))
        return found if op == "=" else (name in fields and not found)


def tags_of(
    fields: Fields, eventtypes: configparser.ConfigParser, tags: configparser.ConfigParser
) -> dict[str, set[str]]:
    """The eventtypes an event matches, each with its enabled tags."""
    found: dict[str, set[str]] = {}
    for name in eventtypes.sections():
        if Search.parse(eventtypes[name]["search"]).matches(fields):
            section = f"eventtype={name}"
            enabled = tags[section] if tags.has_section(section) else {}
            found[name] = {k for k, v in enabled.items() if v == "enabled"}
    return found
