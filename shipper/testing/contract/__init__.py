"""The sink contract suite: the promises every sink keeps, and a harness per built-in sink."""
