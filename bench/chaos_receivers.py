"""The five sinks' receivers for a chaos run, each able to go down, refuse, reset or restart.

They are the project's own local receivers (`tests.receivers`, `shipper.testing.receivers.rsyslog`): a JSON-lines
file, a real rsyslogd over TCP (behind a `Proxy` that can stall or close a connection), a
signature-checking webhook, a Splunk HEC with indexer acknowledgement and an Elasticsearch
`_bulk` endpoint. The HTTP ones can also refuse everything, trickle an answer, or answer 500 to
any request holding a poisoned event id (for good). `received(sink)` reads back the audit event
ids each one holds, in arrival order (repeats are duplicates), the file's rotated parts included.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import subprocess
import threading
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

from bench.chaos_proxy import Proxy
from shipper.testing.receivers.base import Receiver, Recorded, Reply, Responder, document_id
from shipper.testing.receivers.elasticsearch import FakeElasticsearch, es_error
from shipper.testing.receivers.rsyslog import MARKER_APP, Record, Rsyslog
from shipper.testing.receivers.splunk_hec import FakeHec, Token, hec
from shipper.testing.receivers.webhook import FakeWebhook

HEC_TOKEN = "chaos-hec-token-0123456789"
WEBHOOK_SECRET = "whsec_" + base64.b64encode(b"chaos-harness-signing-key-0123").decode()
ES_API_KEY = "Y2hhb3MtaWQ6Y2hhb3Mta2V5"
ENV = {
    "CHAOS_HEC_TOKEN": HEC_TOKEN,
    "CHAOS_WEBHOOK_SECRET": WEBHOOK_SECRET,
    "CHAOS_ES_API_KEY": ES_API_KEY,
}
_SINK_RETRY = 'retry_max_attempts = 4\nretry_max_time = "4s"\nbatch_max_events = 50\n'
# Where each HTTP sink posts its data: scripted trouble must not hit HEC's ack queries.
_DATA_PATHS = {"webhook": "/in", "hec": "/services/collector/event", "elastic": "/_bulk"}
# The clock-jump round runs the shipper 2 h ahead: the webhook must not refuse its signatures.
_SIGNATURE_TOLERANCE = 3 * 3600.0
TRICKLE = (0.5, 20.0)  # a byte every 0.5 s (below any read timeout), hanging up after 20 s


def rsyslog_available() -> bool:
    return bool(shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin"))


class _Gate:
    """A scripted reply that only applies while armed; disarmed it passes to the real handler."""

    def __init__(self, reply: Reply, fallback: Responder, *, process: bool = False) -> None:
        self.reply, self.fallback, self.process = reply, fallback, process
        self.armed, self.fired = True, 0
        self._lock = threading.Lock()

    def __call__(self, request: Recorded) -> Reply:
        with self._lock:
            armed = self.armed
            self.fired += armed
        if not armed:
            return self.fallback(request)
        if self.process:  # the receiver accepts the data; only its answer is lost
            self.fallback(request)
        return self.reply

    def disarm(self) -> int:
        with self._lock:
            self.armed = False
            return self.fired


@dataclass(frozen=True)
class Received:
    ids: list[str]  # in arrival order
    unreadable: int = 0  # records the harness could not parse (torn lines, garbled messages)


class ChaosReceivers:
    """Starts, scripts and reads the receivers; see the module docstring."""

    def __init__(self, work: Path, *, syslog: bool) -> None:
        self.file = work / "out" / "audit.jsonl"
        self.rotated = work / "rotated"  # the file sink's rotated (and "compressed") parts
        self.webhook = FakeWebhook(secret=WEBHOOK_SECRET, tolerance=_SIGNATURE_TOLERANCE)
        self.hec_token = Token(ack=True)
        self.hec = FakeHec({HEC_TOKEN: self.hec_token})
        self.elastic = FakeElasticsearch(api_key=ES_API_KEY)
        self.rsyslog = Rsyslog(work / "rsyslog") if syslog else None
        self.syslog_proxy = Proxy(
            lambda: self.rsyslog.tcp_port if self.rsyslog else 0, small_window=True
        )
        self._gates: list[tuple[str, _Gate]] = []
        self._lost_mark = 0
        self._proxy_marks = (0, 0)
        self.poisoned: dict[str, set[str]] = {sink: set() for sink in _DATA_PATHS}
        self._modes: dict[str, str] = {}  # sink -> "refuse" | "stop", until `disarm`
        self._hits: Counter[str] = Counter()  # replies the modes and poison served this round
        self._hits_lock = threading.Lock()
        for sink in _DATA_PATHS:
            receiver = self._http(sink)
            receiver.respond = self._refusing_poison(sink, receiver.respond)

    @property
    def sinks(self) -> tuple[str, ...]:
        syslog = ("syslog",) if self.rsyslog is not None else ()
        return ("file", *syslog, "webhook", "hec", "elastic")

    def _http(self, sink: str) -> Receiver:
        receivers = {
            "webhook": self.webhook.receiver,
            "hec": self.hec.receiver,
            "elastic": self.elastic.receiver,
        }
        return receivers[sink]

    def __enter__(self) -> ChaosReceivers:
        for sink in self.sinks[1:]:
            self.up(sink)
        return self

    def __exit__(self, *exc: object) -> None:
        for sink in self.sinks[1:]:
            self.down(sink)

    # -- faults ----------------------------------------------------------------------------
    def down(self, sink: str) -> None:
        """Nothing listens on the sink's port (connection refused) until `up`."""
        if sink == "syslog" and self.rsyslog is not None:
            self.syslog_proxy.stop()
            self.rsyslog.stop()
        elif sink in _DATA_PATHS:
            self._http(sink).stop()

    def up(self, sink: str) -> None:
        if sink == "syslog" and self.rsyslog is not None:
            if not self.rsyslog.running:
                self.rsyslog.start()
            self.syslog_proxy.start()
        elif sink in _DATA_PATHS:
            self._http(sink).start()

    def restart(self, sink: str) -> bool:
        """The receiver dies (open connections closed) and comes back on the same port."""
        self.down(sink)
        self.up(sink)
        return True

    def reset_syslog(self) -> bool:
        """Reset the shipper's TCP connections to rsyslog (`ss -K`); False if that failed."""
        if self.rsyslog is None:
            return False
        port = str(self.syslog_proxy.port)
        try:
            result = subprocess.run(
                ["ss", "-K", "dst", "127.0.0.1", "dport", "=", port],
                capture_output=True,
                text=True,
                timeout=10,
            )
        except (OSError, subprocess.TimeoutExpired):
            return False
        return result.returncode == 0 and f":{port}" in result.stdout

    def arm(self, sink: str, kind: str, times: int) -> None:
        """The sink's next `times` data requests get 503 (`busy`) or no answer (see SCRIPTED)."""
        receiver = self._http(sink)
        process = kind in ("dropped_answer", "trickle")
        gate = _Gate(self._reply(sink, kind), receiver.respond, process=process)
        receiver.script(*([gate] * times), path=_DATA_PATHS[sink])
        self._gates.append((f"{kind}:{sink}", gate))

    def stall_syslog(self) -> None:
        """rsyslog's next connection is accepted and never read (a wedged daemon)."""
        self.syslog_proxy.stall_next()

    def close_syslog(self) -> None:
        """rsyslog's next connection is closed by the peer between two batches."""
        self.syslog_proxy.close_next()

    def refuse(self, sink: str) -> None:
        """The sink's data requests get 400 for the rest of the round (a receiver that refuses)."""
        self._modes[sink] = "refuse"

    def busy_for_long(self, sink: str) -> None:
        """The sink's data requests get 503 with `Retry-After: 120` for the rest of the round."""
        self._modes[sink] = "stop"

    def hits(self, key: str) -> int:
        with self._hits_lock:
            return self._hits[key]

    def poison(self, sink: str, event_id: str) -> None:
        """From now on the sink's receiver answers 500 to every request holding `event_id`."""
        self.poisoned[sink].add(event_id)

    def _refusing_poison(self, sink: str, respond: Responder) -> Responder:
        def answer(request: Recorded) -> Reply:
            if request.path != _DATA_PATHS[sink]:
                return respond(request)
            kind = self._modes.get(sink)
            if kind is None and any(i.encode() in request.body for i in self.poisoned[sink]):
                kind = "poison_event"
            if kind is None:
                return respond(request)
            with self._hits_lock:
                self._hits[f"{kind}:{sink}"] += 1
            return self._reply(sink, kind)

        return answer

    def rotate_file(self, settle: float = 0.2, limit: float = 3.0) -> bool:
        """Rotate the file sink's output as logrotate does without copytruncate: rename it, then
        (once writes to it stopped) compress it away: its bytes move to `rotated`, the inode goes.
        False when there was no file to rotate."""
        self.rotated.mkdir(exist_ok=True)
        part = self.file.with_name(f"{self.file.name}.1")
        try:
            self.file.rename(part)
        except FileNotFoundError:
            return False
        deadline, size = time.monotonic() + limit, -1
        while time.monotonic() < deadline and part.stat().st_size != size:
            size = part.stat().st_size
            time.sleep(settle)  # bounded: waits for a write in progress to end
        archive = self.rotated / f"{len(list(self.rotated.iterdir())):04d}.jsonl"
        archive.write_bytes(part.read_bytes())
        part.unlink()
        return True

    def progress(self) -> int:
        """A number that grows whenever a sink delivers something (cheap: called per request)."""
        try:
            size = os.stat(self.file).st_size
        except OSError:
            size = 0
        return size + sum(len(self._http(sink).requests) for sink in _DATA_PATHS)

    @staticmethod
    def _reply(sink: str, kind: str) -> Reply:
        if kind in ("reset", "dropped_answer"):
            return Reply(drop=True)
        if kind == "trickle":
            return Reply(200, b"ok" * 64, trickle=TRICKLE[0], trickle_for=TRICKLE[1])
        if kind in ("refuse", "poison_event"):
            return _refusal(sink, 400 if kind == "refuse" else 500)
        if kind == "stop":
            return Reply(503, b"maintenance", {"retry-after": "120"})
        if sink == "hec":
            return hec(503, 9, "Server is busy")
        if sink == "elastic":
            return es_error(
                503, "unavailable_shards_exception", "chaos: primary shard is not active"
            )
        return Reply(503, b"<html><body>503 Service Unavailable</body></html>")

    def lose_hec_acks(self, times: int) -> None:
        """HEC's next `times` acknowledged requests vanish (never indexed, never acknowledged)."""
        self._lost_mark = len(self.hec.lost)
        self.hec.lose_next_acks(times)

    def disarm(self) -> Counter[str]:
        """Stop every scripted fault; how many replies each kind really served this round."""
        fired: Counter[str] = Counter()
        for key, gate in self._gates:
            fired[key] += gate.disarm()
        self._gates.clear()
        with self.hec._lock:  # losses that did not happen must not leak into the next round
            self.hec._lose = 0
        fired["ack_lost:hec"] = len(self.hec.lost) - self._lost_mark
        self._lost_mark = len(self.hec.lost)
        proxy = self.syslog_proxy
        proxy.disarm()
        fired["stall:syslog"] = proxy.stalled - self._proxy_marks[0]
        fired["close:syslog"] = proxy.closed_by_peer - self._proxy_marks[1]
        self._proxy_marks = (proxy.stalled, proxy.closed_by_peer)
        proxy.drop_stalled()  # what the wedged daemon held is gone
        self._modes.clear()
        with self._hits_lock:
            fired.update(self._hits)
            self._hits.clear()
        for sink in _DATA_PATHS:  # gates left over must not delay the next round's
            self._http(sink).clear_script()
        return +fired

    def set_hec_ack(self, on: bool) -> None:
        self.hec_token.ack = on

    # -- configuration and results ---------------------------------------------------------
    def sinks_toml(self, *, hec_ack: bool) -> str:
        tables = [
            f'type = "file"\nname = "file"\npath = "{self.file}"\nformat = "raw"\n',
            f'type = "webhook"\nname = "webhook"\nurl = "{self.webhook.receiver.url}/in"\n'
            'secret_env = "CHAOS_WEBHOOK_SECRET"\ncompression = "gzip"\ntimeout = "2s"\n',
            f'type = "splunk_hec"\nname = "hec"\nurl = "{self.hec.receiver.url}"\n'
            f'token_env = "CHAOS_HEC_TOKEN"\nformat = "raw"\nindexer_ack = {str(hec_ack).lower()}\n'
            'ack_timeout = "1s"\nack_poll_interval = "50ms"\nack_max_resends = 1\ntimeout = "2s"\n',
            f'type = "elasticsearch"\nname = "elastic"\nurl = "{self.elastic.url}"\n'
            'api_key_env = "CHAOS_ES_API_KEY"\nformat = "ecs"\ntimeout = "2s"\n',
        ]
        if self.rsyslog is not None:
            tables.insert(
                1,
                f'type = "syslog"\nname = "syslog"\nhost = "127.0.0.1"\nport = {self.syslog_proxy.port}\n'
                'transport = "tcp"\nformat = "rfc5424"\nbody = "json"\ntimeout = "2s"\n',
            )
        return "".join(f"[[sinks]]\n{t}{_SINK_RETRY}\n" for t in tables)

    def received(self, sink: str) -> Received:
        if sink == "file":
            parts = sorted(self.rotated.glob("*.jsonl")) if self.rotated.exists() else []
            found = [_file_ids(path) for path in [*parts, self.file]]
            return Received([i for f in found for i in f.ids], sum(f.unreadable for f in found))
        if sink == "syslog" and self.rsyslog is not None:
            return _syslog_ids(self.rsyslog)
        if sink == "webhook":
            return Received(self.webhook.ids())
        if sink == "hec":
            return Received(self.hec.event_ids())
        return Received(list(self.elastic.created))


