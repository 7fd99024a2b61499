"""Positions in a shard, written as short strings such as `AFTER_SEQUENCE_NUMBER:4968...`.

A position is what GetShardIterator needs to start reading, and also what the
source keeps per shard in Spark's offset log, so its text form is part of the
checkpoint format: keep it stable.

A batch may end inside a KPL aggregate (its limits count user records): the
position after user record 3 of aggregate 4968... is
`AFTER_SEQUENCE_NUMBER:4968.../3`, read from `AT_SEQUENCE_NUMBER:4968...` while
skipping the aggregate's user records 0 to 3.
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
    # AFTER_SEQUENCE_NUMBER only: the last user record read inside that aggregate.
    sub_sequence_number: int | None = None

    def __str__(self) -> str:
        if self.argument is None:
            return self.kind
        if self.sub_sequence_number is None:
            return f"{self.kind}:{self.argument}"
        return f"{self.kind}:{self.argument}/{self.sub_sequence_number}"

    def iterator_request(self) -> dict[str, Any]:
        """The GetShardIterator arguments that start at this position."""
        # Inside an aggregate: read it again, and skip what was read (`skips`).
        kind = "AT_SEQUENCE_NUMBER" if self.sub_sequence_number is not None else self.kind
        request: dict[str, Any] = {"ShardIteratorType": kind}
        if self.kind in _KINDS_WITH_SEQUENCE:
            request["StartingSequenceNumber"] = self.argument
        elif self.kind == "AT_TIMESTAMP":
            request["Timestamp"] = datetime.fromtimestamp(float(self.argument or 0), tz=UTC)
        return request


TRIM_HORIZON = Position("TRIM_HORIZON")


def after(sequence_number: str, sub_sequence_number: int | None = None) -> Position:
    """After a whole record, or, with `sub_sequence_number`, after that user record in it."""
    return Position("AFTER_SEQUENCE_NUMBER", sequence_number, sub_sequence_number)


def skips(position: Position, sequence_number: str) -> int:
    """How many leading user records of record `sequence_number` reading from here skips."""
    if position.sub_sequence_number is None or position.argument != sequence_number:
        return 0
    return position.sub_sequence_number + 1


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
    sequence, _, sub_sequence = argument.partition("/")
    if kind == "AFTER_SEQUENCE_NUMBER" and sequence.isdigit() and sub_sequence.isdigit():
        return after(sequence, int(sub_sequence))
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
        "AT_TIMESTAMP:<epoch seconds>, AT_SEQUENCE_NUMBER:<n> or "
        "AFTER_SEQUENCE_NUMBER:<n>[/<user record>]"
    )
