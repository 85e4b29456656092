"""Seeded generators of realistic agent tool outputs, each with the items that must survive.

``corpus(seed)`` returns the standard set used by the tests, the parity fixtures and the
bench; ``scaled(name, target_bytes, seed)`` grows one generator to a given size (bench).
"""

from tests.corpus.samples import GENERATORS, Sample, corpus, scaled

__all__ = ["GENERATORS", "Sample", "corpus", "scaled"]
