"""shipper: export an OpenAI organization's audit log into a SIEM, at-least-once."""

__version__ = "0.1.0"
