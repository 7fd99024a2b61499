"""AWS's documented Kinesis Data Streams quotas, and the meters that enforce them.

A shard's limits are set by the behaviours in force when the proxy first sees
the shard: a test that lowers a limit does so before its first call.
"""

from __future__ import annotations

import time
from collections import deque
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from kinesis_proxy.behaviours import Behaviours

READS_PER_SHARD_PER_S = 5
READ_BYTES_PER_SHARD_PER_S = 2 * 1024 * 1024
ITERATORS_PER_SHARD_PER_S = 5
WRITES_PER_SHARD_PER_S = 1000
WRITE_BYTES_PER_SHARD_PER_S = 1024 * 1024
LIST_SHARDS_PER_STREAM_PER_S = 100
DESCRIBE_STREAM_SUMMARY_PER_S = 20
ITERATOR_LIFETIME_S = 300.0


class SlidingWindow:
    """At most `limit` units in any `period_s` (calls, records or bytes)."""

    def __init__(self, limit: int, period_s: float = 1.0) -> None:
        self.limit = limit
        self.period_s = period_s
        self._entries: deque[tuple[float, int]] = deque()
        self._used = 0

    def admit(self, now: float, weight: int = 1) -> bool:
        while self._entries and self._entries[0][0] <= now - self.period_s:
            self._used -= self._entries.popleft()[1]
        if self._used + weight > self.limit:
            return False
        self._entries.append((now, weight))
        self._used += weight
        return True


class ByteBucket:
    """AWS's read bytes: a call is refused while the shard is in debt; one call may overdraw."""

    def __init__(self, rate: float) -> None:
        self.rate = rate
        self._tokens = rate
        self._at = time.monotonic()

    def allows(self, now: float) -> bool:
        self._tokens = min(self.rate, self._tokens + (now - self._at) * self.rate)
        self._at = now
        return self._tokens > 0

    def spend(self, size: int) -> None:
        self._tokens -= size


class ShardLimits:
    """One shard's meters, and how many empty pages it was given."""

    def __init__(self, limits: Behaviours) -> None:
        self.reads = SlidingWindow(limits.reads_per_s)
        self.read_bytes = ByteBucket(limits.read_bytes_per_s)
        self.iterators = SlidingWindow(limits.iterators_per_s)
        self.writes = SlidingWindow(limits.writes_per_s)
        self.write_bytes = SlidingWindow(limits.write_bytes_per_s)
        self.empty_pages_given = 0
