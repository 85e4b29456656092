"""Sectioned documents: the sections the query names stay whole, the others keep headings."""

from __future__ import annotations

from headroom.ccr.store import PendingWrites
from headroom.transforms.base import CompressContext
from headroom.transforms.docs import DocsCompressor, has_sections, section_starts
from headroom.transforms.lines import split_lines


def _changelog() -> str:
    parts = []
    for minor in range(12, 0, -1):
        title = f"Version 2.{minor}.0"
        items = [
            f"-   Improve option parsing speed in case {minor}-{k}. :pr:`{minor}{k}`"
            for k in range(12)
        ]
        if minor == 7:
            items.insert(3, "-   ``Group.resultcallback`` is renamed to ``result_callback``.")
        parts.append("\n".join([title, "-" * len(title), "", *items, ""]))
    return "\n".join(parts)


def test_rst_and_markdown_headings_start_sections() -> None:
    lines = ["Intro", "Title", "=====", "text", "## Usage", "more", "<h2>API</h2>", "x"]
    assert section_starts(lines) == [1, 4, 6]


def test_the_named_section_stays_whole_and_the_others_keep_their_headings() -> None:
    text = _changelog()
    ctx = CompressContext("we call group.resultcallback(), when was it renamed?", PendingWrites())
    res = DocsCompressor().compress(text, ctx)
    out = res.output.split("\n")
    assert "-   ``Group.resultcallback`` is renamed to ``result_callback``." in out
    assert all(f"Version 2.{m}.0" in out for m in range(1, 13))  # every heading stays
    section = text.split("Version 2.7.0")[1].split("Version 2.6.0")[0]
    assert all(line in out for line in split_lines(section) if line.strip())
    assert res.tokens_after < res.tokens_before / 3


def test_no_named_section_means_no_change() -> None:
    text = _changelog()
    res = DocsCompressor().compress(text, CompressContext("summarise this", PendingWrites()))
    assert res.output == text


def test_a_script_whose_comments_look_like_headings_is_not_a_document() -> None:
    script = "\n".join(
        f"# step {i}: install\napt-get install -y pkg{i}\nexport X{i}=1\n" for i in range(8)
    )
    assert section_starts(script.split("\n"))  # the comments do look like headings
    assert not has_sections(script)
    assert has_sections(_changelog())
