"""Token estimate used for every compression decision and for ``tokens_saved``.

No network and no tokenizer download: a per-family characters-per-token ratio. Owned by the
pipeline work; callers only rely on ``estimate_tokens(text, model)``.
"""

from __future__ import annotations

_FAMILY_CHARS_PER_TOKEN: tuple[tuple[str, float], ...] = (
    ("claude", 3.5),
    ("gpt-", 4.0),
    ("o1", 4.0),
    ("o3", 4.0),
    ("o4", 4.0),
)
DEFAULT_CHARS_PER_TOKEN = 4.0


def chars_per_token(model: str) -> float:
    lowered = model.lower()
    for prefix, cpt in _FAMILY_CHARS_PER_TOKEN:
        if lowered.startswith(prefix):
            return cpt
    return DEFAULT_CHARS_PER_TOKEN


def estimate_tokens(text: str, model: str = "") -> int:
    if not text:
        return 0
    return max(1, int(len(text) / chars_per_token(model) + 0.5))
