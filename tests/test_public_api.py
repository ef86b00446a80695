"""The sink author's API is pinned: adding or removing a name is a decision made here, on purpose."""

from __future__ import annotations

import shipper.sink_api

SINK_API = {
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
}


def test_the_sink_api_exports_exactly_the_pinned_names() -> None:
    """`__all__` is the promise; a change to it shows up as a diff of this set."""
    assert set(shipper.sink_api.__all__) == SINK_API


def test_every_exported_name_exists() -> None:
    """No name in `__all__` is a dangling promise."""
    missing = [name for name in shipper.sink_api.__all__ if not hasattr(shipper.sink_api, name)]
    assert missing == []


def test_the_module_exports_nothing_public_beyond_all() -> None:
    """A name imported into the module for convenience does not leak as unpinned API."""
    public = {n for n in vars(shipper.sink_api) if not n.startswith("_") and n != "annotations"}
    assert public == SINK_API
