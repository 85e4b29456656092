"""Release check: build the sdist and the wheel (the wheel from the sdist, so a file left out
of the sdist fails here), install the wheel alone into a fresh virtualenv and run
``headroom-proxy --help`` there, outside the source tree so nothing is imported from it.

Usage: python deploy/check_wheel.py [WORKDIR]   (the ``tox -e wheel`` target; needs ``build``)
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TIMEOUT = 600


def _run(args: list[str | Path], cwd: Path) -> str:
    done = subprocess.run(
        [str(a) for a in args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        check=False,
    )
    if done.returncode != 0:
        sys.exit(f"check_wheel: {' '.join(map(str, args))} failed:\n{done.stdout}{done.stderr}")
    return done.stdout


def _one(dist: Path, pattern: str) -> Path:
    found = sorted(dist.glob(pattern))
    if len(found) != 1:
        sys.exit(f"check_wheel: expected one {pattern} in {dist}, found {found}")
    return found[0]


def main(argv: list[str]) -> int:
    work = Path(argv[1]) if len(argv) > 1 else Path(tempfile.mkdtemp(prefix="headroom-wheel-"))
    dist, venv = work / "dist", work / "fresh"
    shutil.rmtree(dist, ignore_errors=True)
    shutil.rmtree(venv, ignore_errors=True)
    _run([sys.executable, "-m", "build", "--outdir", dist, ROOT], ROOT)
    sdist, wheel = _one(dist, "*.tar.gz"), _one(dist, "*.whl")
    _run([sys.executable, "-m", "venv", venv], work)
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel], work)
    out = _run([venv / "bin" / "headroom-proxy", "--help"], work)
    if "--workers" not in out or "--upstream" not in out:
        sys.exit(f"check_wheel: unexpected --help output:\n{out}")
    print(f"check_wheel: ok: {sdist.name}, {wheel.name}; headroom-proxy --help runs in {venv}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv))
