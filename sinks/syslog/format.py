"""Syslog messages without I/O: RFC 5424 and RFC 3164 headers, structured data and framing.

Nothing an event contains can forge a second message or corrupt a header:

- header fields (HOSTNAME, APP-NAME, PROCID, MSGID, the RFC 3164 TAG) are reduced to printable
  US-ASCII without spaces and cut to their RFC lengths (MSGID: 32 characters, so a long event
  type is truncated there; the full type is in the structured data and in the body);
- structured-data PARAM-VALUEs escape `"`, `\\` and `]` (RFC 5424 section 6.3.3), and control
  characters become the text `\\uXXXX`; structured data is an index for the receiver, the body
  is the authoritative copy of the event;
- octet-counted frames (RFC 6587 / RFC 5425) carry any bytes; LF-terminated frames and UDP
  datagrams have their control characters (except TAB) written as `\\n`, `\\r` or `\\xNN`, so a
  line break inside a body cannot end the frame. JSON bodies never contain raw control
  characters, so for them the escaping changes nothing.
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from dataclasses import dataclass
from typing import Literal

from shipper.sink_api import AuditEvent, occurred_ms, outcome_of, rfc3339_ms

HeaderStyle = Literal["rfc5424", "rfc3164"]
Framing = Literal["octet-counting", "lf"]

BOM = b"\xef\xbb\xbf"
NILVALUE = "-"
DEFAULT_SD_ID = "openai@32473"  # 32473: the private enterprise number reserved for documentation

FACILITIES: dict[str, int] = {
    "kern": 0, "user": 1, "mail": 2, "daemon": 3, "auth": 4, "syslog": 5, "lpr": 6, "news": 7,
    "uucp": 8, "cron": 9, "authpriv": 10, "ftp": 11, "ntp": 12, "security": 13, "audit": 13,
    "console": 14, "clock": 15,
    **{f"local{n}": 16 + n for n in range(8)},
}  # fmt: skip
SEVERITY_WARNING = 4
SEVERITY_NOTICE = 5

# RFC 5424 section 6: field lengths.
MAX_HOSTNAME = 255
MAX_APP_NAME = 48
MAX_PROCID = 128
MAX_MSGID = 32
MAX_TAG = 32  # RFC 3164 section 4.1.3

_NOT_HEADER_CHAR = re.compile(r"[^!-~]")
_NOT_TAG_CHAR = re.compile(r"[^A-Za-z0-9_.-]")
_SD_SPECIAL = re.compile(r'["\\\]]')
_SD_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_SD_ANY = re.compile(r'["\\\]\x00-\x1f\x7f-\x9f\ud800-\udfff]')
_BREAKING_BYTES = re.compile(rb"[\x00-\x08\x0a-\x1f\x7f]")
_BYTE_ESCAPES = {b"\n": b"\\n", b"\r": b"\\r"}
_EPOCH = dt.date(1970, 1, 1)
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def facility_number(value: str | int) -> int:
    """A facility name (`local0`, `authpriv`, ...) or number 0..23 as its number."""
    if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 23:
        return value
    if isinstance(value, str) and value.strip().lower() in FACILITIES:
        return FACILITIES[value.strip().lower()]
    if isinstance(value, str) and value.strip().isdigit():
        return facility_number(int(value))
    names = ", ".join(FACILITIES)
    raise ValueError(f"facility {value!r} is not a number 0..23 or one of: {names}")


def pri_of(facility: int, event_type: str) -> int:
    """PRI: the facility, and the severity of the type (failures, `*.failed` types, are
    warnings; everything else is a notice)."""
    severity = SEVERITY_WARNING if outcome_of(event_type) == "failure" else SEVERITY_NOTICE
    return facility * 8 + severity


@functools.lru_cache(maxsize=512)  # MSGID is the event type: a few hundred values, every event
def header_field(value: str, max_length: int) -> str:
    """Printable US-ASCII without spaces (others become `_`), cut to `max_length`; `-` if empty."""
    return _NOT_HEADER_CHAR.sub("_", value)[:max_length] or NILVALUE


@functools.lru_cache(maxsize=64)  # the sink's app name: one value, every message
def tag_field(value: str) -> str:
    """An RFC 3164 TAG: letters, digits, `_`, `.` and `-`, at most 32 characters."""
    return _NOT_TAG_CHAR.sub("_", value)[:MAX_TAG] or "shipper"


def sd_param_value(value: str) -> str:
    """A PARAM-VALUE: `"`, `\\` and `]` escaped, control characters written as `\\uXXXX`."""
    if not _SD_ANY.search(value):  # ids and types: nothing to escape, skip both substitutions
        return value
    safe = _SD_UNSAFE.sub(lambda m: f"\\u{ord(m.group()):04x}", value)
    return _SD_SPECIAL.sub(lambda m: "\\" + m.group(), safe)


def structured_data(sd_id: str, params: dict[str, str | None]) -> str:
    """One SD-ELEMENT; parameters whose value is None are left out."""
    pairs = "".join(f' {k}="{sd_param_value(v)}"' for k, v in params.items() if v is not None)
    return f"[{sd_id}{pairs}]"


@functools.lru_cache(maxsize=1024)  # types x organizations: a few hundred, every event
def _parts_fixed_by_type(
    facility: int, sd_id: str, event_type: str, organization: str | None
) -> tuple[int, str, str]:
    """What of an RFC 5424 header the event's type and organization fix: PRI, MSGID, and the
    structured data after its first parameter (the event id, which differs every time)."""
    pri = pri_of(facility, event_type)
    element = structured_data(sd_id, {"type": event_type, "org": organization})
    return pri, header_field(event_type, MAX_MSGID), element[len(sd_id) + 1 :]


def rfc3164_timestamp(seconds: int) -> str:
    """`Mmm dd hh:mm:ss` in UTC (RFC 3164 has no year and no zone).

    Written for every message: the date is looked up per day and the time of day is plain
    arithmetic, as `shipper.model.event.rfc3339` does.
    """
    day, rest = divmod(int(seconds), 86_400)
    return f"{_rfc3164_date(day)} {rest // 3600:02d}:{rest // 60 % 60:02d}:{rest % 60:02d}"


@functools.lru_cache(maxsize=1024)
def _rfc3164_date(day: int) -> str:
    when = _EPOCH + dt.timedelta(days=day)
    return f"{_MONTHS[when.month - 1]} {when.day:2d}"


@dataclass(frozen=True, slots=True)
class Header:
    """What stays the same for every message of one sink; fields are sanitised on creation."""

    style: HeaderStyle
    facility: int
    hostname: str
    app_name: str
    procid: str
    sd_id: str = DEFAULT_SD_ID

    @classmethod
    def create(
        cls,
        style: HeaderStyle,
        *,
        facility: int,
        hostname: str,
        app_name: str,
        procid: str,
        sd_id: str = DEFAULT_SD_ID,
    ) -> Header:
        return cls(
            style=style,
            facility=facility,
            hostname=header_field(hostname, MAX_HOSTNAME),
            app_name=header_field(app_name, MAX_APP_NAME),
            procid=header_field(procid, MAX_PROCID),
            sd_id=sd_id,
        )

    def pri(self, event: AuditEvent) -> int:
        return pri_of(self.facility, event.type)

    def message(self, event: AuditEvent, body: bytes) -> bytes:
        """One syslog message (unframed) carrying `body`, its TIMESTAMP the time the event
        happened (`occurred_ms`: a compliance record's own time; RFC 5424 keeps milliseconds,
        RFC 3164 whole seconds)."""
        if self.style == "rfc3164":
            return self._rfc3164(event) + body
        return self._rfc5424(event) + BOM + body

    def _rfc5424(self, event: AuditEvent) -> bytes:
        pri, msgid, sd_rest = _parts_fixed_by_type(
            self.facility, self.sd_id, event.type, event.organization
        )
        stamp = rfc3339_ms(occurred_ms(event))
        head = (
            f"<{pri}>1 {stamp} {self.hostname} {self.app_name} {self.procid} "
            f'{msgid} [{self.sd_id} id="{sd_param_value(event.id)}"{sd_rest} '
        )
        return head.encode("utf-8")

    def _rfc3164(self, event: AuditEvent) -> bytes:
        stamp = rfc3164_timestamp(occurred_ms(event) // 1000)
        tag = tag_field(self.app_name)
        return f"<{self.pri(event)}>{stamp} {self.hostname} {tag}: ".encode("ascii")


def escape_breaks(message: bytes) -> bytes:
    """Control bytes other than TAB written as `\\n`, `\\r` or `\\xNN`: no line can end early."""
    if not _BREAKING_BYTES.search(message):
        return message
    return _BREAKING_BYTES.sub(
        lambda m: _BYTE_ESCAPES.get(m.group(), b"\\x%02x" % m.group()[0]), message
    )


def frame(message: bytes, framing: Framing) -> bytes:
    """A stream frame: `LEN SP MSG` (octet counting) or the escaped message and LF."""
    if framing == "octet-counting":
        return b"%d %s" % (len(message), message)
    return escape_breaks(message) + b"\n"


def datagram(message: bytes) -> bytes:
    """A UDP payload: one message, escaped like an LF frame (some receivers split on LF)."""
    return escape_breaks(message)
