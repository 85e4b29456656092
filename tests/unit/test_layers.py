"""The import rules of headroom/ hold: arrows point down, and no module circle exists
(type-only imports included). The checker itself is tested on a tree made to break them."""

from __future__ import annotations

from pathlib import Path

from headroom.devtools import layers


def test_headroom_imports_point_down_and_form_no_circle() -> None:
    root = Path(layers.__file__).resolve().parent.parent
    assert layers.check(root) == []


def _write(root: Path, name: str, text: str) -> None:
    path = root.joinpath(*name.split(".")).with_suffix(".py")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)


def test_the_checker_finds_an_upward_import_and_a_type_only_circle(tmp_path: Path) -> None:
    root = tmp_path / "headroom"
    for package in ("headroom", "headroom.proxy", "headroom.ccr"):
        _write(tmp_path, package + ".__init__", "")
    _write(tmp_path, "headroom.ccr.store", "from headroom.proxy import app\n")
    _write(
        tmp_path,
        "headroom.proxy.app",
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from .exchange import X\n",
    )
    _write(tmp_path, "headroom.proxy.exchange", "from headroom.proxy.app import Y\n")
    problems = layers.check(root)
    assert any("headroom.ccr.store imports headroom.proxy.app" in p for p in problems), problems
    assert any(
        "circle" in p and "headroom.proxy.app" in p and "headroom.proxy.exchange" in p
        for p in problems
    ), problems
