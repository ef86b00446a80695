"""Sources: where events come from. Each source yields closed time windows of events, completely."""
