"""The example package's own tests run only once it is installed (see tests/contract/test_example_sink.py)."""

collect_ignore = ["tests", "shipper_example_sink"]
