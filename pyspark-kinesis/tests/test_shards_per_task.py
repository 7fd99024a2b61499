"""Several shards read by one task (`shardsPerTask`), against real LocalStack Kinesis: the
reader's own methods, then real streaming queries (through the AWS-faithful proxy)."""

from __future__ import annotations

import json
import pickle
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql.streaming.datasource import ReadAllAvailable
from pyspark_kinesis.source import ShardGroup
from test_planning import fill_every_shard, reader_noting_in, shards_of
from test_streaming import BatchLog, by_shard, drain, messages, put, source

from tests.kinesis_proxy import Behaviours
from tests.waiting import wait_until

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


class PartitionLog(BatchLog):
    """A BatchLog that also keeps how many partitions (tasks) each batch read with."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[int, int] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.partitions[batch_id] = batch.rdd.getNumPartitions()
        super().__call__(batch, batch_id)


def test_one_task_reads_four_shards_under_aws_limits_and_replays_each_shard_exactly(
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
    query = frame.writeStream.foreachBatch(first).option("checkpointLocation", str(checkpoint))
    assert query.trigger(availableNow=True).start().awaitTermination(90.0)
    assert first.numbers == list(range(120))
    assert set(first.partitions.values()) == {1}  # 4 shards, shardsPerTask 8 by default
    refused = ("throttled_reads", "throttled_iterators", "limited_control_plane_calls")
    assert [kinesis_proxy.events[event] for event in refused] == [0, 0, 0]
    last_batch = max(first.batches)
    assert len(by_shard(first.batches[last_batch])) == 4  # the replayed task reads all four
    # A crash after the batch ran but before Spark recorded it as committed:
    (checkpoint / "commits" / str(last_batch)).unlink()
    (checkpoint / "commits" / f".{last_batch}.crc").unlink(missing_ok=True)
    put_evenly(kinesis_client, stream, range(120, 140))  # must not leak into the replay
    second = drain(frame, checkpoint)
    assert by_shard(second.batches[last_batch]) == by_shard(first.batches[last_batch])
    replayed = {row["n"] for row in first.batches[last_batch]}
    assert sorted(set(second.numbers) - replayed) == list(range(120, 140))


def test_several_streams_share_tasks_shards_per_task_at_a_time(
    spark: Any, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any, tmp_path: Path
) -> None:
    orders, payments = stream_factory(2), stream_factory(1)
    put(kinesis_client, orders, messages(0, 30))
    put(kinesis_client, payments, messages(100, 10))
    frame = source(
        spark,
        kinesis_endpoint,
        f"{orders},{payments}",
        startingPosition="TRIM_HORIZON",
        shardsPerTask="2",
    )
    log = PartitionLog()
    query = frame.writeStream.foreachBatch(log).option("checkpointLocation", str(tmp_path))
    assert query.trigger(availableNow=True).start().awaitTermination(90.0)
    assert log.numbers == [*range(30), *range(100, 110)]
    assert len({shard for rows in log.batches.values() for shard in by_shard(rows)}) == 3
    # Every batch of all three shards ran in two tasks; one of fewer shards, in one.
    for batch_id, rows in log.batches.items():
        assert log.partitions[batch_id] == -(-len(by_shard(rows)) // 2)