def _refusal(sink: str, status: int) -> Reply:
    """A whole-request refusal (400) or server error (500) in the receiver's own shape."""
    if sink == "hec":
        return hec(status, 6, "Invalid data format") if status == 400 else hec(500, 8, "error")
    if sink == "elastic":
        kind = "illegal_argument_exception" if status == 400 else "exception"
        return es_error(status, kind, "chaos: refused")
    return Reply(status, b"refused" if status == 400 else b"internal error")


def _file_ids(path: Path) -> Received:
    ids, bad = [], 0
    lines = path.read_bytes().split(b"\n") if path.exists() else []
    for line in filter(None, lines):
        try:
            ids.append(document_id(json.loads(line)) or _no_id())
        except (ValueError, KeyError, TypeError):
            bad += 1
    return Received(ids, bad)


def _no_id() -> str:
    raise KeyError("id")  # counted as unreadable


def _syslog_ids(server: Rsyslog) -> Received:
    server.sync()
    ids, bad = [], 0
    text = server.output.read_text(encoding="utf-8") if server.output.exists() else ""
    for line in filter(None, text.split("\n")):  # not splitlines(): U+2028 may appear raw
        try:
            record = Record.from_line(line)
            if record.app_name != MARKER_APP:  # the sync barrier's own marker
                ids.append(document_id(record.body()) or _no_id())
        except (ValueError, KeyError, TypeError):
            bad += 1
    return Received(ids, bad)


