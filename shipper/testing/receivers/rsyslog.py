"""A real rsyslogd on loopback for the syslog sink's tests.

`Rsyslog` writes a config into a temporary directory and runs `rsyslogd -n -f CONF -i PIDFILE`
as a child process. It loads only imudp, imtcp and mmpstrucdata (never /dev/log, imjournal or
/var/run), listens on 127.0.0.1 for UDP, TCP (octet-counted and LF framing on one port) and,
when given certificates, TLS. Every received message becomes one JSON line holding the fields
rsyslog parsed (PRI, timestamp, hostname, app-name, procid, msgid, structured data, msg), so
tests check what rsyslog understood, field by field.

rsyslog writes asynchronously: use `wait_for(count)` or `sync()` (a barrier: every byte the
kernel holds for rsyslog has been read, and a marker sent afterwards has been written).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, NoReturn

import pytest

TlsAuthMode = Literal["anon", "x509/certvalid"]
MARKER_APP = "rsyslog-fixture"
DEADLINE = 15.0
_POLL = 0.02
# In rsyslog 8.2302 an anon-mode gtls listener needs this for TLS 1.3 clients.
_GNUTLS_PRIORITY = "NORMAL:-VERS-ALL:+VERS-TLS1.3:+VERS-TLS1.2"

_SD_ELEMENT = re.compile(r'\[([^ \]]+)((?: [^ =\]"]+="(?:[^"\\]|\\.)*")*)\]')
_SD_PARAM = re.compile(r'([^ =\]"]+)="((?:[^"\\]|\\.)*)"')
_SD_ESCAPE = re.compile(r'\\(["\\\]])')

_TEMPLATE = """\
template(name="record" type="list" option.jsonf="on") {
  property(outname="pri" name="pri" format="jsonf")
  property(outname="facility" name="syslogfacility" format="jsonf")
  property(outname="severity" name="syslogseverity" format="jsonf")
  property(outname="timereported" name="timereported" dateFormat="rfc3339" format="jsonf")
  property(outname="hostname" name="hostname" format="jsonf")
  property(outname="app_name" name="app-name" format="jsonf")
  property(outname="procid" name="procid" format="jsonf")
  property(outname="msgid" name="msgid" format="jsonf")
  property(outname="structured_data" name="structured-data" format="jsonf")
  property(outname="msg" name="msg" format="jsonf")
  property(outname="inputname" name="inputname" format="jsonf")
  property(outname="parsed" name="$!" format="jsonf")
}
"""


def rsyslogd_path() -> str:
    """The rsyslogd binary, or skip (fail when SHIPPER_REQUIRE_RSYSLOG=1) when it is absent."""
    found = shutil.which("rsyslogd") or shutil.which("rsyslogd", path="/usr/sbin:/sbin")
    if found:
        return found
    _missing("rsyslogd is not installed (apt-get install rsyslog rsyslog-gnutls)")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("SHIPPER_REQUIRE_RSYSLOG") == "1":
        pytest.fail(f"{reason}, and SHIPPER_REQUIRE_RSYSLOG=1 requires it")
    pytest.skip(reason)


@dataclass(frozen=True, slots=True)
class TlsFiles:
    """PEM files for rsyslog's TLS listener."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    auth_mode: TlsAuthMode = "anon"


