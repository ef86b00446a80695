"""JSON-lines files (`type = "file"`)."""
