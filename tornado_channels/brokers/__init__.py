"""Brokers: the transport every publish goes through (the interface, in memory, over Redis)."""
