"""The syslog sink: RFC 5424 or RFC 3164 over UDP, TCP or TLS.

What "delivered" means here (there is no application-level acknowledgement in syslog):

- TCP/TLS: `flush()` returns once every frame of the window (everything sent since the last
  flush) was written on the one connection it verifies, the receiver had not closed it and, on
  Linux, the receiving host's TCP stack acknowledged every byte (elsewhere: the bytes were handed
  to the local kernel). When a connection is replaced inside a window (a write timed out, the
  receiver closed it), the new one first carries the window again from its start, so what the
  abandoned one held is duplicated, never lost. A connection found closed at `flush()` fails the
  flush, so the window is sent again. Bytes the receiving host acknowledged but the syslog daemon
  had not yet processed are lost if it dies at that moment; RELP, which would close that gap, is
  not supported.
- UDP: best effort. A datagram handed to the kernel counts as delivered; the network or the
  receiver may drop it and nobody will know. An event whose message exceeds `udp_max_bytes` is
  never truncated: it is rejected (dead-letter file, with the reason).
"""

from __future__ import annotations

import functools
import os
import socket
import ssl
from collections.abc import Callable, Sequence
from typing import Any, ClassVar, Literal

import orjson
from pydantic import Field, field_validator, model_validator
from tenacity import RetryCallState

from shipper.sink_api import (
    AuditEvent,
    Duration,
    Rejection,
    RetryPolicy,
    SinkContext,
    SinkFatalError,
    SinkRetryableError,
    SinkSettings,
    TlsSettings,
    batches,
    client_context,
    log_retry,
    pause,
    renderer,
    retrying,
    sink_logger,
)
from sinks.syslog.format import (
    DEFAULT_SD_ID,
    Framing,
    Header,
    HeaderStyle,
    datagram,
    facility_number,
    frame,
)
from sinks.syslog.transport import (
    StreamConnection,
    closed_reason,
    describe,
    resolve,
    sendto_all,
    unacked_bytes,
)

__all__ = [
    "SyslogPlugin",
    "SyslogSink",
    "SyslogSinkSettings",
    "closed_reason",
    "default_hostname",
    "plugin",
    "unacked_bytes",
]

Transport = Literal["udp", "tcp", "tls"]
UDP_MAX_PAYLOAD = 65507
_DEFAULT_PORTS: dict[str, int] = {"udp": 514, "tcp": 514, "tls": 6514}


class SyslogSinkSettings(SinkSettings, TlsSettings):
    """`[[sinks]] type = "syslog"`."""

    type: Literal["syslog"] = Field(description="Which sink: syslog.")
    host: str = Field(min_length=1, description="Receiver host name or address.")
    port: int | None = Field(
        default=None,
        ge=1,
        le=65535,
        description="Receiver port; default 514 (udp, tcp), 6514 (tls).",
    )
    transport: Transport = Field(
        default="tcp", description="udp (best effort), tcp, or tls (RFC 5425)."
    )
    format: HeaderStyle = Field(
        default="rfc5424", description="Syslog header style: rfc5424 or rfc3164 (BSD)."
    )
    body: Literal["json", "cef"] = Field(
        default="json", description="Message body: a JSON document (see body_format) or CEF."
    )
    body_format: Literal["raw", "normalized", "ecs", "ocsf"] = Field(
        default="normalized", description="Shape of the JSON body when body = json."
    )
    framing: Framing = Field(
        default="octet-counting",
        description="TCP/TLS framing: octet-counting (RFC 6587/5425) or lf; ignored for udp.",
    )
    app_name: str = Field(
        default="shipper",
        pattern=r"^[!-~]{1,48}$",
        description="APP-NAME (RFC 5424) or TAG (RFC 3164).",
    )
    facility: int = Field(
        default=16, description="Facility name (local0..local7, auth, authpriv, ...) or 0..23."
    )
    hostname: str | None = Field(
        default=None, description="HOSTNAME field; default this machine's FQDN (or '-')."
    )
    sd_id: str = Field(
        default=DEFAULT_SD_ID,
        pattern=r"^[A-Za-z0-9_.-]+@[0-9]+$",
        max_length=32,
        description="SD-ID of the structured-data element (name@private-enterprise-number).",
    )
    udp_max_bytes: int = Field(
        default=8192,
        ge=480,
        le=UDP_MAX_PAYLOAD,
        description="Largest UDP datagram; bigger events are dead-lettered, never truncated.",
    )
    timeout: Duration = Field(
        default=10.0, description="Connect, write and acknowledgement timeout."
    )
    tls_server_name: str | None = Field(
        default=None, description="Name to verify in the receiver's certificate; default host."
    )

    allowed_formats: ClassVar[tuple[str, ...]] = ("rfc5424", "rfc3164")

    @field_validator("facility", mode="before")
    @classmethod
    def _facility(cls, value: Any) -> int:
        return facility_number(value)

    @model_validator(mode="after")
    def _tls_keys_need_tls(self) -> SyslogSinkSettings:
        tls_keys = ("ca_file", "cert_file", "key_file", "tls_server_name")
        if self.transport != "tls" and (stray := [k for k in tls_keys if getattr(self, k)]):
            verb = "applies" if len(stray) == 1 else "apply"
            raise ValueError(
                f"{', '.join(stray)} {verb} only to transport = 'tls' (not {self.transport!r})"
            )
        return self

    @property
    def effective_port(self) -> int:
        return self.port or _DEFAULT_PORTS[self.transport]


