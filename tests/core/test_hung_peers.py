"""Hung peers: every HTTP request ends by its deadline and reads a bounded body; the run ends."""

from __future__ import annotations

import gzip
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import orjson
import pytest

from shipper.cli.exit_codes import ExitCode, exit_code_of_run
from shipper.config.settings import load_config
from shipper.emulator import Emulator, generate_events
from shipper.errors import SinkRetryableError, SourceUnavailableError
from shipper.http.sink_client import make_client, policy_of, send_with_retries
from shipper.runtime import app
from shipper.testing.receivers.base import Receiver, Reply
from shipper.testing.receivers.slow_peer import SlowPeer
from sinks.webhook.sink import WebhookSettings
from tests.conftest import KEY, T0, config_text, write_config

# Each byte comes well within the per-read timeout: only a total deadline can end the request.
TRICKLE = 'request_timeout = "5s"\nrequest_deadline = "3s"\nretry_max_attempts = 2\n'
DEADLINE = 3.0
SLACK = 1.5  # the peer notices a client gone at its next byte's turn


def ids_in(path: Path) -> list[str]:
    return [orjson.loads(line)["id"] for line in path.read_bytes().splitlines()]


def finish_within(seconds: float, work: Callable[[], Any]) -> tuple[Any, float]:
    """Run `work` in a thread; its result (or exception) and how long it took, if it ended."""
    result: list[Any] = []

    def target() -> None:
        try:
            result.append(work())
        except Exception as exc:
            result.append(exc)

    began = time.monotonic()
    thread = threading.Thread(target=target, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"still running after {seconds}s: the request has no deadline"
    return result[0], time.monotonic() - began


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    events = generate_events(600, start=T0 - 2 * 86400, end=T0, seed=7)
    with Emulator(api_key=KEY, events=events) as emu:
        yield emu


@pytest.mark.parametrize("trickle", ["headers", "body"])
def test_api_request_trickling_one_byte_a_second_ends_by_its_deadline(
    tmp_path: Path, admin_key: str, trickle: str
) -> None:
    """An API that trickles its answer (headers or body) a byte a second: each request ends by
    `request_deadline`, the retries run out and `run --once` ends with exit 4."""
    with SlowPeer(interval=1.0, trickle=trickle) as peer:  # type: ignore[arg-type]
        config = load_config(
            write_config(
                tmp_path,
                config_text(peer.url, tmp_path, extra_source=TRICKLE + "concurrency = 1\n"),
            )
        )
        error, took = finish_within(60, lambda: app.run(config, once=True))
    assert isinstance(error, SourceUnavailableError), error
    assert "ReadTimeout" in str(error) and "deadline" in str(error)
    assert peer.requests >= 2  # two attempts per pass, the passes maybe side by side
    assert max(peer.exchanges) < DEADLINE + SLACK, peer.exchanges
    assert took < peer.requests * (DEADLINE + SLACK) + 5


def webhook_and_file(url: str, tmp_path: Path) -> str:
    return (
        f'[[sinks]]\ntype = "webhook"\nname = "hook"\nurl = "{url}"\nformat = "raw"\n'
        'timeout = "5s"\nrequest_deadline = "3s"\nretry_max_attempts = 2\n\n'
        f'[[sinks]]\ntype = "file"\nname = "archive"\npath = "{tmp_path}/out/audit.jsonl"\nformat = "raw"\n'
    )


@pytest.mark.parametrize("trickle", ["headers", "body"])
def test_webhook_trickling_one_byte_a_second_fails_by_its_deadline_and_the_file_sink_gets_every_event(
    emulator: Emulator, tmp_path: Path, admin_key: str, trickle: str
) -> None:
    """A receiver trickling its answer: the webhook's requests end by their deadline, the run
    ends (exit 5, its cursor kept), and the file sink beside it gets every event."""
    with SlowPeer(interval=1.0, trickle=trickle) as peer:  # type: ignore[arg-type]
        text = config_text(emulator.base_url, tmp_path, sinks=webhook_and_file(peer.url, tmp_path))
        config = load_config(write_config(tmp_path, text))
        outcome, _ = finish_within(60, lambda: app.run(config, once=True))
    assert exit_code_of_run(outcome) == ExitCode.SINK_FAILED
    assert outcome.reports[0].sinks["hook"].state == "failed"
    assert "deadline" in (outcome.reports[0].sinks["hook"].error or "")
    assert ids_in(tmp_path / "out" / "audit.jsonl") == [e["id"] for e in emulator.events()]
    assert peer.requests == 2  # two attempts of the first batch; the sink failed for the run
    assert max(peer.exchanges) < DEADLINE + SLACK, peer.exchanges


def test_follow_mode_goes_on_cycling_beside_a_trickling_webhook(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """Follow mode with a hung webhook: cycles keep ending, and the file sink gets every event,
    new ones included, while the webhook's requests each end by their deadline."""
    with SlowPeer(interval=1.0) as peer:
        text = config_text(emulator.base_url, tmp_path, sinks=webhook_and_file(peer.url, tmp_path))
        config = load_config(write_config(tmp_path, text))
        stop = threading.Event()
        cycles: list[str] = []

        def on_cycle(report: Any) -> None:
            cycles.append(report.sinks["hook"].state)
            if len(cycles) == 1:
                now = int(time.time())
                # older than clock_safety_lag, so the next cycle reads them
                emulator.add_events(generate_events(5, start=now - 30, end=now - 10, seed=9))
            else:
                stop.set()

        outcome, _ = finish_within(
            90, lambda: app.run(config, once=False, stop=stop, on_cycle=on_cycle)
        )
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert cycles == ["failed", "failed"]
    assert ids_in(tmp_path / "out" / "audit.jsonl") == [e["id"] for e in emulator.events()]
    assert max(peer.exchanges) < DEADLINE + SLACK, peer.exchanges


def bomb(decoded: int) -> bytes:
    """A gzip body a thousand times smaller than what it inflates to."""
    return gzip.compress(b" " * decoded, compresslevel=9)


def test_api_gzip_bomb_is_refused_at_the_size_cap(tmp_path: Path, admin_key: str) -> None:
    """An unrequested gzip answer inflating to 64 MiB is refused once past max_response_bytes
    (1 MiB here), with a message saying so; it is retried, never held whole in memory."""
    body = bomb(64 << 20)
    reply = Reply(200, body, {"content-type": "application/json", "content-encoding": "gzip"})
    with Receiver(lambda _: reply) as rx:
        extra = "max_response_bytes = 1048576\nretry_max_attempts = 2\n"
        config = load_config(
            write_config(tmp_path, config_text(rx.url, tmp_path, extra_source=extra))
        )
        error, _ = finish_within(60, lambda: app.run(config, once=True))
    assert isinstance(error, SourceUnavailableError), error
    assert "larger than 1048576 bytes" in str(error) and "max_response_bytes" in str(error)


def test_receiver_gzip_bomb_is_refused_at_the_size_cap() -> None:
    """A receiver answering 2xx with a gzip bomb: the sink's request fails retryable, naming the cap."""
    reply = Reply(200, bomb(64 << 20), {"content-encoding": "gzip"})
    with Receiver(lambda _: reply) as rx:
        settings = WebhookSettings(
            type="webhook",
            name="hook",
            url=rx.url,
            max_response_bytes=1 << 20,
            retry_max_attempts=1,
        )
        with (
            make_client(settings) as client,
            pytest.raises(SinkRetryableError, match="max_response_bytes"),
        ):
            send_with_retries(
                client,
                "hook",
                policy_of(settings),
                lambda: client.build_request("POST", rx.url, content=b"{}"),
            )


def test_receiver_body_not_matching_its_content_encoding_is_retryable() -> None:
    """A 2xx whose body is not the gzip it claims: a retryable failure naming the mismatch."""
    reply = Reply(200, b"not gzip at all", {"content-encoding": "gzip"})
    with Receiver(lambda _: reply) as rx:
        settings = WebhookSettings(type="webhook", name="hook", url=rx.url, retry_max_attempts=1)
        with (
            make_client(settings) as client,
            pytest.raises(SinkRetryableError, match="Content-Encoding"),
        ):
            send_with_retries(
                client,
                "hook",
                policy_of(settings),
                lambda: client.build_request("POST", rx.url, content=b"{}"),
            )


def test_gzip_answers_within_the_cap_are_read_whole() -> None:
    """The capped reader inflates an ordinary gzip answer exactly as httpx would."""
    document = orjson.dumps({"items": [{"n": n} for n in range(20_000)]})
    reply = Reply(200, gzip.compress(document), {"content-encoding": "gzip"})
    with Receiver(lambda _: reply) as rx:
        settings = WebhookSettings(type="webhook", name="hook", url=rx.url)
        with make_client(settings) as client:
            response = client.post(rx.url, content=b"{}")
    assert response.content == document
    assert response.json()["items"][-1] == {"n": 19_999}


def test_every_http_transport_goes_through_the_guarded_backend() -> None:
    """The deadline rests on swapping httpcore's network backend; a new httpx that moved it fails here."""
    from shipper.http.guard import GuardedBackend, guarded_transport

    transport = guarded_transport()
    assert isinstance(transport._pool._network_backend, GuardedBackend)
    proxied = guarded_transport(proxy="http://127.0.0.1:9")
    assert isinstance(proxied._pool._network_backend, GuardedBackend)
    transport.close()
    proxied.close()
    settings = WebhookSettings(type="webhook", name="hook", url="https://example.invalid/")
    with make_client(settings) as client:
        assert isinstance(client._transport, httpx.HTTPTransport)
        assert isinstance(client._transport._pool._network_backend, GuardedBackend)
        assert not client._mounts  # no proxy transport from the environment bypasses the guard


def test_a_webhook_hung_past_the_stall_timeout_does_not_hold_back_the_next_cycles(
    emulator: Emulator, tmp_path: Path, admin_key: str
) -> None:
    """A webhook that stays hung for minutes (retried for an hour): after the stall timeout
    (30 s) the cycle ends without it, the next cycles run at poll_interval and bring the file
    sink every new event, the webhook reported lagging while it is still busy."""
    sinks = webhook_and_file(ANY_PEER, tmp_path).replace(
        "retry_max_attempts = 2", 'retry_max_attempts = 1000\nretry_max_time = "1h"'
    )
    with SlowPeer(interval=1.0) as peer:
        text = config_text(emulator.base_url, tmp_path, sinks=sinks.replace(ANY_PEER, peer.url))
        config = load_config(write_config(tmp_path, text))
        stop = threading.Event()
        cycles: list[tuple[float, str, str | None]] = []

        def on_cycle(report: Any) -> None:
            hook = report.sinks["hook"]
            cycles.append((time.monotonic(), hook.state, hook.error))
            if len(cycles) == 1:
                now = int(time.time())
                # older than clock_safety_lag, so the next cycle reads them
                emulator.add_events(generate_events(5, start=now - 30, end=now - 10, seed=9))
            elif len(cycles) == 3:
                stop.set()

        outcome, _ = finish_within(
            120, lambda: app.run(config, once=False, stop=stop, on_cycle=on_cycle)
        )
    assert exit_code_of_run(outcome) == ExitCode.OK
    assert cycles[0][1] == "lagging"
    assert cycles[1][1:] == ("lagging", "still delivering a window of an earlier cycle")
    assert cycles[2][0] - cycles[1][0] < 10  # poll_interval is 1 s; nothing waits for the webhook
    assert ids_in(tmp_path / "out" / "audit.jsonl") == [e["id"] for e in emulator.events()]
    assert max(peer.exchanges) < DEADLINE + SLACK, peer.exchanges


ANY_PEER = "http://127.0.0.1:9"
