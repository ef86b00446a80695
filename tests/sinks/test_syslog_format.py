"""The pure parts of the syslog sink: headers, structured data, framing, hostile content, settings."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from shipper.config.settings import parse_config
from shipper.model.event import AuditEvent, normalize
from sinks.syslog.format import (
    BOM,
    Header,
    datagram,
    escape_breaks,
    facility_number,
    frame,
    header_field,
    rfc3164_timestamp,
    sd_param_value,
    structured_data,
)
from sinks.syslog.sink import SyslogSinkSettings, plugin
from tests.sinks import timed

HOSTILE_PIECES = ["\n", "\r\n", "\x00", "]", '"', "\\", "|", "=", "\t", "\x1b[31m", "😀", "\u2028"]
hostile_text = st.one_of(
    st.text(max_size=60),
    st.lists(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=5), max_size=12).map("".join),
)


def make_event(
    *, event_id: str = "audit_log-1", event_type: str = "api_key.created", text: str = "x",
    org: str | None = "acme", effective_at: int = 1_720_804_190,
) -> AuditEvent:  # fmt: skip
    return AuditEvent.from_api(
        {
            "id": event_id,
            "object": "organization.audit_log",
            "type": event_type,
            "effective_at": effective_at,
            "actor": {"type": "session", "session": {"user": {"id": text, "email": text}}},
            event_type: {"id": text, "data": {"name": text}},
        },
        organization=org,
    )


def header(style: str = "rfc5424", **kw: Any) -> Header:
    fields: dict[str, Any] = {
        "facility": 16, "hostname": "host.example", "app_name": "shipper", "procid": "42",
    } | kw  # fmt: skip
    return Header.create(style, **fields)  # type: ignore[arg-type]


# --- a strict reader of what we write, independent of the writer ------------------------------

_RFC5424 = re.compile(
    rb"<(\d{1,3})>1 (\S+) (\S+) (\S+) (\S+) (\S+) (-|(?:\[(?:[^\]\\]|\\.)*\])+) (.*)", re.S
)
_SD_PARAM = re.compile(r'([^ =\]"]+)="((?:[^"\\]|\\.)*)"')


def parse_5424(message: bytes) -> dict[str, Any]:
    match = _RFC5424.fullmatch(message)
    assert match, message
    pri, ts, host, app, procid, msgid, sd, msg = match.groups()
    return {
        "pri": int(pri), "timestamp": ts.decode(), "hostname": host.decode(),
        "app_name": app.decode(), "procid": procid.decode(), "msgid": msgid.decode(),
        "sd": parse_sd(sd.decode()), "msg": msg,
    }  # fmt: skip


def parse_sd(text: str) -> dict[str, dict[str, str]]:
    assert text.startswith("[") and text.endswith("]"), text
    sd_id, _, params = text[1:-1].partition(" ")
    values = {k: re.sub(r'\\(["\\\]])', r"\1", v) for k, v in _SD_PARAM.findall(params)}
    rebuilt = " ".join(f'{k}="{v}"' for k, v in _SD_PARAM.findall(params))
    assert rebuilt == params, f"unparsed text in structured data: {params!r}"
    return {sd_id: values}


def controls_as_text(value: str) -> str:
    return re.sub(r"[\x00-\x1f\x7f-\x9f]", lambda m: f"\\u{ord(m.group()):04x}", value)


def deframe_octets(stream: bytes) -> list[bytes]:
    messages = []
    while stream:
        length, _, rest = stream.partition(b" ")
        assert length.isdigit(), stream[:40]
        messages.append(rest[: int(length)])
        stream = rest[int(length) :]
    return messages


def deframe_lf(stream: bytes) -> list[bytes]:
    assert stream.endswith(b"\n")
    return stream[:-1].split(b"\n")


# --- tests -------------------------------------------------------------------------------------


def test_rfc5424_message_is_exactly_as_specified() -> None:
    """A plain event renders to the documented RFC 5424 bytes, BOM before the JSON body."""
    event = make_event()
    message = header().message(event, b'{"a":1}')
    assert message == (
        b"<133>1 2024-07-12T17:09:50Z host.example shipper 42 api_key.created "
        b'[openai@32473 id="audit_log-1" type="api_key.created" org="acme"] ' + BOM + b'{"a":1}'
    )


def test_rfc3164_message_is_exactly_as_specified() -> None:
    """RFC 3164: `<PRI>Mmm dd hh:mm:ss HOSTNAME TAG: MSG` in UTC, no BOM."""
    event = make_event(effective_at=1_704_445_200)  # 2024-01-05T09:00:00Z
    message = header("rfc3164").message(event, b"{}")
    assert message == b"<133>Jan  5 09:00:00 host.example shipper: {}"


def test_a_compliance_records_header_carries_its_own_time_not_its_files_end() -> None:
    """A compliance record's TIMESTAMP is its own time: RFC 5424 with its milliseconds, RFC 3164
    to the second; its log file ended at 2024-07-12T17:09:50Z, 12 min 34.75 s later."""
    record = timed.record(1_720_804_190)
    assert parse_5424(header().message(record, b"{}"))["timestamp"] == "2024-07-12T16:57:15.250Z"
    assert header("rfc3164").message(record, b"{}").startswith(b"<133>Jul 12 16:57:15 ")


def test_failures_are_warnings_and_the_rest_notices() -> None:
    """Severity: `*.failed` types are warning (4), others notice (5); PRI = facility*8+severity."""
    assert header(facility=4).pri(make_event(event_type="login.failed")) == 4 * 8 + 4
    assert header(facility=23).pri(make_event(event_type="login.succeeded")) == 23 * 8 + 5


def test_each_message_has_its_own_fields_though_a_type_header_part_is_reused() -> None:
    """Parts of the header fixed by type and organization are built once and reused: each
    message still carries its own id, organization, time and severity, whatever came before."""
    sent = [
        (header(facility=4), make_event(event_id="a-1", event_type="login.failed", org="acme")),
        (header(facility=4), make_event(event_id="a-2", event_type="login.failed", org=None)),
        (header(facility=4, sd_id="x@1"), make_event(event_id="a-3", event_type="login.failed")),
        (header(facility=23), make_event(event_id='a"4', event_type="login.failed", org="zeta")),
        (header(facility=23), make_event(event_type="login.succeeded", effective_at=86_400)),
    ]
    got = [parse_5424(h.message(event, b"{}")) for h, event in sent]
    assert [(m["pri"], m["timestamp"], m["msgid"], m["sd"]) for m in got] == [
        (36, "2024-07-12T17:09:50Z", "login.failed",
         {"openai@32473": {"id": "a-1", "type": "login.failed", "org": "acme"}}),
        (36, "2024-07-12T17:09:50Z", "login.failed",
         {"openai@32473": {"id": "a-2", "type": "login.failed"}}),
        (36, "2024-07-12T17:09:50Z", "login.failed",
         {"x@1": {"id": "a-3", "type": "login.failed", "org": "acme"}}),
        (188, "2024-07-12T17:09:50Z", "login.failed",
         {"openai@32473": {"id": 'a"4', "type": "login.failed", "org": "zeta"}}),
        (189, "1970-01-02T00:00:00Z", "login.succeeded",
         {"openai@32473": {"id": "audit_log-1", "type": "login.succeeded", "org": "acme"}}),
    ]  # fmt: skip


def test_organization_absent_leaves_org_out_of_structured_data() -> None:
    """An event without an organization label has no `org` parameter."""
    message = header().message(make_event(org=None), b"{}")
    assert parse_5424(message)["sd"] == {
        "openai@32473": {"id": "audit_log-1", "type": "api_key.created"}
    }


def test_msgid_is_the_type_truncated_to_32_printable_ascii() -> None:
    """MSGID carries the event type, cut at 32 characters, spaces and non-ASCII as `_`."""
    long_type = "organization.very_long_category.with_action.updated"
    parsed = parse_5424(header().message(make_event(event_type=long_type), b"{}"))
    assert parsed["msgid"] == long_type[:32]
    assert parsed["sd"]["openai@32473"]["type"] == long_type
    weird = parse_5424(header().message(make_event(event_type="a b\nc€"), b"{}"))
    assert weird["msgid"] == "a_b_c_"


@pytest.mark.parametrize(
    ("name", "number"), [("kern", 0), ("auth", 4), ("authpriv", 10), ("local0", 16), ("LOCAL7", 23),
                         (0, 0), (23, 23), ("13", 13)],
)  # fmt: skip
def test_facility_names_and_numbers(name: str | int, number: int) -> None:
    """Facilities are accepted by name (any case) or number 0..23."""
    assert facility_number(name) == number


@pytest.mark.parametrize("bad", ["local8", "", 24, -1, True, "1.5"])
def test_unknown_facilities_are_refused(bad: Any) -> None:
    """Anything else is a ValueError naming the valid choices."""
    with pytest.raises(ValueError, match="local0"):
        facility_number(bad)


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


@given(st.integers(min_value=-(2**31), max_value=253_402_300_799))  # 1901 .. the end of 9999
def test_rfc3164_timestamp_is_the_calendar_time_in_utc(seconds: int) -> None:
    """The per-day lookup and the arithmetic give what the calendar gives, any second."""
    when = dt.datetime.fromtimestamp(seconds, dt.UTC)
    month = MONTHS[when.month - 1]  # not %b: that follows the locale
    assert rfc3164_timestamp(seconds) == f"{month} {when.day:2d} {when:%H:%M:%S}"


def test_rfc3164_timestamp_pads_the_day_with_a_space() -> None:
    """Days below 10 are space-padded, as RFC 3164 requires."""
    assert rfc3164_timestamp(0) == "Jan  1 00:00:00"
    assert rfc3164_timestamp(1_720_804_190) == "Jul 12 17:09:50"


def test_escape_breaks_leaves_json_alone_and_escapes_controls() -> None:
    """LF, CR and other control bytes become visible escapes; TAB and UTF-8 pass through."""
    assert escape_breaks(b'{"a":"\\n"}') == b'{"a":"\\n"}'
    assert escape_breaks(b"a\nb\rc\x00d\te\x7f\xc3\xa9") == b"a\\nb\\rc\\x00d\te\\x7f\xc3\xa9"


@given(hostile_text)
def test_sd_param_values_round_trip_and_never_break_out(value: str) -> None:
    """An escaped PARAM-VALUE has no bare `"`/`]` or controls and unescapes to the value."""
    escaped = sd_param_value(value)
    assert not re.search(r"[\x00-\x1f\x7f-\x9f]", escaped)
    element = structured_data("x@32473", {"v": value})
    parsed = parse_sd(element)["x@32473"]["v"]
    assert parsed == controls_as_text(value)


@given(hostile_text, st.integers(1, 300))
def test_header_fields_are_printable_ascii_and_bounded(value: str, limit: int) -> None:
    """Header fields never hold a space, control or non-ASCII character, nor exceed their limit."""
    field = header_field(value, limit)
    assert re.fullmatch(r"[!-~]+", field)
    assert len(field) <= limit


events = st.builds(
    make_event,
    event_id=hostile_text.filter(bool),
    event_type=hostile_text,
    text=hostile_text,
    org=st.none() | hostile_text,
    effective_at=st.integers(0, 4_102_444_800),
)


@settings(max_examples=150)
@given(
    st.lists(events, min_size=1, max_size=5),
    st.sampled_from(["rfc5424", "rfc3164"]),
    st.sampled_from(["octet-counting", "lf"]),
    hostile_text,
    hostile_text,
)
def test_hostile_events_never_forge_a_second_message(
    batch: list[AuditEvent], style: str, framing: Any, hostname: str, app_name: str
) -> None:
    """Whatever the fields hold, a stream of N frames reads back as exactly N messages."""
    head = header(style, hostname=hostname, app_name=app_name)
    messages = [head.message(e, orjson.dumps(normalize(e))) for e in batch]
    stream = b"".join(frame(m, framing) for m in messages)
    if framing == "lf":
        assert deframe_lf(stream) == [escape_breaks(m) for m in messages]
    else:
        assert deframe_octets(stream) == messages


@settings(max_examples=150)
@given(events, hostile_text, hostile_text)
def test_hostile_events_keep_every_rfc5424_field_in_place(
    event: AuditEvent, hostname: str, app_name: str
) -> None:
    """Header, structured data and body parse back; the body is the event's document."""
    message = header(hostname=hostname, app_name=app_name).message(
        event, orjson.dumps(normalize(event))
    )
    parsed = parse_5424(message)
    assert parsed["timestamp"] == event.timestamp
    assert parsed["sd"]["openai@32473"] == {
        k: controls_as_text(v)
        for k, v in (("id", event.id), ("type", event.type), ("org", event.organization))
        if v is not None
    }
    assert parsed["msg"].startswith(BOM)
    assert orjson.loads(parsed["msg"][len(BOM) :]) == normalize(event)
    assert b"\n" not in message.split(BOM)[0]


