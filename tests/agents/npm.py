"""Agent CLIs from npm, installed once per machine into a cache outside the repository.

A test that needs one calls ``cli(package, version, binary)``: the package is installed
with ``npm install --prefix`` under ``~/.cache/headroom-tests/npm`` (``HEADROOM_TEST_NPM``
overrides it), pinned to one version so a new release cannot change what is tested, and
the test is skipped only when ``npm`` itself is missing. A failed install is a failure,
not a skip: a CLI that cannot be installed on a machine with npm is a broken test.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
from pathlib import Path

import pytest

INSTALL_TIMEOUT = 300.0


def cache_root() -> Path:
    override = os.environ.get("HEADROOM_TEST_NPM")
    return Path(override) if override else Path.home() / ".cache" / "headroom-tests" / "npm"


def cli(package: str, version: str, binary: str) -> Path:
    """The path of ``binary`` from ``package@version``, installed if it is not yet."""
    npm = shutil.which("npm")
    if npm is None:
        pytest.skip("npm is not installed")
    prefix = cache_root() / f"{package.replace('/', '+')}@{version}"
    path = prefix / "node_modules" / ".bin" / binary
    prefix.mkdir(parents=True, exist_ok=True)
    # Two xdist workers may want the same CLI: one installs, the other waits for it.
    with open(prefix / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not path.exists():
            done = subprocess.run(
                [npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                 "--loglevel", "error", f"{package}@{version}"],
                capture_output=True,
                text=True,
                timeout=INSTALL_TIMEOUT,
                check=False,
            )  # fmt: skip
            if done.returncode != 0 or not path.exists():
                pytest.fail(f"npm install {package}@{version} failed: {done.stderr[-2000:]}")
    return path
