"""The events the producer writes, and the tutorial's five sample messages.

An event is `{"event_id", "event_time", "message_type", "count"}`. With a seed,
the whole sequence, ids included, is reproducible: a test can regenerate what a
producer container sent and check the sink against it.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MESSAGE_TYPES = tuple(f"message{n}" for n in range(1, 6))

# The messages the tutorial puts on its stream.
SAMPLE_MESSAGES: tuple[dict[str, Any], ...] = (
    {"message_type": "message1", "count": 2},
    {"message_type": "message2", "count": 1},
    {"message_type": "message1", "count": 3},
    {"message_type": "message3", "count": 4},
    {"message_type": "message2", "count": 5},
)


@dataclass(frozen=True)
class Record:
    """One Kinesis record: its payload and partition key."""

    data: bytes
    partition_key: str

    def to_json_line(self) -> str:
        """The form the unsent file keeps, for replay with `producer send --raw`."""
        return self.data.decode("utf-8", errors="surrogateescape")


class EventFactory:
    """Makes events; seeded, the same seed gives the same events in the same order."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - test data, not secrets

    def event_id(self) -> str:
        return f"{self._random.getrandbits(128):032x}"

    def random_event(self) -> dict[str, Any]:
        return self.complete(
            {
                "message_type": self._random.choice(MESSAGE_TYPES),
                "count": self._random.randint(1, 10),
            }
        )

    def complete(self, message: dict[str, Any]) -> dict[str, Any]:
        """Adds an id and the current time to a message that has none."""
        return {"event_id": self.event_id(), "event_time": _now(), **message}

    def random_events(self, count: int) -> Iterator[dict[str, Any]]:
        """`count` events, or an endless stream when count is 0."""
        produced = 0
        while count == 0 or produced < count:
            yield self.random_event()
            produced += 1


def to_record(event: dict[str, Any]) -> Record:
    """An event as a record, keyed by its id so events spread over all shards."""
    return Record(json.dumps(event, separators=(",", ":")).encode(), str(event["event_id"]))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