@dataclass(frozen=True, slots=True)
class Record:
    """One message as rsyslog parsed it."""

    pri: int
    facility: int
    severity: int
    timereported: str
    hostname: str
    app_name: str
    procid: str
    msgid: str
    structured_data: str
    msg: str
    inputname: str
    sd: dict[str, dict[str, str]]

    @classmethod
    def from_line(cls, line: str) -> Record:
        raw = json.loads(line)
        parsed = json.loads(raw["parsed"]) if raw["parsed"] else {}
        return cls(
            pri=int(raw["pri"]),
            facility=int(raw["facility"]),
            severity=int(raw["severity"]),
            timereported=raw["timereported"],
            hostname=raw["hostname"],
            app_name=raw["app_name"],
            procid=raw["procid"],
            msgid=raw["msgid"],
            structured_data=raw["structured_data"],
            msg=raw["msg"],
            inputname=raw["inputname"],
            sd=parsed.get("rfc5424-sd", {}),
        )

    def sd_params(self, sd_id: str) -> dict[str, str]:
        """One element of the structured data rsyslog delimited, unescaped per RFC 5424 6.3.3.

        (rsyslog's own mmpstrucdata keeps the backslash of an escaped `"` or `\\`.)
        """
        for element_id, params in _SD_ELEMENT.findall(self.structured_data):
            if element_id == sd_id:
                return {k: _SD_ESCAPE.sub(r"\1", v) for k, v in _SD_PARAM.findall(params)}
        raise KeyError(f"no SD element {sd_id!r} in {self.structured_data!r}")

    def body(self) -> Any:
        """The message body parsed as JSON (the BOM and the space rsyslog keeps stripped)."""
        return json.loads(self.msg.lstrip(" ").removeprefix("\ufeff"))


def _free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _udp_port_taken(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _accepts(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1.0):
            return True
    except OSError:
        return False


def _poll(condition: Callable[[], bool], what: str, timeout: float = DEADLINE) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"rsyslog fixture: {what} within {timeout}s")
        time.sleep(_POLL)


def _queued_bytes(table: str, ports: set[int]) -> int:
    """Bytes the kernel holds unread for local `ports` (Linux /proc/net); 0 where unavailable."""
    try:
        lines = Path(f"/proc/net/{table}").read_text().splitlines()[1:]
    except OSError:
        return 0
    total = 0
    for line in lines:
        fields = line.split()
        local_port = int(fields[1].rsplit(":", 1)[1], 16)
        if local_port in ports:
            total += int(fields[4].split(":")[1], 16)
    return total


