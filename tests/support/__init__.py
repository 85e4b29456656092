"""Helpers shared by tests and benchmarks: real servers started on ephemeral ports."""
