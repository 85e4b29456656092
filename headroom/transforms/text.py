"""Prose: conservative, lossless in substance; declines rather than guess.

Prose has no structure to lean on, and a dropped sentence may be the one that matters, so
this compressor only removes repetition:

* a paragraph (blank-line separated block) repeated verbatim (modulo whitespace) later in
  the text is replaced by a note the second time and after;
* a long line repeated verbatim elsewhere is folded the same way (consecutive repeats into
  one note with a count);
* a run of blank lines becomes one blank line (whitespace only; no note).

Lines with an error keyword and lines of fenced code blocks are never dropped, even as
repeats (nor is a paragraph holding one). If the saving is below ``min_saving`` the text is
returned untouched. With a store the original is kept and the marker appended (positions of
the repeats are otherwise lost); without one the notes say in place what was folded, and
the content itself is still in the output once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from headroom.ccr.markers import lines_marker
from headroom.signals.importance import KeywordTier
from headroom.signals.keywords import ERROR
from headroom.transforms.base import CompressContext, CompressResult
from headroom.transforms.lines import already_compressed, finish, note, passthrough, split_lines
from headroom.transforms.tokens import estimate_tokens


@dataclass(frozen=True)
class TextConfig:
    min_lines: int = 8  # fewer lines: untouched
    min_repeat_chars: int = 40  # shorter repeated lines/paragraphs are left alone
    min_saving: float = 0.05  # decline below this token saving


_WS_RE = re.compile(r"\s+")


class TextCompressor:
    name = "text"

    def __init__(self, config: TextConfig | None = None) -> None:
        self.config = config or TextConfig()
        self._keywords = KeywordTier()

    def compress(self, text: str, ctx: CompressContext) -> CompressResult:
        lines = split_lines(text)
        if len(lines) < self.config.min_lines or already_compressed(text):
            return passthrough(text, ctx)
        protected = {
            i for i, imp in self._keywords.scan(text, "text").items() if imp.category == ERROR
        }
        protected |= _fenced(lines)
        body = self._fold(lines, protected)
        if len(body) == len(lines):
            return passthrough(text, ctx)
        before = estimate_tokens(text, ctx.model)
        if estimate_tokens("\n".join(body), ctx.model) > before * (1 - self.config.min_saving):
            return passthrough(text, ctx)
        kept = len(body)
        return finish(text, body, ctx, self.name, lambda k: lines_marker(k, len(lines), kept))

    def _fold(self, lines: list[str], protected: set[int]) -> list[str]:
        """Walk paragraphs; drop repeats of earlier paragraphs and long lines."""
        seen_para: set[str] = set()
        seen_line: set[str] = set()
        out: list[str] = []
        pending = 0  # repeated lines folded since the last kept line
        blank_run = 0
        i, n = 0, len(lines)
        min_chars = self.config.min_repeat_chars
        while i < n:
            if not lines[i].strip():
                blank_run += 1
                if blank_run <= 1 or i == n - 1:
                    out.append(lines[i])
                i += 1
                continue
            blank_run = 0
            j = i
            while j < n and lines[j].strip():
                j += 1
            para_key = _WS_RE.sub(" ", " ".join(lines[i:j])).strip()
            has_error = any(k in protected for k in range(i, j))
            if len(para_key) >= min_chars and para_key in seen_para and not has_error:
                pending = _flush(out, pending)
                out.append(note(1, "repeated paragraph omitted"))
                _merge_paragraph_notes(out)
                i = j
                continue
            seen_para.add(para_key)
            for k in range(i, j):
                key = _WS_RE.sub(" ", lines[k]).strip()
                if len(key) >= min_chars and key in seen_line and k not in protected:
                    pending += 1
                    continue
                seen_line.add(key)
                pending = _flush(out, pending)
                out.append(lines[k])
            pending = _flush(out, pending)
            i = j
        _flush(out, pending)
        return out


_FENCE_RE = re.compile(r"\s{0,3}(```|~~~)")


def _fenced(lines: list[str]) -> set[int]:
    """Lines of fenced code blocks (fences included): repeated code is still code, and
    folding a line out of an example would change what the example says."""
    out: set[int] = set()
    opened: str | None = None
    for i, line in enumerate(lines):
        m = _FENCE_RE.match(line)
        if opened is not None:
            out.add(i)
            if m and m.group(1) == opened:
                opened = None
        elif m:
            opened = m.group(1)
            out.add(i)
    return out


def _flush(out: list[str], pending: int) -> int:
    if pending:
        what = "repeated lines omitted" if pending > 1 else "repeated line omitted"
        out.append(note(pending, what))
    return 0


_PARA_NOTE_RE = re.compile(r"\[\.\.\. (\d+) repeated paragraphs? omitted\]")


def _merge_paragraph_notes(out: list[str]) -> None:
    """``[... 1 repeated paragraph omitted]``, blank, the same again → one note with a count."""
    if len(out) >= 3 and not out[-2].strip():
        a = _PARA_NOTE_RE.fullmatch(out[-3])
        b = _PARA_NOTE_RE.fullmatch(out[-1])
        if a and b:
            count = int(a.group(1)) + int(b.group(1))
            del out[-3:]
            out.append(note(count, "repeated paragraphs omitted"))
