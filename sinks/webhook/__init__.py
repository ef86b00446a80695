"""Signed HTTPS webhooks (`type = "webhook"`)."""
