"""Which lines of a tool output matter: keyword tables and line-importance tiers.

``keywords`` holds the tables and the Aho-Corasick scanner; ``importance`` the tiers
(structural shapes, keywords) and the ``Tiered`` combinator the line compressors use.
"""

from headroom.signals.importance import (
    SUMMARY,
    TRACE,
    Importance,
    KeywordTier,
    LineImportanceDetector,
    StructuralTier,
    Tiered,
    default_detector,
)
from headroom.signals.keywords import (
    ERROR,
    IMPORTANCE,
    SECURITY,
    WARNING,
    Hit,
    KeywordDetector,
)

__all__ = [
    "ERROR",
    "IMPORTANCE",
    "SECURITY",
    "SUMMARY",
    "TRACE",
    "WARNING",
    "Hit",
    "Importance",
    "KeywordDetector",
    "KeywordTier",
    "LineImportanceDetector",
    "StructuralTier",
    "Tiered",
    "default_detector",
]
