"""headroom: a reverse proxy for LLM APIs that shrinks tool outputs and keeps what it drops."""

__version__ = "0.1.0"
