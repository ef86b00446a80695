"""The chaos harness's own parts: the schedule, the relay, the shifted clock, poison entries."""

from __future__ import annotations

import random
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from bench.chaos import _event
from bench.chaos_faults import SOLO, Planner, coverage
from bench.chaos_proxy import Hold, Proxy
from bench.chaos_receivers import ChaosReceivers, Received, SinkResult
from shipper.emulator import Emulator, generate_events
from shipper.emulator.poison import POISON_KINDS, add_poison

SINKS = ("file", "syslog", "webhook", "hec", "elastic")
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("rounds", [4, 8, 11, 50])
def test_every_fault_kind_is_dealt_to_a_round_whatever_the_round_count(rounds: int) -> None:
    """Coverage comes from the deal, not from luck or timing; run-ending kinds get a round alone."""
    dealt = Planner(random.Random(3), rounds, SINKS).dealt()
    assert set().union(*dealt) == set(coverage(SINKS))
    for slot in SOLO:
        assert [slots for slots in dealt if slot in slots] == [{slot}]


def test_a_round_with_dealt_kinds_gets_no_random_kill_or_read_only_state() -> None:
    """Nothing random may end a run before its dealt kinds fired (the 'busy' flake under load)."""
    for seed in range(40):
        planner = Planner(random.Random(seed), 50, SINKS)
        for index in range(50):
            plan = planner.plan(index, set())
            if plan.forced - {"kill", "ro_state"}:
                assert (plan.kill_at, plan.ro_state_at) == (None, None), (seed, index)


def test_the_stop_round_leaves_the_webhook_alone_but_for_its_503s() -> None:
    """In the round that stops the webhook receiver (503s), no other fault touches the webhook, for any seed."""
    for seed in range(40):
        planner = Planner(random.Random(seed), 11, SINKS)
        plan = next(p for p in (planner.plan(i, set()) for i in range(11)) if p.stop)
        assert "webhook" not in {*plan.down, *plan.refuse, *plan.poison_events}
        assert "webhook" not in {sink for _, sink in plan.scripted} | set(plan.restart_at)


def test_dealt_mid_run_kinds_are_done_at_the_hold_not_at_an_instant() -> None:
    """Faults dealt mid-run (kill, late events, read-only state, rotation, resets, restarts) fire at the hold, while a run is surely alive."""
    planner = Planner(random.Random(5), 11, SINKS)
    plans = [planner.plan(index, set()) for index in range(11)]
    held = {slot for plan in plans for slot in plan.held}
    assert {"kill", "late", "ro_state", "rotate:file", "reset:syslog"} <= held
    assert {f"restart:{sink}" for sink in SINKS if sink != "file"} <= held


class _Upstream:
    """A loopback server that records what it receives and can answer."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.received = bytearray()
        self.got = threading.Event()
        self.conns: list[socket.socket] = []
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            self.conns.append(conn)
            threading.Thread(target=self._read, args=(conn,), daemon=True).start()

    def _read(self, conn: socket.socket) -> None:
        with conn:  # closed here, not by the collector in a later test
            while data := _recv(conn):
                self.received += data
                self.got.set()

    def close(self) -> None:
        self.sock.close()
        for conn in self.conns:
            conn.close()


def _recv(conn: socket.socket) -> bytes:
    try:
        return conn.recv(65536)
    except OSError:
        return b""


@pytest.fixture
def upstream() -> Iterator[_Upstream]:
    server = _Upstream()
    yield server
    server.close()


@pytest.fixture
def proxy(upstream: _Upstream) -> Iterator[Proxy]:
    relay = Proxy(lambda: upstream.port, small_window=True)
    relay.start()
    yield relay
    relay.stop()


def _connect(proxy: Proxy) -> socket.socket:
    return socket.create_connection(("127.0.0.1", proxy.port), timeout=5)


def test_a_stalled_connection_forwards_nothing_and_soon_blocks_the_writer(
    proxy: Proxy, upstream: _Upstream
) -> None:
    """A stalled relay connection forwards nothing and fills the writer's send queue; the next connection goes through."""
    proxy.stall_next()
    with _connect(proxy) as client:
        client.settimeout(0.5)
        sent = 0
        with pytest.raises(TimeoutError):
            for _ in range(10_000):  # bounded: a 4 MB send buffer fills long before
                sent += client.send(b"x" * 65536)
    assert proxy.stalled == 1
    assert not upstream.received
    with _connect(proxy) as second:  # the next connection goes through
        second.sendall(b"after\n")
        assert upstream.got.wait(5)
    assert upstream.received == b"after\n"


