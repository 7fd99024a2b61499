"""The events the producer writes, and the tutorial's five sample messages.

An event is `{"event_id", "event_time", "message_type", "count"}`, keyed in
Kinesis by its `event_id`. With a seed the whole sequence, ids included, is
reproducible (ids come from the seeded generator, not `uuid4`), so a test can
regenerate what a producer container sent and check the sink against it; only
`event_time` is the wall clock.
"""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MESSAGE_TYPES = tuple(f"message{n}" for n in range(1, 6))
MAX_COUNT = 10
# Kinesis refuses partition keys longer than 256 characters.
MAX_PARTITION_KEY_CHARS = 256

# The messages the tutorial puts on its stream; `samples` adds an id and a time to each.
SAMPLE_MESSAGES: tuple[dict[str, Any], ...] = (
    {"message_type": "message1", "count": 2},
    {"message_type": "message2", "count": 1},
    {"message_type": "message1", "count": 3},
    {"message_type": "message3", "count": 4},
    {"message_type": "message2", "count": 5},
)


@dataclass(frozen=True)
class Record:
    """One Kinesis record: its payload, sent byte for byte, and its partition key."""

    data: bytes
    partition_key: str

    @property
    def size(self) -> int:
        """Bytes Kinesis counts against its limits: payload plus UTF-8 partition key."""
        return len(self.data) + len(self.partition_key.encode())


class EventFactory:
    """Makes events; seeded, the same seed gives the same events in the same order."""

    def __init__(self, seed: int | None = None) -> None:
        self._random = random.Random(seed)  # noqa: S311 - test data, not secrets

    def event_id(self) -> str:
        """32 hex characters, like a uuid4's hex, but from the (seedable) generator."""
        return f"{self._random.getrandbits(128):032x}"

    def random_event(self) -> dict[str, Any]:
        return self.complete(
            {
                "message_type": self._random.choice(MESSAGE_TYPES),
                "count": self._random.randint(1, MAX_COUNT),
            }
        )

    def complete(self, message: dict[str, Any]) -> dict[str, Any]:
        """The message with a new event id and the current time first."""
        return {"event_id": self.event_id(), "event_time": utc_now(), **message}

    def random_events(self, count: int) -> Iterator[dict[str, Any]]:
        """`count` events, or an endless stream when count is 0."""
        produced = 0
        while count == 0 or produced < count:
            yield self.random_event()
            produced += 1

    def samples(self) -> list[dict[str, Any]]:
        """The tutorial's five messages as events."""
        return [self.complete(dict(message)) for message in SAMPLE_MESSAGES]


def to_record(event: dict[str, Any]) -> Record:
    """An event as a record, keyed by its id so events spread over all shards."""
    return Record(json.dumps(event, separators=(",", ":")).encode(), str(event["event_id"]))


def key_for_payload(data: bytes, factory: EventFactory) -> str:
    """The payload's own `event_id` as key when it has a usable one, else a new id.

    Keying a replayed line by its event id sends it to the same shard as the
    first attempt would have, whatever file it comes from.
    """
    try:
        payload = json.loads(data)
    except ValueError:
        return factory.event_id()
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    if isinstance(event_id, str) and 0 < len(event_id) <= MAX_PARTITION_KEY_CHARS:
        return event_id
    return factory.event_id()


def utc_now() -> str:
    """ISO-8601 UTC to the millisecond with a `Z`, e.g. 2026-01-31T12:00:00.123Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
