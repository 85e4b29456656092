"""Waiting on a condition, not on time: tests poll what they need to see, up to a deadline."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


def wait_for(check: Callable[[], Any], timeout: float = 5.0, what: str = "") -> Any:
    """``check()``'s first truthy result, polled every 50 ms; an AssertionError naming
    ``what`` (and the last result) once ``timeout`` seconds have passed without one."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what or check}: last {last!r}")
