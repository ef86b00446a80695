"""Datadog Logs sink (`type = "datadog"`)."""
