"""``has_marker`` answers exactly as the marker regex does, its quick substring checks
included: every marker the compressors write is seen, a bare ``hash=`` in a log is not."""

from __future__ import annotations

from headroom.ccr import markers

KEY = "0123456789abcdef01234567"


def test_has_marker_agrees_with_find_keys_on_every_marker_form_and_on_noise() -> None:
    written = [markers.lines_marker(KEY, 120, 12, unit) for unit in markers.UNITS]
    written += [markers.diff_marker(KEY, 300, 40), f"<<ccr:{KEY} 40_rows_offloaded>>"]
    written.append(f"<<ccr:{KEY},json_array,12.3KB>>")
    noise = [
        "commit 9d33fc1 hash=abcdef tree=",
        "docker build ... sha256 hash=" + KEY,
        "[12 lines compressed to 3. Retrieve more: hash=short]",
        "",
    ]
    for text in [*written, *noise]:
        for wrapped in (text, "log line\n" * 50 + text + "\nmore"):
            assert markers.has_marker(wrapped) == bool(markers.find_keys(wrapped)), wrapped[-80:]
    assert all(markers.has_marker(t) for t in written)
    assert not any(markers.has_marker(t) for t in noise)
