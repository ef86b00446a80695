"""Syslog over UDP, TCP or TLS (`type = "syslog"`)."""
