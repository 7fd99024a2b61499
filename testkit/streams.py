"""A stream read back whole, and a stream waited for until ACTIVE: the kit's one copy of each."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from graphlib import TopologicalSorter
from typing import Any

from testkit.waiting import wait_until

ACTIVE_DEADLINE_S = 60.0
PAGE_LIMIT = 10_000


@dataclass(frozen=True)
class StreamRecord:
    """A record as GetRecords answered it, and the shard it was read from."""

    shard_id: str
    record: dict[str, Any]


def read_stream(client: Any, stream: str) -> list[StreamRecord]:
    """Every record the stream holds now, shard by shard from TRIM_HORIZON, parents before
    their children (a key's records move from a parent shard to a child): a closed shard
    to its end, an open one until a page is empty and nothing is behind."""
    shards = {
        shard["ShardId"]: shard
        for page in client.get_paginator("list_shards").paginate(StreamName=stream)
        for shard in page["Shards"]
    }
    parents = {
        shard_id: {shard.get("ParentShardId"), shard.get("AdjacentParentShardId")} - {None}
        for shard_id, shard in shards.items()
    }
    return [
        StreamRecord(shard_id, record)
        for shard_id in TopologicalSorter(parents).static_order()
        # A parent past retention is listed by its children only.
        if shard_id in shards
        for record in _shard_records(client, stream, shards[shard_id])
    ]


def _shard_records(client: Any, stream: str, shard: dict[str, Any]) -> Iterator[dict[str, Any]]:
    closed = "EndingSequenceNumber" in shard["SequenceNumberRange"]
    iterator = client.get_shard_iterator(
        StreamName=stream, ShardId=shard["ShardId"], ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    while iterator:
        answer = client.get_records(ShardIterator=iterator, Limit=PAGE_LIMIT)
        yield from answer["Records"]
        if not closed and not answer["Records"] and answer.get("MillisBehindLatest", 0) == 0:
            return
        iterator = answer.get("NextShardIterator")


def stream_status(client: Any, stream: str) -> str:
    summary = client.describe_stream_summary(StreamName=stream)
    return str(summary["StreamDescriptionSummary"]["StreamStatus"])


def wait_active(
    client: Any, stream: str, deadline_s: float = ACTIVE_DEADLINE_S, poll_s: float = 0.1
) -> None:
    """Returns once the stream is ACTIVE (created, or done resharding); fails naming it."""
    wait_until(
        lambda: stream_status(client, stream) == "ACTIVE",
        f"stream {stream} to be ACTIVE",
        deadline_s,
        poll_s,
    )


def put_all(client: Any, stream: str, entries: list[dict[str, Any]]) -> None:
    """PutRecords of `entries` (at most 500), resending the entries Kinesis refused until
    every one is in; a refused call is the client's to retry."""
    while entries:
        answer = client.put_records(StreamName=stream, Records=entries)
        entries = [
            entry
            for entry, result in zip(entries, answer["Records"], strict=True)
            if "ErrorCode" in result
        ]
