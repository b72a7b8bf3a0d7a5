"""Small client programs that behave, or misbehave, on purpose, for the adapter tests."""
