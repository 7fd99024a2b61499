"""`wait_until`: the one polling helper of every test tree.

The root `conftest.py` makes the repository root importable, so any test file
can `from testkit.waiting import wait_until`, whichever folder it lives in.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

DEADLINE_S = 60.0
POLL_S = 0.2


def wait_until(
    condition: Callable[[], T], what: str, deadline_s: float = DEADLINE_S, poll_s: float = POLL_S
) -> T:
    """Polls `condition` until it returns something truthy, and returns that.

    The condition is asked once more after the deadline has passed, so a slow
    machine that gets there at the last moment still passes; after that the
    wait fails with an AssertionError naming `what`.
    """
    deadline = time.monotonic() + deadline_s
    while True:
        result = condition()
        if result:
            return result
        if time.monotonic() >= deadline:
            raise AssertionError(f"timed out after {deadline_s:.0f} s waiting for {what}")
        time.sleep(poll_s)
