"""`spark.read.format("kinesis")`: bounded reads of real LocalStack Kinesis streams."""

from __future__ import annotations

import pytest
from pyspark.sql import DataFrame, SparkSession
from pyspark_kinesis.batch_reader import parents_first
from pyspark_kinesis.shards import Shard

from testkit.streams import wait_active

pytestmark = pytest.mark.unit


def read(spark: SparkSession, endpoint: str, stream: str, **options: str) -> DataFrame:
    return (
        spark.read.format("kinesis")
        .options(streamName=stream, endpointUrl=endpoint, region="us-east-1", **options)
        .load()
    )


def put(kinesis_client, stream: str, numbers: range, key: str | None = None) -> list[dict]:
    entries = [{"Data": str(n).encode(), "PartitionKey": key or f"key-{n}"} for n in numbers]
    answer = kinesis_client.put_records(StreamName=stream, Records=entries)
    assert answer["FailedRecordCount"] == 0
    return answer["Records"]


def numbers(frame: DataFrame) -> list[int]:
    return [int(row.n) for row in frame.selectExpr("CAST(data AS STRING) AS n").collect()]


def test_parents_come_before_their_children() -> None:
    shards = [
        Shard("shardId-000000000003", ("shardId-000000000001", "shardId-000000000002"), False),
        Shard("shardId-000000000001", ("shardId-000000000000",), True),
        Shard("shardId-000000000002", ("shardId-000000000000",), True),
        Shard("shardId-000000000000", (), True),
    ]
    assert [shard.shard_id[-1] for shard in parents_first(shards)] == ["0", "1", "2", "3"]


def test_reads_every_record_from_trim_horizon_shards_per_task_to_a_partition(
    spark, kinesis_endpoint, kinesis_client, stream_factory
):
    stream = stream_factory(shards=3)
    put(kinesis_client, stream, range(300))
    assert read(spark, kinesis_endpoint, stream).rdd.getNumPartitions() == 1  # default: 8
    frame = read(spark, kinesis_endpoint, stream, shardsPerTask="2")
    assert frame.rdd.getNumPartitions() == 2
    assert sorted(numbers(frame)) == list(range(300))


def test_ending_timestamp_leaves_out_later_records(
    spark, kinesis_endpoint, kinesis_client, stream_factory, stream_contents
):
    stream = stream_factory(shards=1)
    put(kinesis_client, stream, range(10))
    first_arrival = max(r["ApproximateArrivalTimestamp"] for _, r in stream_contents(stream))
    put(kinesis_client, stream, range(10, 20))
    later = [
        record
        for _, record in stream_contents(stream)
        if record["ApproximateArrivalTimestamp"] > first_arrival
    ]
    ending = str(first_arrival.timestamp())
    frame = read(spark, kinesis_endpoint, stream, endingTimestamp=ending)
    assert len(numbers(frame)) == 20 - len(later)
    assert sorted(numbers(frame)) == list(range(20 - len(later)))


@pytest.mark.parametrize("shards_per_task", ["1", "3"])
def test_a_split_stream_reads_the_parent_before_its_children(
    spark, kinesis_endpoint, kinesis_client, stream_factory, shards_per_task
):
    stream = stream_factory(shards=1)
    put(kinesis_client, stream, range(20), key="same-key")
    parent = kinesis_client.list_shards(StreamName=stream)["Shards"][0]
    low = int(parent["HashKeyRange"]["StartingHashKey"])
    high = int(parent["HashKeyRange"]["EndingHashKey"])
    kinesis_client.split_shard(
        StreamName=stream, ShardToSplit=parent["ShardId"], NewStartingHashKey=str((low + high) // 2)
    )
    wait_active(kinesis_client, stream)
    put(kinesis_client, stream, range(20, 40), key="same-key")
    # A task each, or the three in one task: the children's reads wait for the parent's.
    frame = read(spark, kinesis_endpoint, stream, shardsPerTask=shards_per_task)
    assert numbers(frame) == list(range(40))  # one key: in order across the split


def test_two_streams_in_one_read_shards_per_task_over_both_rows_told_apart_by_stream(
    spark, kinesis_endpoint, kinesis_client, stream_factory
):
    orders, payments = stream_factory(shards=2), stream_factory(shards=1)
    put(kinesis_client, orders, range(50))
    put(kinesis_client, payments, range(100, 130))
    frame = read(spark, kinesis_endpoint, f"{orders} , {payments}", shardsPerTask="2")
    assert frame.rdd.getNumPartitions() == 2
    rows = frame.selectExpr("streamName", "CAST(data AS STRING) AS n").collect()
    by_stream = {
        name: sorted(int(row.n) for row in rows if row.streamName == name)
        for name in (orders, payments)
    }
    assert by_stream == {orders: list(range(50)), payments: list(range(100, 130))}


def test_a_missing_stream_among_several_fails_the_batch_read_at_load(
    spark, kinesis_endpoint, stream_factory
):
    stream = stream_factory(shards=1)
    with pytest.raises(Exception, match="'no-such-stream' not found"):
        read(spark, kinesis_endpoint, f"{stream},no-such-stream")


def test_latest_is_refused_in_a_batch_read(spark, kinesis_endpoint, stream_factory):
    stream = stream_factory(shards=1)
    with pytest.raises(Exception, match="LATEST reads nothing in a batch read"):
        read(spark, kinesis_endpoint, stream, startingPosition="LATEST").collect()
