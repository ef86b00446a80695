"""The running process: wiring and the run loop, stop and reload signals, metrics, logs, durable files."""
