"""The fault model: what can go wrong on a list request, when it fires, and what the client sees.

Faults model the path in front of the API (proxies, rate limiter, flaky network) as well as the
API's own refusals. A `FaultSchedule` hands out at most one fault per list request, in the order
the faults were injected; `canned_response` renders the faults that replace the answer outright.
The others (`timeout`, `truncated`, `concatenated`, `reset`) change how the real answer is sent,
which is the server's job.
"""

from __future__ import annotations

import random
import threading
from collections.abc import Callable
from dataclasses import dataclass, fields, replace
from typing import Any, Literal, get_args

import orjson

FaultKind = Literal[
    "429", "500", "502", "503", "504", "408", "409", "timeout", "truncated", "concatenated",
    "html200", "reset", "401", "403", "400",
]  # fmt: skip
FAULT_KINDS: frozenset[str] = frozenset(get_args(FaultKind))
# These alter how the real answer is delivered instead of replacing it.
DELIVERY_FAULTS: frozenset[str] = frozenset({"timeout", "truncated", "concatenated", "reset"})


@dataclass(frozen=True)
class Fault:
    """One fault: fires on the next `count` list requests, or on each with `probability`."""

    kind: FaultKind
    count: int = 1
    probability: float = 0.0
    retry_after: str | None = None
    delay: float = 0.0

    def __post_init__(self) -> None:
        if self.kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {self.kind!r}; one of {sorted(FAULT_KINDS)}")
        if self.count < 1 or not 0.0 <= self.probability <= 1.0 or self.delay < 0:
            raise ValueError("need count >= 1, 0 <= probability <= 1 and delay >= 0")
        if self.retry_after is not None and any(c in self.retry_after for c in "\r\n"):
            raise ValueError("retry_after must be a single header line")

    @classmethod
    def from_json(cls, obj: object) -> Fault:
        """Build from a decoded JSON object, rejecting unknown keys and wrong types."""
        if not isinstance(obj, dict) or not isinstance(obj.get("kind"), str):
            raise ValueError('a fault is a JSON object with a string "kind"')
        known = {f.name for f in fields(cls)}
        if unknown := set(obj) - known:
            raise ValueError(f"unknown fault fields: {sorted(unknown)}")
        args: dict[str, Any] = dict(obj)
        _check_type(args, "count", int)
        _check_type(args, "probability", (int, float))
        _check_type(args, "delay", (int, float))
        if args.get("retry_after") is not None:
            _check_type(args, "retry_after", str)
        return cls(**args)


def _check_type(args: dict[str, Any], name: str, kind: type | tuple[type, ...]) -> None:
    value = args.get(name)
    if name in args and (isinstance(value, bool) or not isinstance(value, kind)):
        raise ValueError(f"fault field {name!r} has the wrong type: {value!r}")


@dataclass
class _Armed:
    fault: Fault
    remaining: int


class FaultSchedule:
    """Thread-safe list of active faults; `next()` picks the one for a list request, if any."""

    def __init__(self, seed: int = 0) -> None:
        self._lock = threading.Lock()
        self._rng = random.Random(seed)  # noqa: S311 -- reproducible fault timing, not secrets
        self._active: list[_Armed] = []  # in injection order

    def add(self, fault: Fault) -> None:
        with self._lock:
            self._active.append(_Armed(fault, fault.count))

    def clear(self) -> None:
        with self._lock:
            self._active.clear()

    def next(self) -> Fault | None:
        """The first active fault that fires for this request; counted ones always fire."""
        with self._lock:
            for armed in self._active:
                if armed.fault.probability > 0:
                    if self._rng.random() < armed.fault.probability:
                        return armed.fault
                    continue
                armed.remaining -= 1
                if armed.remaining == 0:
                    self._active.remove(armed)
                return armed.fault
        return None


@dataclass(frozen=True)
class Canned:
    """A complete response that replaces the API's answer."""

    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = ()


def api_error(message: str, *, type: str = "invalid_request_error", param: str | None = None,
              code: str | None = None) -> bytes:  # fmt: skip
    """The OpenAI error envelope (`ErrorResponse` in the spec)."""
    return orjson.dumps({"error": {"message": message, "type": type, "param": param, "code": code}})


