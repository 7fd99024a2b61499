"""Per-partition-key order: a record never lands in an earlier batch than one before it.

Pure, so `test_key_order.py` can show the check fails when order is broken; the
fault suite feeds it the stream as read back from Kinesis and the sink's rows.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

# A record's place in the stream: (shard id, sequence number).
Position = tuple[str, str]


def order_violations(
    stream_order: Mapping[str, Sequence[Position]], batch_of: Mapping[Position, int]
) -> list[str]:
    """One line per record written in an earlier batch than a record before it under its key.

    `stream_order` holds each partition key's records in stream order; `batch_of`
    the batch that wrote each record in the sink. Records the sink does not hold
    (dropped resends, dead letters) are skipped.
    """
    violations = []
    for key, positions in stream_order.items():
        latest: tuple[Position, int] | None = None  # the record before, in the latest batch
        for position in positions:
            if position not in batch_of:
                continue
            batch = batch_of[position]
            if latest is not None and batch < latest[1]:
                violations.append(
                    f"key {key!r}: {_named(position)} is in batch {batch}, but "
                    f"{_named(latest[0])} before it is in batch {latest[1]}"
                )
            if latest is None or batch > latest[1]:
                latest = (position, batch)
    return violations


def keys_over_several_batches(
    stream_order: Mapping[str, Sequence[Position]], batch_of: Mapping[Position, int]
) -> int:
    """How many keys have records in more than one batch: where order could have broken."""
    return sum(
        1
        for positions in stream_order.values()
        if len({batch_of[position] for position in positions if position in batch_of}) > 1
    )


def _named(position: Position) -> str:
    shard_id, sequence_number = position
    return f"{shard_id} #{sequence_number}"
