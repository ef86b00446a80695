"""Loopback receivers: real servers on 127.0.0.1 that answer as each service documents."""
