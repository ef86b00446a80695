"""The sinks that ship with shipper; each registers under the `shipper.sinks` entry-point group."""