def default_hostname() -> str:
    """This machine's FQDN, its plain host name when the FQDN is only localhost, else '-'."""
    name = socket.getfqdn()
    if not name or name.startswith("localhost"):
        name = socket.gethostname()
    return name or "-"


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, OSError) and not isinstance(exc, ssl.SSLCertVerificationError)


class SyslogSink:
    """Sends each batch as one write of frames on a persistent connection (or one datagram each)."""

    def __init__(
        self,
        settings: SyslogSinkSettings,
        *,
        sleep: Callable[[float], Any] = pause,
        hostname: Callable[[], str] = default_hostname,
    ) -> None:
        self.name = settings.name
        self._log = sink_logger(settings.name)
        self.settings = settings
        self._sleep = sleep
        self._hostname = hostname
        self._policy = RetryPolicy(
            max_attempts=settings.retry_max_attempts, max_time=settings.retry_max_time
        )
        self._address = (settings.host, settings.effective_port)
        self._stream = StreamConnection(
            settings.name,
            self._address,
            timeout=settings.timeout,
            server_name=settings.tls_server_name or settings.host,
        )
        self._where = f"{settings.transport}://{settings.host}:{settings.effective_port}"
        self._render: Callable[[AuditEvent], bytes] | None = None
        self._header: Header | None = None

    # --- the Sink protocol ---------------------------------------------------------------

    def open(self) -> None:
        s = self.settings
        self._render = renderer("cef" if s.body == "cef" else s.body_format)
        self._header = Header.create(
            s.format,
            facility=s.facility,
            hostname=s.hostname or self._hostname(),
            app_name=s.app_name,
            procid=str(os.getpid()),
            sd_id=s.sd_id,
        )
        if s.transport == "tls":
            self._stream.tls = self._tls_context()

    def send(self, batch: Sequence[AuditEvent]) -> Sequence[Rejection]:
        messages, rejections = self._encode(batch)
        if self.settings.transport == "udp":
            return rejections + self._send_datagrams(messages)
        events = [event for event, _ in messages]
        frames = [frame(message, self.settings.framing) for _, message in messages]
        s = self.settings
        try:
            for start, end in batches(
                events, frames, max_events=s.batch_max_events, max_bytes=s.batch_max_bytes
            ):
                payload = b"".join(frames[start:end])
                self._retry("write to", functools.partial(self._stream.write, payload))
        except (SinkRetryableError, SinkFatalError):
            self._stream.abandon()  # the window fails and is sent again, whole
            raise
        return rejections

    def flush(self) -> None:
        if (problem := self._stream.confirm()) is not None:
            if self._stream.tls is not None and self.settings.cert_file is None:
                problem += " (if it requires a client certificate, set cert_file and key_file)"
            raise SinkRetryableError(
                self.name, f"{self._where}: {problem}; the whole window will be sent again"
            )

    def close(self) -> None:
        self._stream.abandon()

    def probe(self) -> str:
        if self._render is None:
            self.open()
        once = RetryPolicy(max_attempts=1)
        if self.settings.transport == "udp":
            found: list[str] = []
            self._retry(
                "resolve the host of", lambda: found.append(resolve(self._address)[1][0]), once
            )
            return f"udp: {self.settings.host} resolves to {found[0]}; no handshake possible"
        self._retry("connect to", self._stream.connection, once)
        verdict = f"{self._where}: connected"
        if self._stream.tls is not None:
            verdict += (
                f" ({self._stream.tls_version}, certificate verified: {self.settings.tls_verify})"
            )
        self._stream.disconnect()
        return verdict

    # --- encoding ------------------------------------------------------------------------

    def _encode(
        self, batch: Sequence[AuditEvent]
    ) -> tuple[list[tuple[AuditEvent, bytes]], list[Rejection]]:
        if self._render is None or self._header is None:
            raise RuntimeError("open() must be called before send()")
        encoded: list[tuple[AuditEvent, bytes]] = []
        rejections: list[Rejection] = []
        for event in batch:
            try:
                encoded.append((event, self._header.message(event, self._render(event))))
            except (ValueError, OverflowError, orjson.JSONEncodeError) as exc:
                rejections.append(Rejection(event, f"cannot render as syslog: {exc}"))
        return encoded, rejections

    # --- UDP -----------------------------------------------------------------------------

    def _send_datagrams(self, messages: list[tuple[AuditEvent, bytes]]) -> list[Rejection]:
        limit = self.settings.udp_max_bytes
        payloads: list[bytes] = []
        rejections: list[Rejection] = []
        for event, message in messages:
            payload = datagram(message)
            if len(payload) > limit:
                reason = (
                    f"syslog message is {len(payload)} bytes, over udp_max_bytes = {limit}; "
                    "UDP cannot carry it whole (use transport = 'tcp' or 'tls')"
                )
                rejections.append(Rejection(event, reason))
            else:
                payloads.append(payload)
        if payloads:
            timeout = self.settings.timeout
            self._retry("send datagrams to", lambda: sendto_all(self._address, payloads, timeout))
        return rejections

    # --- TLS ----------------------------------------------------------------------------

    def _tls_context(self) -> ssl.SSLContext:
        if not self.settings.tls_verify:
            self._log.warning("tls_verification_disabled")
        try:
            return client_context(self.settings)
        except (OSError, ssl.SSLError) as exc:
            raise SinkFatalError(self.name, f"cannot load TLS files: {describe(exc)}") from None

    # --- retries -------------------------------------------------------------------------

    def _retry(
        self, action: str, call: Callable[[], object], policy: RetryPolicy | None = None
    ) -> None:
        def before_sleep(state: RetryCallState) -> None:
            exc = state.outcome.exception() if state.outcome else None
            reason = f"cannot {action} {self._where}: {describe(exc)}" if exc else None
            log_retry(self._log, state, reason)

        try:
            for attempt in retrying(
                policy or self._policy,
                retry_on=_retryable,
                sleep=self._sleep,
                before_sleep=before_sleep,
            ):
                with attempt:
                    call()
        except ssl.SSLCertVerificationError as exc:
            raise SinkFatalError(
                self.name,
                f"{self._where}: the receiver's certificate was refused ({exc.verify_message}); "
                "set ca_file to the CA that signed it",
            ) from None
        except OSError as exc:
            raise SinkRetryableError(
                self.name, f"cannot {action} {self._where}: {describe(exc)}"
            ) from None


class SyslogPlugin:
    """The `shipper.sinks` entry point `syslog`."""

    settings_model: type[SinkSettings] = SyslogSinkSettings

    def create(self, settings: Any, context: SinkContext) -> SyslogSink:
        return SyslogSink(settings)


plugin = SyslogPlugin()
