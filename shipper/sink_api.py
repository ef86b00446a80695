"""The sink author's API: everything a sink may import from shipper, and nothing else.

A sink (the built-in ones in `sinks/`, or a third party's package) imports only this module; the
test `tests/test_layering.py` reads every sink's imports from its syntax tree and fails on any
other `shipper` module, and `tests/test_public_api.py` pins `__all__`, so what is listed here is
a promise: a name leaves only with a deprecation. The contract itself is documented in
`shipper.pipeline.sink`; the contract suite a sink must pass ships as
`shipper.testing.contract.suite` (see docs/sink-authors.md).
"""

from __future__ import annotations

from shipper.config.durations import Duration
from shipper.config.secret_ref import SecretRef, sink_section
from shipper.errors import SinkFatalError, SinkRetryableError
from shipper.http.isolate import Evidence, Item, Refused, deliver_in_batches
from shipper.http.sink_client import (
    HttpSinkSettings,
    ReceiverFailedError,
    auth_headers,
    describe,
    encode_body,
    make_client,
    policy_of,
    send_with_retries,
)
from shipper.model.event import AuditEvent, JsonDict, outcome_of, rfc3339_ms
from shipper.pipeline.sink import (
    Progress,
    Rejection,
    Sink,
    SinkContext,
    SinkPlugin,
    SinkSettings,
    batches,
)
from shipper.render import (
    JSON_FORMATS,
    DocumentRenderer,
    Renderer,
    document_renderer,
    occurred_ms,
    renderer,
    splunk_sourcetype,
)
from shipper.retry import (
    RETRYABLE_HTTP_STATUSES,
    RETRYABLE_STATUSES,
    SERVER_ERRORS,
    RetryPolicy,
    is_retryable,
    log_retry,
    retryable_statuses,
    retrying,
)
from shipper.runtime.durable_files import open_append, write_all
from shipper.runtime.logs import sink_logger
from shipper.runtime.signals import reopen_generation
from shipper.runtime.stopping import pause
from shipper.secrets import SecretUnavailableError, read_secret, redact, remember
from shipper.tls import TlsSettings, client_context

__all__ = [
    "JSON_FORMATS",
    "RETRYABLE_HTTP_STATUSES",
    "RETRYABLE_STATUSES",
    "SERVER_ERRORS",
    "AuditEvent",
    "DocumentRenderer",
    "Duration",
    "Evidence",
    "HttpSinkSettings",
    "Item",
    "JsonDict",
    "Progress",
    "ReceiverFailedError",
    "Refused",
    "Rejection",
    "Renderer",
    "RetryPolicy",
    "SecretRef",
    "SecretUnavailableError",
    "Sink",
    "SinkContext",
    "SinkFatalError",
    "SinkPlugin",
    "SinkRetryableError",
    "SinkSettings",
    "TlsSettings",
    "auth_headers",
    "batches",
    "client_context",
    "deliver_in_batches",
    "describe",
    "document_renderer",
    "encode_body",
    "is_retryable",
    "log_retry",
    "make_client",
    "occurred_ms",
    "open_append",
    "outcome_of",
    "pause",
    "policy_of",
    "read_secret",
    "redact",
    "remember",
    "renderer",
    "reopen_generation",
    "retryable_statuses",
    "retrying",
    "rfc3339_ms",
    "send_with_retries",
    "sink_logger",
    "sink_section",
    "splunk_sourcetype",
    "write_all",
]
