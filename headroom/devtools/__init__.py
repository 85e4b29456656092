"""Checks developers run on the code itself (not imported by the proxy)."""
