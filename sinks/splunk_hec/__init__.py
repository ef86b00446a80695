"""Splunk HTTP Event Collector (`type = "splunk_hec"`)."""
