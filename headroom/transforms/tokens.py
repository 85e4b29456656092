"""Token counts for every compression decision and for ``tokens_saved``.

Two tiers, and nothing is ever downloaded:

* ``estimate_tokens`` — the estimator every decision uses. A plain ``chars / 4`` is far off
  for the content we compress: compact JSON runs near 2.7 characters per token (quotes,
  colons and commas are tokens of their own) while English prose runs near 4.3. So the text
  is mapped byte-wise to six classes with one ``bytes.translate`` and each class is counted
  with ``bytes.count`` — all in C, a few hundred MB/s — and the counts are weighted by what a
  BPE tokenizer roughly spends on each class (a letter about a fifth of a token, a digit a
  third since digits merge in groups of three, a punctuation byte more than half, a space a
  quarter because it usually merges into the next word). A per-family factor then scales
  the sum. The weights were fitted by hand to known cl100k splits of JSON rows, prose, code
  and log lines; they are estimates, not measurements (no tokenizer is installed here).
* ``count_tokens`` — exact when ``tiktoken`` is importable *and* the encoding file is already
  in its local cache; otherwise the estimate. Checking the cache first is what keeps
  tiktoken from fetching the file at run time.
"""

from __future__ import annotations

import threading
from functools import lru_cache
from typing import Any

from headroom.signals.scans import remembered


def _class_table() -> bytes:
    table = bytearray(256)
    for i in range(256):
        ch = chr(i)
        if i >= 128:
            table[i] = ord("u")  # a byte of a non-ASCII character
        elif ch.isalpha():
            table[i] = ord("a")
        elif ch.isdigit():
            table[i] = ord("0")
        elif ch in " \t\r\f\v":
            table[i] = ord(" ")
        elif ch == "\n":
            table[i] = ord("\n")
        else:
            table[i] = ord(".")
    return bytes(table)


_CLASSES = _class_table()
# Tokens spent per byte of each class (cl100k-like).
_W_LETTER = 0.22
_W_DIGIT = 0.34
_W_SPACE = 0.25
_W_PUNCT = 0.6
_W_NEWLINE = 0.5
_W_NON_ASCII = 0.4

# Model family → scale against the cl100k-like weights. First matching prefix wins.
_FAMILY_SCALE: tuple[tuple[str, float], ...] = (
    ("claude", 1.1),  # Anthropic's tokenizer spends somewhat more tokens on the same text
    ("gpt-4o", 0.95),  # o200k family
    ("gpt-4.1", 0.95),
    ("gpt-5", 0.95),
    ("o1", 0.95),
    ("o3", 0.95),
    ("o4", 0.95),
    ("gpt-4", 1.0),  # cl100k family
    ("gpt-3.5", 1.0),
)
DEFAULT_SCALE = 1.0

# Which tiktoken encoding an exact count would use, by family prefix.
_TIKTOKEN_ENCODING: tuple[tuple[str, str], ...] = (
    ("gpt-4o", "o200k_base"),
    ("gpt-4.1", "o200k_base"),
    ("gpt-5", "o200k_base"),
    ("o1", "o200k_base"),
    ("o3", "o200k_base"),
    ("o4", "o200k_base"),
    ("gpt-4", "cl100k_base"),
    ("gpt-3.5", "cl100k_base"),
)


def family_scale(model: str) -> float:
    lowered = model.lower()
    for prefix, scale in _FAMILY_SCALE:
        if lowered.startswith(prefix):
            return scale
    return DEFAULT_SCALE


def chars_per_token(model: str) -> float:
    """Rough characters per token of English-like text for ``model`` (for sizing, not counting)."""
    return 4.0 / family_scale(model)


def estimate_tokens(text: str, model: str = "") -> int:
    """Estimated tokens of ``text`` for ``model``'s family; 0 only for the empty string."""
    if not text:
        return 0
    raw = remembered("tokens", text, _raw_tokens)  # one scan per pipeline call
    return max(1, int(raw * family_scale(model) + 0.5))


def _raw_tokens(text: str) -> float:
    classes = text.encode("utf-8", "surrogatepass").translate(_CLASSES)
    letters, digits = classes.count(b"a"), classes.count(b"0")
    spaces, newlines, non_ascii = classes.count(b" "), classes.count(b"\n"), classes.count(b"u")
    # every byte is in one of the six classes: the last count is what the others leave
    punct = len(classes) - letters - digits - spaces - newlines - non_ascii
    raw = (
        letters * _W_LETTER
        + digits * _W_DIGIT
        + spaces * _W_SPACE
        + punct * _W_PUNCT
        + newlines * _W_NEWLINE
        + non_ascii * _W_NON_ASCII
    )
    return raw


_OFFLINE_LOCK = threading.Lock()


class _NoNetwork(Exception):
    pass


def _refuse_fetch(blobpath: str) -> bytes:
    raise _NoNetwork(blobpath)


@lru_cache(maxsize=8)
def _offline_encoding(name: str) -> Any | None:
    """The tiktoken encoding ``name`` if its file is already cached locally, else None.

    tiktoken reads its cache first and fetches only on a miss, through the module-level
    ``tiktoken.load.read_file``; that one function is swapped for one that refuses while the
    encoding is built, so a miss ends here instead of on the network.
    """
    try:
        import tiktoken
        import tiktoken.load as tiktoken_load
    except ImportError:
        return None
    with _OFFLINE_LOCK:
        original = tiktoken_load.read_file
        tiktoken_load.read_file = _refuse_fetch
        try:
            return tiktoken.get_encoding(name)
        except Exception:  # not cached, or a corrupt cache file: estimate instead
            return None
        finally:
            tiktoken_load.read_file = original


def exact_encoding_name(model: str) -> str | None:
    lowered = model.lower()
    for prefix, name in _TIKTOKEN_ENCODING:
        if lowered.startswith(prefix):
            return name
    return None


def count_tokens(text: str, model: str = "") -> int:
    """Exact count when an offline tokenizer for ``model`` is available, else the estimate."""
    name = exact_encoding_name(model)
    encoding = _offline_encoding(name) if name else None
    if encoding is None:
        return estimate_tokens(text, model)
    return len(encoding.encode(text, disallowed_special=()))
