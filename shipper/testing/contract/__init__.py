"""The sink contract suite (`suite.SinkContractSuite`), the harness a sink provides for it (`harness.SinkHarness`), and the event sets it sends (`events`)."""