def test_a_closing_peer_hangs_up_once_a_batch_went_through(
    proxy: Proxy, upstream: _Upstream
) -> None:
    """A closing peer forwards the first batch, then hangs up (FIN) while the connection is idle."""
    proxy.close_next()
    with _connect(proxy) as client:
        client.sendall(b"batch one\n")
        assert client.recv(10) == b""  # FIN: the peer closed between batches
    assert upstream.received == b"batch one\n"
    assert proxy.closed_by_peer == 1


def test_a_held_request_is_forwarded_only_once_released(proxy: Proxy, upstream: _Upstream) -> None:
    """A held request reaches the upstream only after the hold is released."""
    hold = Hold(lambda: True)
    proxy.hold = hold
    with _connect(proxy) as client:
        client.sendall(b"GET /\n")
        assert hold.reached.wait(5)
        assert not upstream.got.wait(0.2)
        hold.release()
        assert upstream.got.wait(5)


def test_a_trickled_answer_comes_a_byte_at_a_time_then_the_peer_hangs_up(
    proxy: Proxy, upstream: _Upstream
) -> None:
    """A trickled answer arrives in part, a byte at a time, and the peer hangs up before it completes."""
    proxy.trickle_next(0.01, 0.3)
    with _connect(proxy) as client:
        client.sendall(b"GET /\n")
        assert upstream.got.wait(5)
        upstream.conns[0].sendall(b"y" * 1000)
        answer = bytearray()
        while data := client.recv(1000):
            answer += data
    assert 0 < len(answer) < 1000
    assert proxy.trickled == 1


def test_the_clock_wrapper_shifts_time_and_datetime_but_not_monotonic() -> None:
    """The chaos clock shift moves time.time() and datetime.now() by the offset and leaves time.monotonic() alone."""
    code = (
        "import sys, time, datetime as dt; sys.path.insert(0, 'bench');"
        "from chaos_clock import shift_clock; r, m = time.time(), time.monotonic();"
        "shift_clock(7200); print(round(time.time() - r), round(time.monotonic() - m),"
        "round(dt.datetime.now(dt.UTC).timestamp() - r))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT)
    assert out.stdout.split() == ["7200", "0", "7200"], out.stderr


def test_poison_entries_are_served_byte_for_byte_and_left_out_of_the_truth() -> None:
    """The emulator serves every poison entry byte for byte, and the harness's truth leaves each one out."""
    events = generate_events(5, start=1_700_000_000, end=1_700_000_100, seed=1)
    with Emulator(api_key="sk-test-key-0123456789", events=events) as emu:
        blobs = [
            add_poison(emu, kind, f"audit_log_poison_{kind}", 1_700_000_050)
            for kind in POISON_KINDS
        ]
        page = httpx.get(
            f"{emu.base_url}/organization/audit_logs?limit=100",
            headers={"Authorization": "Bearer sk-test-key-0123456789"},
        )
    assert page.status_code == 200
    assert all(blob in page.content for blob in blobs)
    assert [_event(blob) for blob in blobs] == [None] * len(blobs)


def test_a_rotated_output_is_read_back_from_its_compressed_parts(tmp_path: Path) -> None:
    """What the file sink wrote before a rotation is read back from the rotated parts, in order."""
    rx = ChaosReceivers(tmp_path, syslog=False)
    rx.file.parent.mkdir(parents=True)
    rx.file.write_text('{"id":"a"}\n')
    assert rx.rotate_file(settle=0.01)
    assert not rx.file.exists()
    rx.file.write_text('{"id":"b"}\n')
    assert rx.received("file").ids == ["a", "b"]


def test_only_events_a_receiver_poisoned_may_be_dead_letters_instead_of_delivered() -> None:
    """A receiver refusing everything must not turn the stream into 'handled' dead letters."""
    truth = ["a", "b", "c", "d"]
    result = SinkResult.compare(truth, Received(["a"]), dead={"b", "c"}, poisoned={"b"})
    assert (result.missing, result.dead_lettered) == (2, 2)  # c (dead-lettered) and d
