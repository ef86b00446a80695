"""The ChatGPT Enterprise Compliance Logs Platform source: log files listed per event type, each
downloaded through a signed URL and read as a stream of JSON records (docs/sources.md)."""