def mask_key(key: str) -> str:
    """Mask a presented key as the API does: first 5 and last 4 characters only."""
    if len(key) < 16:  # too short to reveal 9 characters and still hide most of it
        return "*" * len(key)
    return f"{key[:5]}{'*' * (len(key) - 9)}{key[-4:]}"


def invalid_key(presented: str) -> Canned:
    message = (
        f"Incorrect API key provided: {mask_key(presented)}. You can find your API key at "
        "https://platform.openai.com/account/api-keys."
    )
    return Canned(401, api_error(message, code="invalid_api_key"))


def missing_key() -> Canned:
    message = (
        "You didn't provide an API key. You need to provide your API key in an Authorization "
        "header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY), or as the password "
        "field (with blank username) if you're accessing the API from your browser and are "
        "prompted for a username and password. You can obtain an API key from "
        "https://platform.openai.com/account/api-keys."
    )
    return Canned(401, api_error(message))


def missing_scope() -> Canned:
    message = (
        "You have insufficient permissions for this operation. Missing scopes: "
        "api.audit_logs.read. Check that you have the correct role in your organization "
        "(Owner), and if you're using a restricted API key, that it has the necessary scopes."
    )
    return Canned(403, api_error(message))


def logging_disabled() -> Canned:
    message = (
        "Audit logging is not enabled for this organization. An organization owner can enable "
        "it in the Organization Settings (https://platform.openai.com/settings/organization/general)."
    )
    return Canned(403, api_error(message))


def bad_request(message: str, param: str | None = None, code: str | None = None) -> Canned:
    return Canned(400, api_error(message, param=param, code=code))


def tenant_only_refused() -> Canned:
    """An organization (or API version) without tenant-scoped listing."""
    message = "The 'tenant_only' parameter is not supported for this organization."
    return bad_request(message, "tenant_only", "unsupported_parameter")


def _proxy_page(status: int, title: str) -> Canned:
    """An error page as a proxy or load balancer in front of the API would send it."""
    page = (
        f"<html>\r\n<head><title>{status} {title}</title></head>\r\n<body>\r\n"
        f"<center><h1>{status} {title}</h1></center>\r\n<hr><center>cloudflare</center>\r\n"
        "</body>\r\n</html>\r\n"
    )
    return Canned(status, page.encode(), "text/html")


_LOGIN_PAGE = (
    b"<!DOCTYPE html><html><head><title>Sign in</title></head><body>"
    b"<form action='/login'><input name='user'></form></body></html>"
)
_RATE_LIMITED = "Rate limit reached for requests. Please try again later."
_CONFLICT = "The request conflicted with another request in progress. Please retry."

# Faults that replace the answer, by kind; each gets the key the request presented.
_CANNED: dict[str, Callable[[str], Canned]] = {
    "429": lambda _: Canned(
        429, api_error(_RATE_LIMITED, type="requests", code="rate_limit_exceeded")
    ),
    "500": lambda _: _proxy_page(500, "Internal Server Error"),
    "502": lambda _: _proxy_page(502, "Bad Gateway"),
    "503": lambda _: _proxy_page(503, "Service Temporarily Unavailable"),
    "504": lambda _: _proxy_page(504, "Gateway Time-out"),
    "408": lambda _: _proxy_page(408, "Request Time-out"),
    "409": lambda _: Canned(409, api_error(_CONFLICT, code="conflict")),
    "html200": lambda _: Canned(200, _LOGIN_PAGE, "text/html; charset=utf-8"),
    "401": invalid_key,
    "403": lambda _: missing_scope(),
    "400": lambda _: bad_request("Invalid request (injected fault)."),
}


def canned_response(fault: Fault, presented_key: str) -> Canned:
    """The response for a fault that replaces the answer (any kind not in DELIVERY_FAULTS)."""
    canned = _CANNED[fault.kind](presented_key)
    if fault.retry_after is not None and fault.kind in ("429", "503"):
        return replace(canned, headers=(("Retry-After", fault.retry_after),))
    return canned
