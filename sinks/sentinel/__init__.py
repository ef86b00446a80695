"""Microsoft Sentinel through the Azure Monitor Logs Ingestion API (`type = "sentinel"`)."""
