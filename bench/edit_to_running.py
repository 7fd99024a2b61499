"""Figure 9: a consumer code edit to the consumer running it, under `docker compose watch`.

The stack runs under its own Compose project name on free ports, started by
`docker compose watch`, which brings it up and restarts a service when its source
changes; the containers see the working copy's source through read-only bind
mounts (docker-compose.yml). Once the consumer has written its first batch, one
line is appended to a consumer source file (and removed afterwards); the figure is
the time from that edit to the restarted consumer's "query started" log line, with
the edit checked to be inside the container.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
import time
import uuid
from datetime import UTC, datetime
from typing import Any

from bench.coldstart import _FIRST_BATCH, ROOT, Stack, image_sizes, stamped_lines

EDITED = ROOT / "services/consumer/src/consumer/__init__.py"
IN_CONTAINER = "/app/.venv/lib/python3.13/site-packages/consumer/__init__.py"
DEADLINE_S = 300.0
_QUERY_STARTED = re.compile(r"query started")
# The restart's phases in the consumer's log, after the edit: the old query told to stop,
# the old process done, the new one's query running.
_STOP_OUTCOME = re.compile(r"finished batch|abandoned batch|no batch was in flight")
_PHASES = {
    "stop_requested": re.compile(r"received SIG\w+: stopping"),
    "old_query_stopped": re.compile(r"query stopped"),
    "query_started": _QUERY_STARTED,
}


def _first_after(stack: Stack, since: datetime, pattern: re.Pattern[str]) -> datetime | None:
    """When the consumer's log first matches `pattern` after `since`, if it has."""
    for moment, text in stamped_lines(stack):
        if moment > since and pattern.search(text):
            return moment
    return None


def _query_started_after(stack: Stack, since: datetime) -> datetime | None:
    return _first_after(stack, since, _QUERY_STARTED)


def _poll(condition: Any, what: str) -> Any:
    deadline = time.monotonic() + DEADLINE_S
    while not (result := condition()):
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {what} within {DEADLINE_S:.0f} s")
        time.sleep(0.5)
    return result


def measure() -> dict[str, Any]:
    stack = Stack()
    if len(image_sizes()) < 3:
        stack.compose("build")  # not timed: the figure is for images already built
    original = EDITED.read_text()
    probe = f"# edit-to-running probe {uuid.uuid4().hex}\n"
    with tempfile.TemporaryFile("w+") as watch_log:
        watch = subprocess.Popen(
            ["docker", "compose", "watch"],  # noqa: S607 - docker from PATH, as the Makefile
            cwd=ROOT,
            env=stack.env,
            stdout=watch_log,
            stderr=subprocess.STDOUT,
        )
        try:
            started = datetime.now(UTC)
            # Edited once the consumer is steady, as a running stack is: a first batch
            # written. An edit during the slow first batch would time the wait for it.
            _poll(lambda: _first_after(stack, started, _FIRST_BATCH), "first batch written")
            edited_wall, edited = datetime.now(UTC), time.perf_counter()
            EDITED.write_text(original + probe)
            try:
                running = _poll(lambda: _query_started_after(stack, edited_wall), "restarted query")
            except TimeoutError as error:
                watch_log.seek(0)
                raise TimeoutError(
                    f"{error}; docker compose watch said: {watch_log.read()[-2000:]}"
                ) from error
            polled = time.perf_counter() - edited
            phases = {}
            for name, pattern in _PHASES.items():
                moment = _first_after(stack, edited_wall, pattern)
                if moment is not None:
                    phases[name] = round((moment - edited_wall).total_seconds(), 1)
            # Whether the old query finished its batch, abandoned it, or had none.
            stopped_how = next(
                (
                    text.strip()
                    for moment, text in stamped_lines(stack)
                    if moment > edited_wall and _STOP_OUTCOME.search(text)
                ),
                None,
            )
            synced = stack.compose("exec", "-T", "consumer", "cat", IN_CONTAINER, check=False)
            if probe not in synced.stdout:
                raise RuntimeError(
                    "the consumer restarted without the edit: its source mount does not show it"
                )
        finally:
            EDITED.write_text(original)
            watch.terminate()
            watch.wait(timeout=60)
            stack.compose("down", "--volumes", "--remove-orphans", "--timeout", "5", check=False)
    return {
        "edit_to_query_started_s": round((running - edited_wall).total_seconds(), 1),
        "polled_s": round(polled, 1),
        "consumer_phases_s": phases,
        "old_query_stop": stopped_how,
    }
