"""What the proxy remembers between calls: its counters, iterators and per-shard meters.

Every handler thread shares one `ProxyState`; its lock guards all of it.
"""

from __future__ import annotations

import random
import threading
import time
import uuid
from collections import Counter
from dataclasses import dataclass

from kinesis_proxy.behaviours import Behaviours
from kinesis_proxy.limits import ShardLimits, SlidingWindow


@dataclass
class ProxyIterator:
    """A proxy iterator: LocalStack's, or a place to open one at (after a held-back page)."""

    stream: str
    shard_id: str
    created_s: float
    upstream: str | None = None
    after_sequence_number: str | None = None


class ProxyState:
    def __init__(self, behaviours: Behaviours) -> None:
        self.behaviours = behaviours
        self.events: Counter[str] = Counter()
        # Seeded on purpose: a fault run repeats; nothing here is a secret.
        self.random = random.Random(behaviours.seed)  # noqa: S311
        self.lock = threading.Lock()
        self._iterators: dict[str, ProxyIterator] = {}
        self._shards: dict[tuple[str, str], ShardLimits] = {}
        self._operation_windows: dict[tuple[str, str], SlidingWindow] = {}

    def count(self, event: str, times: int = 1) -> None:
        with self.lock:
            self.events[event] += times

    def counters(self) -> dict[str, int]:
        with self.lock:
            return dict(self.events)

    def draw(self) -> float:
        with self.lock:
            return self.random.random()

    def shard(self, stream: str, shard_id: str) -> ShardLimits:
        """The shard's meters; the caller holds the lock."""
        key = (stream, shard_id)
        if key not in self._shards:
            self._shards[key] = ShardLimits(self.behaviours)
        return self._shards[key]

    def operation_window(self, operation: str, scope: str, limit: int) -> SlidingWindow:
        """The meter of a control-plane operation; the caller holds the lock."""
        return self._operation_windows.setdefault((operation, scope), SlidingWindow(limit))

    def issue(self, iterator: ProxyIterator) -> str:
        iterator.created_s = time.monotonic()
        token = f"proxy-{uuid.uuid4().hex}"
        with self.lock:
            self._iterators[token] = iterator
        return token

    def iterator(self, token: str) -> ProxyIterator | None:
        with self.lock:
            return self._iterators.get(token)
