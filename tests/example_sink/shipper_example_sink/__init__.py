"""An example shipper sink: one JSON line per event, appended to a file."""
