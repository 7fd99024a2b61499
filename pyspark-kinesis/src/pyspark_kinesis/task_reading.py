"""A task's reads of several shards at once: a thread per shard, their chunks merged.

Design decision: each shard's read stays what it is alone (its own pace, its own
note, its own exact end); running them side by side only overlaps their waits
(a shard's pace between GetRecords calls, Kinesis' answers), so a task of several
shards takes about as long as its slowest shard, not the sum of them. Chunks of
one read come out in its order; chunks of different reads interleave. A read
may wait for others of its task (`after`: a child shard for its parents in a
batch read), and starts once they have ended, so its chunks follow theirs.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")

# Chunks (a GetRecords page each) held per read before its thread waits for the task's
# consumer: enough to keep every read going, few enough to bound the task's memory.
CHUNKS_AHEAD_PER_READ = 2
# How often a read blocked on a full queue checks whether the task stopped consuming.
_STOP_CHECK_S = 0.1


@dataclass(frozen=True)
class _Ended:
    """The last item a read's thread queues: why it ended, if it failed."""

    error: BaseException | None = None


def read_at_once(
    reads: Sequence[Callable[[], Iterable[T]]], after: Sequence[Sequence[int]] = ()
) -> Iterator[T]:
    """Every read's chunks, the reads running at once, chunks yielded as they come.

    `after[i]`, if given, lists the reads that read `i` starts after (their
    positions in `reads`). A single read runs in the caller's thread. The first
    failure is raised here; the other reads then stop at their next chunk.
    """
    if len(reads) == 1 and not any(after):
        yield from reads[0]()
        return
    chunks: queue.Queue[T | _Ended] = queue.Queue(maxsize=CHUNKS_AHEAD_PER_READ * len(reads))
    stopping, failed = threading.Event(), threading.Event()
    ended = [threading.Event() for _ in reads]

    def run(index: int) -> None:
        try:
            for earlier in after[index] if after else ():
                ended[earlier].wait()
            if stopping.is_set() or failed.is_set():
                return
            for chunk in reads[index]():
                if not _offer(chunks, chunk, stopping):
                    return
            _offer(chunks, _Ended(), stopping)
        except BaseException as error:  # raised in the task's thread, not lost in this one
            failed.set()
            _offer(chunks, _Ended(error), stopping)
        finally:
            ended[index].set()

    threads = [
        threading.Thread(target=run, args=(index,), name=f"shard-read-{index}", daemon=True)
        for index in range(len(reads))
    ]
    for thread in threads:
        thread.start()
    try:
        running = len(reads)
        while running:
            item = chunks.get()
            if not isinstance(item, _Ended):
                yield item
                continue
            if item.error is not None:
                raise item.error
            running -= 1
    finally:
        # Normally every read has ended; after a failure, or when Spark stops
        # consuming, the others stop at their next chunk.
        stopping.set()


def _offer(chunks: queue.Queue[T | _Ended], item: T | _Ended, stopping: threading.Event) -> bool:
    """Queues `item`, waiting for room; False if the task stopped consuming meanwhile."""
    while not stopping.is_set():
        try:
            chunks.put(item, timeout=_STOP_CHECK_S)
        except queue.Full:
            continue
        return True
    return False
