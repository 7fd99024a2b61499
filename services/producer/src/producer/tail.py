"""`producer tail`: a stream's records as they arrive, one JSON line each, without Spark.

Each line holds the record's shard, sequence number, partition key, arrival time
and payload: the decoded JSON where it is JSON, else the text, else base64. One
GetRecords per shard per poll, as a Kinesis consumer without the KCL reads;
shards that closed (resharding) are replaced by their children at the next listing.
"""

from __future__ import annotations

import binascii
import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

POLL_S = 1.0


def describe_record(shard_id: str, record: dict[str, Any]) -> dict[str, Any]:
    """What `tail` prints for one GetRecords record."""
    data: bytes = record["Data"]
    arrival = record["ApproximateArrivalTimestamp"]
    if isinstance(arrival, datetime):
        arrival = arrival.astimezone(UTC).isoformat(timespec="milliseconds")
    return {
        "shard": shard_id,
        "sequence_number": record["SequenceNumber"],
        "partition_key": record["PartitionKey"],
        "arrival": arrival,
        **_payload(data),
    }


def _payload(data: bytes) -> dict[str, Any]:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return {"data_base64": binascii.b2a_base64(data, newline=False).decode()}
    try:
        return {"data": json.loads(text)}
    except ValueError:
        return {"data_text": text}


def tail(
    client: Any,
    stream: str,
    *,
    from_start: bool,
    stop: threading.Event,
) -> Iterator[dict[str, Any]]:
    """Yields the stream's records as described lines until `stop` is set.

    From the newest record on (LATEST), or from the oldest kept (TRIM_HORIZON).
    """
    start = "TRIM_HORIZON" if from_start else "LATEST"
    iterators: dict[str, str] = {}
    finished: set[str] = set()
    while not stop.is_set():
        for shard_id in _open_shards(client, stream, known=iterators.keys() | finished):
            iterators[shard_id] = client.get_shard_iterator(
                StreamName=stream, ShardId=shard_id, ShardIteratorType=start
            )["ShardIterator"]
        for shard_id, iterator in list(iterators.items()):
            answer = client.get_records(ShardIterator=iterator, Limit=1000)
            for record in answer["Records"]:
                yield describe_record(shard_id, record)
            if answer.get("NextShardIterator"):
                iterators[shard_id] = answer["NextShardIterator"]
            else:  # closed by a reshard and read to its end: its children carry on
                del iterators[shard_id]
                finished.add(shard_id)
        # Children of a closed shard start at their beginning: nothing between is skipped.
        start = "TRIM_HORIZON"
        stop.wait(POLL_S)


def _open_shards(client: Any, stream: str, *, known: set[str]) -> list[str]:
    shards = [
        shard["ShardId"]
        for page in client.get_paginator("list_shards").paginate(StreamName=stream)
        for shard in page["Shards"]
    ]
    return [shard_id for shard_id in shards if shard_id not in known]


def as_line(described: dict[str, Any]) -> str:
    return json.dumps(described, ensure_ascii=False, default=str)
