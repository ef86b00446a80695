"""The event model: an audit-log event as received and its normalized reading."""