class Rsyslog:
    """One rsyslogd child process; ports stay the same across `restart()`."""

    def __init__(
        self, workdir: Path, *, tls: TlsFiles | None = None, max_message_size: int = 256 * 1024
    ) -> None:
        self.workdir = workdir
        self.tls = tls
        self.max_message_size = max_message_size
        self.output = workdir / "received.jsonl"
        self.udp_port = _free_udp_port()
        self.tcp_port = 0
        self.tls_port = 0
        self._process: subprocess.Popen[bytes] | None = None
        workdir.mkdir(parents=True, exist_ok=True)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        binary = rsyslogd_path()
        conf = self.workdir / "rsyslog.conf"
        conf.write_text(self._config())
        for name in ("tcp.port", "tls.port", "rsyslogd.pid"):
            (self.workdir / name).unlink(missing_ok=True)
        with (self.workdir / "rsyslogd.stderr").open("ab") as stderr:
            self._process = subprocess.Popen(
                [binary, "-n", "-f", str(conf), "-i", str(self.workdir / "rsyslogd.pid")],
                stdin=subprocess.DEVNULL,
                stdout=stderr,
                stderr=stderr,
                env={**os.environ, "TZ": "UTC"},  # RFC 3164 timestamps carry no zone
            )
        try:
            self._await_listening()
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=DEADLINE)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=DEADLINE)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    @contextlib.contextmanager
    def down(self) -> Iterator[None]:
        """Inside the block rsyslog is stopped; it starts again (same ports) on exit."""
        self.stop()
        try:
            yield
        finally:
            self.start()

    def __enter__(self) -> Rsyslog:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what was received ---------------------------------------------------------------

    def records(self) -> list[Record]:
        """Every message written so far, oldest first, fixture markers left out."""
        if not self.output.exists():
            return []
        text = self.output.read_text(encoding="utf-8")
        # split("\n"), not splitlines(): JSON strings may hold U+2028 and friends raw.
        records = [Record.from_line(line) for line in text.split("\n") if line]
        return [r for r in records if r.app_name != MARKER_APP]

    def wait_for(self, count: int, timeout: float = DEADLINE) -> list[Record]:
        """Poll until at least `count` records are written; return them all."""
        _poll(lambda: len(self.records()) >= count, f"{count} records not written", timeout)
        return self.records()

    def sync(self, timeout: float = DEADLINE) -> list[Record]:
        """Barrier: all bytes queued for rsyslog are read and processed; return the records."""
        tcp_ports = {self.tcp_port, self.tls_port} - {0}
        _poll(
            lambda: _queued_bytes("tcp", tcp_ports) + _queued_bytes("udp", {self.udp_port}) == 0,
            "rsyslog did not drain its sockets",
            timeout,
        )
        token = uuid.uuid4().hex
        message = f"<13>1 - - {MARKER_APP} - sync - {token}".encode()
        with socket.create_connection(("127.0.0.1", self.tcp_port), timeout=timeout) as sock:
            sock.sendall(b"%d %s" % (len(message), message))
        _poll(lambda: token in self._text(), "the sync marker was not written", timeout)
        return self.records()

    def wait_for_diagnostic(self, text: str, timeout: float = DEADLINE) -> None:
        """Poll until rsyslogd has logged `text` about itself (a refused peer, say)."""
        _poll(lambda: text in self.diagnostics(), f"rsyslogd did not log {text!r}", timeout)

    def diagnostics(self) -> str:
        """rsyslogd's own messages and stderr, for assertion messages."""
        parts = [self.workdir / "rsyslogd.log", self.workdir / "rsyslogd.stderr"]
        return "\n".join(p.read_text(errors="replace") for p in parts if p.exists())

    # --- internals ------------------------------------------------------------------------

    def _text(self) -> str:
        return self.output.read_text(encoding="utf-8") if self.output.exists() else ""

    def _await_listening(self) -> None:
        def up() -> bool:
            if "could not load module 'lmnsd_gtls'" in self.diagnostics():
                _missing("rsyslog's TLS driver is not installed (apt-get install rsyslog-gnutls)")
            if self._process is None or self._process.poll() is not None:
                raise RuntimeError(f"rsyslogd exited at start:\n{self.diagnostics()}")
            return self._read_ports() and _udp_port_taken(self.udp_port)

        _poll(up, "rsyslogd is not listening")
        _poll(lambda: _accepts(self.tcp_port), "rsyslogd does not accept TCP connections")

    def _read_ports(self) -> bool:
        for attr, name in (("tcp_port", "tcp.port"), ("tls_port", "tls.port")):
            if attr == "tls_port" and self.tls is None:
                continue
            path = self.workdir / name
            if getattr(self, attr) == 0:
                text = path.read_text().strip() if path.exists() else ""
                if not text.isdigit():
                    return False
                setattr(self, attr, int(text))
        return True

    def _config(self) -> str:
        work = self.workdir
        lines = [
            f'global(workDirectory="{work}" maxMessageSize="{self.max_message_size}")',
            'main_queue(queue.workerThreads="1")',
            'module(load="imudp")',
            'module(load="imtcp")',
            'module(load="mmpstrucdata")',
            f'input(type="imudp" address="127.0.0.1" port="{self.udp_port}" '
            'rcvBufSize="4m" ruleset="received")',
            f'input(type="imtcp" address="127.0.0.1" port="{self.tcp_port}" '
            f'listenPortFileName="{work}/tcp.port" ruleset="received")',
        ]
        if self.tls is not None:
            lines.append(self._tls_input())
        lines += [
            _TEMPLATE,
            'ruleset(name="received") {',
            '  action(type="mmpstrucdata")',
            f'  action(type="omfile" file="{self.output}" template="record")',
            "}",
            f'action(type="omfile" file="{work}/rsyslogd.log")',
        ]
        return "\n".join(lines) + "\n"

    def _tls_input(self) -> str:
        assert self.tls is not None
        return (
            f'input(type="imtcp" address="127.0.0.1" port="{self.tls_port}" '
            f'listenPortFileName="{self.workdir}/tls.port" ruleset="received" '
            f'streamDriver.name="gtls" streamDriver.mode="1" '
            f'streamDriver.authMode="{self.tls.auth_mode}" '
            f'streamDriver.caFile="{self.tls.ca_file}" '
            f'streamDriver.certFile="{self.tls.cert_file}" '
            f'streamDriver.keyFile="{self.tls.key_file}" '
            f'gnutlsPriorityString="{_GNUTLS_PRIORITY}")'
        )
