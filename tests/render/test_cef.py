"""CEF rendering: golden lines, exact round trips through an independent parser, safe framing."""

from __future__ import annotations

import pytest

from shipper.model.event import AuditEvent
from shipper.render import renderer
from shipper.render.cef import render_cef
from tests.render import samples
from tests.render.cef_parser import CefError, parse
from tests.render.golden import check


@pytest.mark.parametrize("family", sorted(samples.FAMILIES))
def test_golden(family: str) -> None:
    """Each mapping family renders exactly as its reviewed golden line."""
    check(f"{family}.cef", render_cef(samples.event(family)) + "\n")


@pytest.mark.parametrize("family", sorted(samples.FAMILIES))
def test_every_family_parses(family: str) -> None:
    """Every family's line is valid CEF:0 to the strict parser."""
    parse(render_cef(samples.event(family)))


def test_header_and_extensions_of_a_failed_login() -> None:
    """Header: vendor, product, type as signature id, severity; extensions carry the event."""
    cef = parse(render_cef(samples.event("auth_failure")))
    assert cef.header == {
        "version": "CEF:0",
        "vendor": "OpenAI",
        "product": "Audit Log",
        "device_version": "1.0",
        "signature_id": "login.failed",
        "name": "login failed",
        "severity": "3",
    }
    assert cef.extensions == {
        "rt": str((samples.T + 2) * 1000),
        "externalId": "audit_log-0002",
        "cat": "authentication",
        "act": "failed",
        "outcome": "failure",
        "suser": "alice@example.com",
        "suid": "user-alice",
        "c6a2": "2001:db8::7",
        "c6a2Label": "Source IPv6 Address",
        "requestClientApplication": "Mozilla/5.0 (X11; Linux x86_64)",
        "cs2": "acme-prod",
        "cs2Label": "organization",
        "cs5": "a497151ce4338a12c4418c44d375173e",
        "cs5Label": "ja3",
    }


def test_ipv4_source_project_and_key() -> None:
    """IPv4 goes to src; project, target and API key ids to labelled custom strings."""
    ext = parse(render_cef(samples.event("api_key"))).extensions
    assert ext["cs1"] == "proj_abc" and ext["cs1Label"] == "projectId"
    assert ext["cs3"] == "key_new" and ext["cs3Label"] == "targetId"
    assert ext["cs4"] == "key_user_1" and ext["cs4Label"] == "apiKeyId"
    assert "src" not in ext  # an API-key actor has no IP
    assert parse(render_cef(samples.event("user"))).extensions["src"] == "203.0.113.7"


def test_hostile_text_cannot_forge_fields_or_frames() -> None:
    """Pipes, equals, backslashes, newlines and NUL in event content stay inside their field."""
    evil = "x|y=z\\ w\nCEF:0|forged|a|b|c|d|10| rt=1\r\x00end cs1=forged"
    raw = samples.api(f"login.failed|{evil}", {}, samples.session(email=evil))
    raw["actor"]["session"]["user_agent"] = evil
    line = render_cef(AuditEvent.from_api(raw))
    assert "\n" not in line and "\r" not in line and "\x00" not in line
    cef = parse(line)
    cleaned = evil.replace("\x00", "")
    assert cef.header["signature_id"] == f"login.failed|{evil}".replace("\n", "").replace(
        "\r", ""
    ).replace("\x00", "")
    assert cef.extensions["suser"] == cleaned
    assert cef.extensions["requestClientApplication"] == cleaned
    assert "cs1" not in cef.extensions


def test_parser_rejects_what_the_spec_does_not_allow() -> None:
    """The test parser is strict: short headers, bad escapes and bare `=` in values fail."""
    for bad in (
        "CEF:0|a|b|c|d|e|5",
        "CEF:0|a|b|c|d|e|5|k=v\\x",
        "CEF:0|a|b|c|d|e|5|k=a=b",
        "CEF:0|a|b|c|d|e|5|k=a\nb",
        "CEF:0|a\\b|b|c|d|e|5|k=v",
        "CEF:0|a|b|c|d|e|11|k=v",
    ):
        with pytest.raises(CefError):
            parse(bad)


def test_bytes_renderer_is_utf8_of_the_line() -> None:
    """`renderer("cef")` gives the line as UTF-8, no trailing newline."""
    event = samples.event("tenant")
    assert renderer("cef")(event) == render_cef(event).encode("utf-8")
