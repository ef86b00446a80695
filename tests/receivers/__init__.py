"""Real local HTTP receivers that behave as the documented services do, for sink tests."""