@settings(max_examples=150)
@given(
    st.lists(st.binary(max_size=80), min_size=1, max_size=5),
    st.sampled_from(["rfc5424", "rfc3164"]),
)
def test_lf_framing_holds_even_for_bodies_with_raw_line_breaks(
    bodies: list[bytes], style: str
) -> None:
    """A body with raw LF, CR or NUL (a renderer gone wrong) still makes one LF frame per event."""
    head = header(style)
    messages = [head.message(make_event(), body) for body in bodies]
    lines = deframe_lf(b"".join(frame(m, "lf") for m in messages))
    assert len(lines) == len(messages)
    assert not any(re.search(rb"[\x00\r]", line) for line in lines)
    assert [datagram(m) for m in messages] == lines


# --- settings ------------------------------------------------------------------------------------


def syslog_settings(**values: Any) -> SyslogSinkSettings:
    return SyslogSinkSettings.model_validate(
        {"type": "syslog", "name": "siem", "host": "h"} | values
    )


def test_settings_defaults() -> None:
    """Defaults: TCP to 514, RFC 5424, octet counting, local0, normalized JSON body, 8 KiB UDP."""
    s = syslog_settings()
    assert (s.transport, s.effective_port, s.format, s.framing) == (
        "tcp", 514, "rfc5424", "octet-counting",
    )  # fmt: skip
    assert (s.facility, s.app_name, s.body, s.body_format) == (16, "shipper", "json", "normalized")
    assert (s.udp_max_bytes, s.sd_id, s.hostname) == (8192, "openai@32473", None)
    assert syslog_settings(transport="tls").effective_port == 6514
    assert syslog_settings(transport="udp").effective_port == 514
    assert syslog_settings(transport="tls", port=10514).effective_port == 10514


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"bogus": 1}, "Extra inputs are not permitted"),
        ({"format": "normalized"}, "rfc5424"),
        ({"facility": "local9"}, "local0"),
        ({"ca_file": "/etc/ca.pem"}, "ca_file applies only to transport = 'tls'"),
        ({"transport": "udp", "tls_server_name": "x", "cert_file": "/c"}, "apply only"),
        ({"udp_max_bytes": 70_000}, "65507"),
        ({"app_name": "two words"}, "app_name"),
        ({"sd_id": "no-enterprise-number"}, "sd_id"),
        ({"framing": "nul"}, "octet-counting"),
    ],
)
def test_settings_refuse_bad_values(values: dict[str, Any], message: str) -> None:
    """Unknown keys and bad values are refused with a message naming the problem."""
    with pytest.raises(ValidationError, match=re.escape(message)):
        syslog_settings(**values)


def test_config_file_accepts_syslog_sinks_through_the_plugin() -> None:
    """The config edge validates a syslog table with the plugin's model and its own formats."""
    config = parse_config(
        {"source": {}, "sinks": [{"type": "syslog", "name": "siem", "host": "h",
                                  "format": "rfc3164", "facility": "auth"}]},
        "shipper.toml",
        plugins={"syslog": plugin},
    )  # fmt: skip
    (sink,) = config.sinks
    assert isinstance(sink, SyslogSinkSettings)
    assert (sink.format, sink.facility) == ("rfc3164", 4)
    assert SyslogSinkSettings.allowed_formats == ("rfc5424", "rfc3164")
