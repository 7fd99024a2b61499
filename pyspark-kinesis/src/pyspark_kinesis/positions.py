"""Positions in a shard, written as short strings such as `AFTER_SEQUENCE_NUMBER:4968...`.

A position is what GetShardIterator needs to start reading, and also what the
source keeps per shard in Spark's offset log, so its text form is part of the
checkpoint format: keep it stable.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

_KINDS_WITH_SEQUENCE = ("AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER")
_ALIASES = {"EARLIEST": "TRIM_HORIZON"}


@dataclass(frozen=True)
class Position:
    """Where to start reading a shard.

    `LATEST` is only ever an option value: a query pins it to `AT_TIMESTAMP` of
    its start, so that "latest" means the newest record when the query started,
    not whenever a shard happens to be read first.
    """

    kind: str
    argument: str | None = None

    def __str__(self) -> str:
        return self.kind if self.argument is None else f"{self.kind}:{self.argument}"

    def iterator_request(self) -> dict[str, Any]:
        """The GetShardIterator arguments that start at this position."""
        request: dict[str, Any] = {"ShardIteratorType": self.kind}
        if self.kind in _KINDS_WITH_SEQUENCE:
            request["StartingSequenceNumber"] = self.argument
        elif self.kind == "AT_TIMESTAMP":
            request["Timestamp"] = datetime.fromtimestamp(float(self.argument or 0), tz=UTC)
        return request


TRIM_HORIZON = Position("TRIM_HORIZON")


def after(sequence_number: str) -> Position:
    return Position("AFTER_SEQUENCE_NUMBER", sequence_number)


def at_timestamp(epoch_seconds: float) -> Position:
    return Position("AT_TIMESTAMP", repr(float(epoch_seconds)))


def parse_position(text: str) -> Position:
    """Parses `KIND` or `KIND:argument`; raises ValueError naming the accepted forms."""
    kind, _, argument = text.strip().partition(":")
    kind = _ALIASES.get(kind.strip().upper(), kind.strip().upper())
    argument = argument.strip()
    if kind in ("TRIM_HORIZON", "LATEST") and not argument:
        return Position(kind)
    if kind in _KINDS_WITH_SEQUENCE and argument.isdigit():
        return Position(kind, argument)
    if kind == "AT_TIMESTAMP" and argument:
        try:
            seconds = float(argument)
        except ValueError:
            seconds = math.nan
        # nan and inf parse as floats but are no instant GetShardIterator accepts.
        if math.isfinite(seconds):
            return at_timestamp(seconds)
    raise ValueError(
        f"{text!r} is not a starting position; use TRIM_HORIZON (or EARLIEST), LATEST, "
        "AT_TIMESTAMP:<epoch seconds>, AT_SEQUENCE_NUMBER:<n> or AFTER_SEQUENCE_NUMBER:<n>"
    )
