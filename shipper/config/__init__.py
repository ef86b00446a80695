"""The configuration file: settings models, validation, durations, secrets in config, the starter file."""
