"""The `shipper` command and its subcommands."""
