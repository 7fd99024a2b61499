"""Making Spark's stop of a query run the stream reader's `stop()`.

What Spark does when a streaming query stops (PySpark 4.2.1 and 4.3.0, read in
their jars and watched in `tests/test_query_stop.py`): the stream reader lives in
a Python planner process of its own (`python -m
pyspark.sql.streaming.python_streaming_source_runner`), whose main thread waits
on a socket for the JVM's next call, inside a `try: ... finally: reader.stop()`.
To stop it, the JVM sends it SIGTERM (`Process.destroy()`), closes the socket,
then sends SIGTERM again. Python's default SIGTERM ends the process at once, so
the `finally` never runs and `stop()` is never called.

Design decision: a reader with work to do at stop calls `stop_on_sigterm()` when
it is made. In the planner process alone (not in a Spark worker, a notebook or a
test that makes a reader), it has SIGTERM raise SystemExit in the main thread:
the runner's `finally` then calls `stop()`, and later SIGTERMs are ignored so
that they do not cut `stop()` short. A planner process killed outright (SIGKILL,
a lost driver) still runs no `stop()`.
"""

from __future__ import annotations

import logging
import signal
import sys
import threading
from types import FrameType

log = logging.getLogger(__name__)

# The module Spark runs a Python stream reader's planner process as.
PLANNER_MODULE = "pyspark.sql.streaming.python_streaming_source_runner"


def in_planner_process() -> bool:
    """Whether this is the main thread of a stream reader's planner process."""
    spec = getattr(sys.modules.get("__main__"), "__spec__", None)
    return (
        getattr(spec, "name", None) == PLANNER_MODULE
        and threading.current_thread() is threading.main_thread()
    )


def stop_on_sigterm() -> bool:
    """In the planner process, makes the JVM's SIGTERM run the reader's `stop()`;
    elsewhere changes nothing. Returns whether it did."""
    if not in_planner_process():
        return False
    signal.signal(signal.SIGTERM, exit_for_stop)
    return True


def exit_for_stop(signum: int, frame: FrameType | None) -> None:
    """The SIGTERM handler: unwinds the main thread into the runner's `finally`, once."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    log.info("the query stops (SIGTERM): stopping the stream reader")
    raise SystemExit(128 + signum)
