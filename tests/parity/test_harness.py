"""The golden-fixture harness: all fixtures replay, and a divergence is caught."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from headroom.parity import TRANSFORMS, TransformUnavailable, load_fixtures, run_all
from headroom.parity.cli import main
from headroom.parity.runner import DIFF, MATCHED

ROOT = Path(__file__).parent / "fixtures"


def test_every_transform_has_fixtures():
    transforms = {f.transform for f in load_fixtures(ROOT)}
    assert transforms == set(TRANSFORMS)


def test_all_fixtures_match():
    outcomes = run_all(ROOT)
    bad = [(o.fixture.path.name, o.status, o.detail) for o in outcomes if o.status != MATCHED]
    assert outcomes and bad == []


def test_cli_run_reports_per_transform(capsys):
    assert main(["run", "--fixtures", str(ROOT), "--only", "detector"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("detector") and "diff   0" in out


def test_divergent_transform_fails_the_run(monkeypatch, capsys):
    real = TRANSFORMS["detector"]

    def drifted(text, config):
        out = dict(real(text, config))
        out["confidence"] = round(out["confidence"] - 0.001, 3)
        return out

    monkeypatch.setitem(TRANSFORMS, "detector", drifted)
    assert main(["run", "--fixtures", str(ROOT), "--only", "detector"]) != 0
    out = capsys.readouterr().out
    assert "diverged" in out and "--- " in out and "+confidence" in out


def test_crashing_transform_is_a_diff(monkeypatch):
    def crash(text, config):
        raise RuntimeError("boom")

    monkeypatch.setitem(TRANSFORMS, "detector", crash)
    outcomes = run_all(ROOT, "detector")
    assert {o.status for o in outcomes} == {DIFF}
    assert "RuntimeError: boom" in outcomes[0].detail


def test_unavailable_transform_is_skipped(monkeypatch, capsys):
    def missing(text, config):
        raise TransformUnavailable("headroom.transforms.detector_v2 is not there")

    monkeypatch.setitem(TRANSFORMS, "detector", missing)
    assert main(["run", "--fixtures", str(ROOT), "--only", "detector"]) == 0
    assert "skipped" in capsys.readouterr().out


def _copy(tmp_path: Path, transform: str) -> Path:
    root = tmp_path / "fixtures"
    shutil.copytree(ROOT / transform, root / transform)
    return root


def test_tampered_input_is_caught(tmp_path):
    root = _copy(tmp_path, "detector")
    path = sorted((root / "detector").glob("*.json"))[0]
    raw = json.loads(path.read_text())
    raw["input"] += " "
    path.write_text(json.dumps(raw))
    assert main(["run", "--fixtures", str(root)]) == 1


def test_record_restores_outputs_and_keeps_unchanged_timestamps(tmp_path):
    root = _copy(tmp_path, "detector")
    paths = sorted((root / "detector").glob("*.json"))
    before = {p: json.loads(p.read_text()) for p in paths}
    edited = dict(before[paths[0]], output={"kind": "nonsense"})
    paths[0].write_text(json.dumps(edited))
    assert main(["run", "--fixtures", str(root)]) == 1
    assert main(["record", "--fixtures", str(root)]) == 0
    assert main(["run", "--fixtures", str(root)]) == 0
    after = {p: json.loads(p.read_text()) for p in paths}
    assert after[paths[0]]["output"] == before[paths[0]]["output"]
    assert all(after[p] == before[p] for p in paths[1:])  # untouched, timestamps too


@pytest.mark.parametrize(
    "content", ["not json", "[]", '{"transform": "detector"}'], ids=["text", "array", "partial"]
)
def test_malformed_fixture_is_a_clear_error(tmp_path, capsys, content):
    folder = tmp_path / "detector"
    folder.mkdir()
    (folder / "bad.json").write_text(content)
    assert main(["run", "--fixtures", str(tmp_path)]) == 2
    assert "bad.json" in capsys.readouterr().err


def test_missing_root_is_a_clear_error(tmp_path, capsys):
    assert main(["run", "--fixtures", str(tmp_path / "nope")]) == 2
    assert "no fixture directory" in capsys.readouterr().err


@pytest.mark.parametrize("hash_seed", ["1", "4242"])
def test_outputs_do_not_depend_on_the_hash_seed(hash_seed):
    """Fixtures recorded in one process replay byte for byte under another hash seed
    (set and dict iteration orders must never reach an output: prompt caches depend on it)."""
    env = {**os.environ, "PYTHONHASHSEED": hash_seed}
    done = subprocess.run(
        [sys.executable, "-m", "headroom.parity.cli", "run", "--fixtures", str(ROOT)],
        capture_output=True,
        text=True,
        env=env,
        timeout=120,
        cwd=ROOT.parent.parent.parent,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
