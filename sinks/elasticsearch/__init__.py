"""Elasticsearch and OpenSearch `_bulk` (`type = "elasticsearch"`)."""
