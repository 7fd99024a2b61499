"""Feeding records to the writer at PRODUCER_RATE, flushing often enough, stopping on request.

Pacing is schedule-based: record n is due at `start + n / rate`, so the time
spent in PutRecords calls does not slow the rate down. A batch also goes out
once its oldest record has waited `MAX_LINGER_S`: at 10 records/s a full batch
of 500 would otherwise hold events back for 50 seconds.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

from producer.events import Record
from producer.writer import KinesisWriter

# The KPL's default RecordMaxBufferedTime: a record waits at most this long to be sent.
MAX_LINGER_S = 0.1
# After a stall (a long retry) catch up by at most this much, not with one huge burst.
MAX_CATCH_UP_S = 1.0


class Pacer:
    """Says how long to wait before the next record; a rate of 0 never waits."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._start = time.monotonic()
        self._produced = 0

    def delay(self) -> float:
        if self.rate <= 0:
            return 0.0
        behind = time.monotonic() - (self._start + self._produced / self.rate)
        if behind > MAX_CATCH_UP_S:
            self._start += behind - MAX_CATCH_UP_S
        return max(0.0, self._start + self._produced / self.rate - time.monotonic())

    def produced(self) -> None:
        self._produced += 1


def pump(
    writer: KinesisWriter,
    records: Iterator[Record],
    stopping: threading.Event,
    pacer: Pacer | None = None,
    on_progress: Callable[[], None] = lambda: None,
) -> bool:
    """Puts records until they run out or `stopping` is set, then flushes.

    Returns True if it stopped early; the records not taken stay in `records`.
    The next record is taken from the iterator only when it is due, so a
    generated event's time is the time it was sent.
    """
    pacer = pacer or Pacer(0)
    while True:
        delay = pacer.delay()
        # Send what waits now rather than let it sit through the pause.
        if writer.buffered and writer.buffer_age() + delay >= MAX_LINGER_S:
            writer.flush()
            on_progress()
        if stopping.wait(delay) if delay else stopping.is_set():
            break
        record = next(records, None)
        if record is None:
            break
        writer.put(record)
        pacer.produced()
        on_progress()
    writer.flush()
    on_progress()
    return stopping.is_set()
