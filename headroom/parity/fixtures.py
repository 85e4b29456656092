"""Fixture files: schema, loading with validation, stable writing."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FIELDS = ("transform", "input", "config", "output", "recorded_at", "input_sha256")


class FixtureError(ValueError):
    """A fixture file that does not follow the schema; the message names file and field."""


@dataclass
class Fixture:
    path: Path
    transform: str
    input: str
    config: dict[str, Any]
    output: Any
    recorded_at: str
    input_sha256: str

    @property
    def case(self) -> str:
        return self.path.stem

    def to_json(self) -> dict[str, Any]:
        return {
            "transform": self.transform,
            "input": self.input,
            "config": self.config,
            "output": self.output,
            "recorded_at": self.recorded_at,
            "input_sha256": self.input_sha256,
        }


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


def now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def load_fixture(path: Path) -> Fixture:
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise FixtureError(f"{path}: unreadable fixture ({exc})") from exc
    if not isinstance(raw, dict):
        raise FixtureError(f"{path}: a fixture is a JSON object")
    missing = [f for f in FIELDS if f not in raw]
    if missing:
        raise FixtureError(f"{path}: missing field(s) {', '.join(missing)}")
    if not isinstance(raw["input"], str) or not isinstance(raw["config"], dict):
        raise FixtureError(f"{path}: input must be a string and config an object")
    if raw["transform"] != path.parent.name:
        raise FixtureError(
            f"{path}: transform {raw['transform']!r} but folder {path.parent.name!r}"
        )
    return Fixture(path, **{f: raw[f] for f in FIELDS})


def load_fixtures(root: Path, only: str | None = None) -> list[Fixture]:
    """Every fixture under ``root`` (optionally one transform), sorted by path."""
    if not root.is_dir():
        raise FixtureError(f"{root}: no fixture directory")
    folders = [root / only] if only else sorted(p for p in root.iterdir() if p.is_dir())
    found: list[Fixture] = []
    for folder in folders:
        if not folder.is_dir():
            raise FixtureError(f"{folder}: no fixtures for transform {folder.name!r}")
        found.extend(load_fixture(p) for p in sorted(folder.glob("*.json")))
    return found


def make_fixture(
    root: Path, transform: str, case: str, text: str, config: dict[str, Any]
) -> Fixture:
    """A fixture not yet recorded (``output`` None) at ``root/transform/case.json``."""
    return Fixture(
        root / transform / f"{case}.json", transform, text, config, None, "", sha256(text)
    )


def save_fixture(fixture: Fixture) -> None:
    """Stable formatting, so re-recording an unchanged output rewrites the same bytes."""
    fixture.path.parent.mkdir(parents=True, exist_ok=True)
    body = json.dumps(fixture.to_json(), indent=1, ensure_ascii=False) + "\n"
    fixture.path.write_text(body, encoding="utf-8")
