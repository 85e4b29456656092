"""Which dropped lines a retrieval wanted: the words the model used that only they carried.

After a retrieval the proxy has three texts: the original, what the model had seen of it
(the compressed output in the request it answered) and what the model said around the
retrieval (the text of the turn that asked, and of the answer that followed). A dropped
line is a line of the original that the seen text does not hold. A word is evidence when
the model's words and a dropped line share it and it is rare in the original (in at most
``RARE_SHARE`` of its lines): a word found everywhere says nothing about what it went back
for. A word the kept lines also hold still counts (a hunk's header kept, its body dropped:
the function's name is in both).

Deterministic, bounded (``MAX_WORDS`` per retrieval, the said text cut at
``MAX_SAID_CHARS``), and no model download: plain word sets.
"""

from __future__ import annotations

from headroom.transforms.terms import query_terms

RARE_SHARE = 0.05
MAX_WORDS = 8
MAX_SAID_CHARS = 16_000
_MIN_LINES_FOR_SHARE = 20


def wanted_terms(original: str, seen: str, said: str) -> list[str]:
    """Words of dropped lines that the model's own words name, rarest first."""
    words = query_terms(said[:MAX_SAID_CHARS], limit=200)
    if not words:
        return []
    seen_lines = set(seen.splitlines())
    lines = original.splitlines()
    dropped = [line.lower() for line in lines if line not in seen_lines]
    if not dropped:
        return []
    cap = max(1, int(len(lines) * RARE_SHARE)) if len(lines) >= _MIN_LINES_FOR_SHARE else 1
    scored: list[tuple[int, str]] = []
    for word in words:
        hits = sum(1 for line in dropped if word in line)
        if 0 < hits <= cap:
            scored.append((hits, word))
    scored.sort()
    return [word for _, word in scored[:MAX_WORDS]]
