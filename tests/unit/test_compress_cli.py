"""``headroom-proxy compress``: the engine's dry run, on real artifacts of the corpus."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest

from headroom.ccr.store import PendingWrites
from headroom.cli import main
from headroom.transforms.base import CompressContext
from headroom.transforms.pipeline import Pipeline

CORPUS = Path(__file__).parents[1] / "fidelity" / "corpus"
DPKG = CORPUS / "b_dpkg_log_today.txt"


def test_it_prints_what_the_model_would_see_and_a_summary(
    capsys: pytest.CaptureFixture[str],
) -> None:
    query = "which package was removed"
    assert main(["compress", str(DPKG), "--query", query]) == 0
    out, err = capsys.readouterr()
    text = DPKG.read_text(encoding="utf-8")
    expected = Pipeline().compress(text, CompressContext(query=query, store=PendingWrites()))
    assert out.rstrip("\n") == expected.output.rstrip("\n")
    assert "kind log, strategy log" in err and "marker(s)" in err


def test_json_accounts_for_every_input_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["compress", str(DPKG), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    lines = DPKG.read_text(encoding="utf-8").split("\n")
    assert report["lines"]["kept"] + report["lines"]["dropped"] == len(lines)
    assert report["tokens_after"] < report["tokens_before"] and len(report["markers"]) == 1
    assert report["markers"][0] in report["output"]


def test_diff_marks_every_line_kept_or_dropped_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    path = CORPUS / "a_pytest_v_more_itertools.txt"
    assert main(["compress", str(path), "--diff"]) == 0
    marked = capsys.readouterr().out.split("\n")[:-1]
    source = [m[2:] for m in marked if m[:2] in ("  ", "- ")]
    assert source == path.read_text(encoding="utf-8").split("\n")
    assert any(m.startswith("+ [") for m in marked), "the compressor's own lines are shown"
    assert any(m.startswith("- ") for m in marked)


def test_a_forced_kind_and_standard_input(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """grep output goes to the search compressor; --kind log makes the log one take it."""
    text = (CORPUS / "b_grep_raise_valueerror_site_packages.txt").read_text(encoding="utf-8")
    for kind, strategy in ((None, "search"), ("log", "log")):
        monkeypatch.setattr(sys, "stdin", io.StringIO(text))
        forced = ["--kind", kind] if kind else []
        assert main(["compress", "-", "--json", *forced]) == 0
        report = json.loads(capsys.readouterr().out)
        assert report["strategy"] == strategy
        assert report["kind"] == (f"forced:{kind}" if kind else "search")


def test_bad_input_is_one_line_and_the_right_exit_code(tmp_path: Path) -> None:
    missing = subprocess.run(
        [sys.executable, "-m", "headroom.cli", "compress", str(tmp_path / "none.txt")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert missing.returncode == 1 and missing.stderr.count("\n") == 1
    assert "cannot read" in missing.stderr and missing.stdout == ""
    bad = subprocess.run(
        [sys.executable, "-m", "headroom.cli", "compress", "x", "--kind", "nope"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert bad.returncode == 2 and "invalid choice" in bad.stderr