@dataclass(frozen=True)
class SinkResult:
    """One sink's content against the ground truth."""

    received: int
    missing: int
    duplicates: int
    dead_lettered: int
    unexpected: int  # ids the emulator never served
    unreadable: int
    ratio: float  # duplicates / events
    missing_ids: tuple[str, ...] = ()

    @classmethod
    def compare(
        cls, truth: list[str], received: Received, dead: set[str], poisoned: set[str]
    ) -> SinkResult:
        """Only events the receiver itself poisoned may be dead letters instead of delivered:
        anything else dead-lettered (a receiver refusing everything) counts as missing."""
        counts = Counter(received.ids)
        wanted = set(truth)
        missing = sorted(wanted - counts.keys() - (dead & poisoned))
        duplicates = sum(counts.values()) - len(counts)
        return cls(
            received=sum(counts.values()),
            missing=len(missing),
            duplicates=duplicates,
            dead_lettered=len(dead & wanted),
            unexpected=len(counts.keys() - wanted),
            unreadable=received.unreadable,
            ratio=duplicates / max(len(truth), 1),
            missing_ids=tuple(missing[:5]),
        )


def dead_letters(path: Path) -> set[str]:
    """Event ids in a sink's dead-letter file (handled, not lost: counted apart)."""
    if not path.exists():
        return set()
    ids = set()
    for line in path.read_bytes().split(b"\n"):  # not splitlines(): U+2028 may appear raw
        try:
            ids.add(str(json.loads(line)["event_id"]))
        except (ValueError, KeyError, TypeError):
            continue  # a torn last line (a kill mid-write): that event is not a dead letter
    return ids


def sink_rows(results: dict[str, SinkResult]) -> list[str]:
    """The per-sink table: received, missing, duplicates and where the rest went."""
    head = (
        "sink",
        "received",
        "missing",
        "dups",
        "dup ratio",
        "dead-let",
        "unexpected",
        "unreadable",
    )
    rows = ["{:<9}{:>9}{:>9}{:>7}{:>11}{:>10}{:>12}{:>12}".format(*head)]
    for name, r in results.items():
        cells = (r.received, r.missing, r.duplicates, f"{r.ratio:.4f}", r.dead_lettered)
        rows.append("{:<9}{:>9}{:>9}{:>7}{:>11}{:>10}".format(name, *cells))
        rows[-1] += f"{r.unexpected:>12}{r.unreadable:>12}"
        if r.missing:
            rows.append(f"  missing e.g. {', '.join(r.missing_ids)}")
    return rows
