"""Several shards read by one task (`shardsPerTask`), against real LocalStack Kinesis: the
reader's own methods, then real streaming queries (through the AWS-faithful proxy)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from kinesis_proxy import Behaviours
from pyspark.sql.streaming.datasource import ReadAllAvailable
from pyspark_kinesis.partitions import ShardGroup
from test_planning import fill_every_shard, reader_noting_in, shards_of
from test_streaming import PartitionLog, by_shard, drain, forget_commit, source

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit


def test_a_task_reads_its_shards_each_to_its_own_noted_end(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(5)
    fill_every_shard(kinesis_client, stream, 3)
    reader = reader_noting_in(tmp_path, kinesis_endpoint, stream, shards_per_task=2)
    start = reader.initialOffset()

    def batch_of_every_shard() -> dict[str, Any] | None:
        # Records count once 2 s old (no note seen yet): the shards' may come of age apart.
        end = reader.latestOffset(start, ReadAllAvailable())
        takes = [state.take for state in shards_of(end, stream).values()]
        return end if len(takes) == 5 and all(takes) else None

    end = wait_until(batch_of_every_shard, "a batch taking from every shard")
    groups = reader.partitions(start, end)
    assert [len(group.batches) for group in groups if isinstance(group, ShardGroup)] == [2, 2, 1]
    # What Spark ships to the executors: plain data, no client, no lock.
    groups = [pickle.loads(pickle.dumps(group)) for group in groups]
    rows = [row for group in groups for chunk in reader.read(group) for row in chunk.to_pylist()]
    assert len(rows) == 15
    for shard_id, state in shards_of(end, stream).items():
        read = [row["sequenceNumber"] for row in rows if row["shardId"] == shard_id]
        assert read == sorted(read, key=int) and len(read) == 3  # each shard in its order
        assert state.take is not None
        noted = reader.ends_by_stream[stream].get(shard_id, state.position, state.take)
        assert noted is not None and noted.records == 3
        assert str(noted.position.argument) == read[-1]


def put_evenly(kinesis_client: Any, stream: str, numbers: range) -> None:
    """Puts messages of `numbers` on the stream's shards in turn (each shard's hash key)."""
    shards = kinesis_client.list_shards(StreamName=stream)["Shards"]
    entries = [
        {
            "Data": json.dumps({"n": n}).encode(),
            "PartitionKey": str(n),
            "ExplicitHashKey": shards[n % len(shards)]["HashKeyRange"]["StartingHashKey"],
        }
        for n in numbers
    ]
    assert kinesis_client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0


def test_under_aws_read_limits_one_task_reads_four_shards_unthrottled_and_replays_exactly(
    spark: Any, kinesis_proxy: Any, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    stream = stream_factory(4)
    put_evenly(kinesis_client, stream, range(120))  # 30 a shard: 10 a shard in each batch
    kinesis_proxy.behaviours = Behaviours.aws()
    frame = source(
        spark,
        kinesis_proxy.url,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="40",
        maxRecordsPerFetch="5",  # two paced GetRecords per shard and batch
        metadataPath=str(tmp_path / "ends"),
    )
    checkpoint = tmp_path / "checkpoint"
    first = PartitionLog()
    drain(frame, checkpoint, first)
    assert first.numbers == list(range(120))
    assert set(first.partitions.values()) == {1}  # 4 shards, shardsPerTask 8 by default
    refused = ("throttled_reads", "throttled_iterators", "limited_control_plane_calls")
    assert [kinesis_proxy.events[event] for event in refused] == [0, 0, 0]
    last_batch = max(first.batches)
    assert len(by_shard(first.batches[last_batch])) == 4  # the replayed task reads all four
    forget_commit(checkpoint, last_batch)
    put_evenly(kinesis_client, stream, range(120, 140))  # must not leak into the replay
    second = drain(frame, checkpoint)
    assert by_shard(second.batches[last_batch]) == by_shard(first.batches[last_batch])
    replayed = {row["n"] for row in first.batches[last_batch]}
    assert sorted(set(second.numbers) - replayed) == list(range(120, 140))
