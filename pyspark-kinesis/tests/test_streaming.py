"""The source in real streaming queries: a local Spark session against real LocalStack Kinesis."""

from __future__ import annotations

import hashlib
import json
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import boto3
import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from botocore.config import Config
from kinesis_proxy import Behaviours
from pyspark.errors import StreamingQueryException
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming.query import StreamingQuery

from testkit.streams import put_all, wait_active
from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

DEADLINE_S = 90.0


def put(
    kinesis_client, stream: str, payloads: list[dict[str, Any]], key: str | None = None
) -> None:
    entries = [
        {"Data": json.dumps(payload).encode(), "PartitionKey": key or str(payload["n"])}
        for payload in payloads
    ]
    for start in range(0, len(entries), 500):
        answer = kinesis_client.put_records(StreamName=stream, Records=entries[start : start + 500])
        assert answer["FailedRecordCount"] == 0


def messages(first: int, count: int) -> list[dict[str, Any]]:
    return [{"n": n} for n in range(first, first + count)]


def source(spark: SparkSession, endpoint: str, stream: str, **options: str) -> DataFrame:
    reader = (
        spark.readStream.format("kinesis")
        .option("streamName", stream)
        .option("endpointUrl", endpoint)
        .option("region", "us-east-1")
    )
    for name, value in options.items():
        reader = reader.option(name, value)
    return reader.load()


class BatchLog:
    """Collects every micro-batch a query writes, by batch id, in the order rows came."""

    def __init__(self) -> None:
        self.batches: dict[int, list[dict[str, Any]]] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        rows = batch.selectExpr("CAST(data AS STRING) AS body", "*").drop("data").collect()
        self.batches[batch_id] = [{**row.asDict(), **json.loads(row.body)} for row in rows]

    @property
    def numbers(self) -> list[int]:
        return sorted(row["n"] for rows in self.batches.values() for row in rows)


class PartitionLog(BatchLog):
    """A BatchLog that also keeps how many partitions (tasks) each batch read with."""

    def __init__(self) -> None:
        super().__init__()
        self.partitions: dict[int, int] = {}

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        self.partitions[batch_id] = batch.rdd.getNumPartitions()
        super().__call__(batch, batch_id)


def by_shard(rows: list[dict[str, Any]]) -> dict[tuple[str, str], list[dict[str, Any]]]:
    """A batch's rows by (stream, shard), each shard's in the order read: a task reads its
    shards at once, so only each shard's own order is fixed."""
    shards: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    for row in rows:
        shards[row["streamName"], row["shardId"]].append(row)
    return dict(shards)


def forget_commit(checkpoint: Path, batch_id: int) -> None:
    """A crash after the batch ran but before Spark recorded it as committed."""
    (checkpoint / "commits" / str(batch_id)).unlink()
    (checkpoint / "commits" / f".{batch_id}.crc").unlink(missing_ok=True)


def run(frame: DataFrame, log: BatchLog, checkpoint: Path, **trigger: Any) -> StreamingQuery:
    writer = frame.writeStream.foreachBatch(log).option("checkpointLocation", str(checkpoint))
    return writer.trigger(**(trigger or {"availableNow": True})).start()


def drain(frame: DataFrame, checkpoint: Path, log: BatchLog | None = None) -> BatchLog:
    log = log or BatchLog()
    query = run(frame, log, checkpoint)
    assert query.awaitTermination(DEADLINE_S), "availableNow query did not finish"
    return log


def test_trim_horizon_reads_every_record_once(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 100))
    frame = source(spark, read_endpoint, stream, startingPosition="TRIM_HORIZON")
    assert drain(frame, tmp_path).numbers == list(range(100))


def test_latest_reads_only_what_arrives_after_the_query_starts(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 10))
    log = BatchLog()
    frame = source(spark, read_endpoint, stream, startingPosition="LATEST")
    query = run(frame, log, tmp_path, processingTime="200 milliseconds")
    try:
        wait_until(
            lambda: bool(query.recentProgress), "the query's first trigger", deadline_s=DEADLINE_S
        )
        put(kinesis_client, stream, messages(10, 10))
        wait_until(lambda: len(log.numbers) >= 10, "the new records", deadline_s=DEADLINE_S)
    finally:
        query.stop()
    assert log.numbers == list(range(10, 20))


def _sequence_numbers(kinesis_client, stream: str) -> list[tuple[str, Any]]:
    shard = kinesis_client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    iterator = kinesis_client.get_shard_iterator(
        StreamName=stream, ShardId=shard, ShardIteratorType="TRIM_HORIZON"
    )["ShardIterator"]
    records = kinesis_client.get_records(ShardIterator=iterator)["Records"]
    return [(record["SequenceNumber"], record["ApproximateArrivalTimestamp"]) for record in records]


def test_per_shard_positions_name_their_stream_when_several_are_read(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    orders, payments = stream_factory(1), stream_factory(1)
    put(kinesis_client, orders, messages(0, 8))
    put(kinesis_client, payments, messages(100, 4))
    shard = kinesis_client.list_shards(StreamName=orders)["Shards"][0]["ShardId"]
    third = _sequence_numbers(kinesis_client, orders)[3][0]
    position = json.dumps({f"{orders}/{shard}": f"AFTER_SEQUENCE_NUMBER:{third}", "*": "EARLIEST"})
    frame = source(spark, kinesis_endpoint, f"{orders},{payments}", startingPosition=position)
    assert by_stream(drain(frame, tmp_path)) == {
        orders: list(range(4, 8)),
        payments: list(range(100, 104)),
    }


@pytest.mark.parametrize(
    ("kind", "first_read"), [("AT_SEQUENCE_NUMBER", 3), ("AFTER_SEQUENCE_NUMBER", 4)]
)
def test_per_shard_sequence_number_positions(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path, kind, first_read
):
    stream = stream_factory(1)
    put(kinesis_client, stream, messages(0, 8))
    shard = kinesis_client.list_shards(StreamName=stream)["Shards"][0]["ShardId"]
    third = _sequence_numbers(kinesis_client, stream)[3][0]
    position = json.dumps({shard: f"{kind}:{third}"})
    frame = source(spark, kinesis_endpoint, stream, startingPosition=position)
    assert drain(frame, tmp_path).numbers == list(range(first_read, 8))


def test_at_timestamp_starts_at_the_first_record_at_or_after_it(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(1)
    put(kinesis_client, stream, messages(0, 5))
    # Within the same second as the first five: AT_TIMESTAMP must still split them.
    wait_until(
        lambda: time.time() > _sequence_numbers(kinesis_client, stream)[-1][1].timestamp() + 0.01,
        "a later millisecond",
        deadline_s=DEADLINE_S,
    )
    put(kinesis_client, stream, messages(5, 5))
    start = _sequence_numbers(kinesis_client, stream)[5][1].isoformat()
    frame = source(
        spark, kinesis_endpoint, stream, startingPosition="AT_TIMESTAMP", startingTimestamp=start
    )
    assert drain(frame, tmp_path).numbers == list(range(5, 10))


def test_a_restart_resumes_after_the_last_committed_record(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    frame = source(spark, read_endpoint, stream, startingPosition="TRIM_HORIZON")
    put(kinesis_client, stream, messages(0, 30))
    assert drain(frame, tmp_path).numbers == list(range(30))
    put(kinesis_client, stream, messages(30, 30))
    assert drain(frame, tmp_path).numbers == list(range(30, 60))


@pytest.mark.parametrize("notes", ["directory", "s3", "none"])
def test_a_replayed_batch_returns_the_very_same_records(
    spark, read_endpoint, kinesis_endpoint, kinesis_client, stream_factory, tmp_path, request, notes
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 40))
    # Tasks note where each batch ended under metadataPath; with a plain file there every
    # note fails, so the driver and the replay must find the same ends by reading.
    metadata = tmp_path / "ends"
    metadata_path = str(metadata)
    if notes == "none":
        metadata.write_text("not a directory")
    s3 = {}
    if notes == "s3":
        bucket = request.getfixturevalue("s3_bucket")
        metadata_path = f"s3://{bucket}/checkpoints/kinesis-ends"
        # S3 is LocalStack's own, not behind the Kinesis proxy (which forwards Kinesis only).
        s3 = {"s3EndpointUrl": kinesis_endpoint}

    def noted() -> int:
        if notes == "s3":
            s3 = request.getfixturevalue("s3_client")
            return s3.list_objects_v2(Bucket=bucket).get("KeyCount", 0)
        return len(list(metadata.rglob("*.json"))) if metadata.is_dir() else 0

    frame = source(
        spark,
        read_endpoint,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="10",
        metadataPath=metadata_path,
        **s3,
    )
    checkpoint = tmp_path / "checkpoint"
    first = drain(frame, checkpoint)
    assert (noted() > 0) == (notes != "none")
    last_batch = max(first.batches)
    forget_commit(checkpoint, last_batch)
    put(kinesis_client, stream, messages(40, 10))  # must not leak into the replay
    second = drain(frame, checkpoint)
    assert by_shard(second.batches[last_batch]) == by_shard(first.batches[last_batch])
    assert sorted(first.numbers + second.numbers) == sorted(
        list(range(50)) + [row["n"] for row in first.batches[last_batch]]
    )


def test_available_now_with_a_record_limit_drains_in_bounded_batches_and_stops(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 55))
    frame = source(
        spark, read_endpoint, stream, startingPosition="TRIM_HORIZON", maxRecordsPerTrigger="10"
    )
    log = drain(frame, tmp_path)
    assert log.numbers == list(range(55))
    assert max(len(rows) for rows in log.batches.values()) <= 10
    assert len(log.batches) >= 6


def _open_shards(kinesis_client, stream: str) -> list[dict[str, Any]]:
    shards = kinesis_client.list_shards(StreamName=stream)["Shards"]
    return [shard for shard in shards if "EndingSequenceNumber" not in shard["SequenceNumberRange"]]


def test_split_and_merge_under_a_running_query_keep_every_record_in_key_order(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(1)
    keys = [f"key-{index}" for index in range(6)]
    counter = iter(range(10_000))

    def put_round() -> None:
        for key in keys:
            put(
                kinesis_client,
                stream,
                [{"n": next(counter), "key": key} for _ in range(5)],
                key=key,
            )

    log = BatchLog()
    frame = source(spark, read_endpoint, stream, startingPosition="TRIM_HORIZON")
    query = run(frame, log, tmp_path, processingTime="200 milliseconds")
    try:
        put_round()
        parent = _open_shards(kinesis_client, stream)[0]
        low, high = (
            int(parent["HashKeyRange"]["StartingHashKey"]),
            int(parent["HashKeyRange"]["EndingHashKey"]),
        )
        kinesis_client.split_shard(
            StreamName=stream,
            ShardToSplit=parent["ShardId"],
            NewStartingHashKey=str((low + high) // 2),
        )
        wait_active(kinesis_client, stream)
        put_round()
        children = sorted(
            _open_shards(kinesis_client, stream),
            key=lambda s: int(s["HashKeyRange"]["StartingHashKey"]),
        )
        kinesis_client.merge_shards(
            StreamName=stream,
            ShardToMerge=children[0]["ShardId"],
            AdjacentShardToMerge=children[1]["ShardId"],
        )
        wait_active(kinesis_client, stream)
        put_round()
        wait_until(lambda: len(log.numbers) >= 90, "all 90 records", deadline_s=DEADLINE_S)
        # Give the query a few more triggers to show nothing is read twice.
        settled = len(query.recentProgress) + 5
        wait_until(
            lambda: len(query.recentProgress) >= settled,
            "five more triggers",
            deadline_s=DEADLINE_S,
        )
    finally:
        query.stop()
    assert log.numbers == list(range(90))
    seen: dict[str, list[int]] = defaultdict(list)
    for batch_id in sorted(log.batches):
        for row in log.batches[batch_id]:
            seen[row["key"]].append(row["n"])
    assert all(numbers == sorted(numbers) for numbers in seen.values()), seen
    assert len({row["shardId"] for rows in log.batches.values() for row in rows}) == 4


def test_kpl_aggregated_records_become_one_row_per_user_record(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(1)
    aggregator = RecordAggregator()
    for n in range(3):
        aggregator.add_user_record(f"user-key-{n}", json.dumps({"n": n}).encode())
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    kinesis_client.put_record(StreamName=stream, Data=data, PartitionKey=partition_key)
    put(kinesis_client, stream, [{"n": 3}])
    frame = source(spark, kinesis_endpoint, stream, startingPosition="TRIM_HORIZON")
    rows = [row for rows in drain(frame, tmp_path).batches.values() for row in rows]
    aggregated = sorted((row["n"], row["partitionKey"], row["subSequenceNumber"]) for row in rows)
    assert aggregated == [
        (0, "user-key-0", 0),
        (1, "user-key-1", 1),
        (2, "user-key-2", 2),
        (3, "3", 0),
    ]
    assert len({(row["sequenceNumber"], row["subSequenceNumber"]) for row in rows}) == 4


def test_idle_shards_and_an_idle_stream_never_stall_the_query(
    spark, kinesis_endpoint, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(4)
    log = BatchLog()
    frame = source(spark, kinesis_endpoint, stream, startingPosition="TRIM_HORIZON")
    query = run(frame, log, tmp_path, processingTime="100 milliseconds")
    try:
        wait_until(
            lambda: len(query.recentProgress) >= 5, "five idle triggers", deadline_s=DEADLINE_S
        )
        # Spark always runs a first batch; after it, an idle stream runs none.
        assert set(log.batches) <= {0}
        assert log.numbers == []
        # Every record to one shard: the three idle ones must not hold it back.
        put(kinesis_client, stream, messages(0, 20), key="one-key")
        wait_until(
            lambda: len(log.numbers) >= 20, "records in the busy shard", deadline_s=DEADLINE_S
        )
    finally:
        query.stop()
    assert log.numbers == list(range(20))


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"streamName": "s", "streamNmae": "typo"}, "(?i)unknown option 'streamNmae'"),
        ({"region": "us-east-1"}, "missing the stream"),
        ({"streamName": "s", "startingPosition": "MIDDLE"}, "is not a starting position"),
        ({"streamName": "s", "maxRecordsPerTrigger": "-5"}, "must be a whole number"),
        ({"streamName": "s", "awsAccessKeyId": "AKIA"}, "set both awsAccessKeyId and awsSecretKey"),
        ({"streamName": "s, t, s"}, "names 's' twice"),
        (
            {"streamName": "s,t", "startingPosition": '{"shardId-000000000000": "TRIM_HORIZON"}'},
            "names shard 'shardId-000000000000' without its stream",
        ),
    ],
)
def test_a_bad_option_fails_at_load_naming_it(spark, options, message):
    reader = spark.readStream.format("kinesis")
    for name, value in options.items():
        reader = reader.option(name, value)
    with pytest.raises(Exception, match=message):
        reader.load()


def test_a_missing_stream_stops_the_query_with_a_clear_error(spark, kinesis_endpoint, tmp_path):
    frame = source(spark, kinesis_endpoint, "no-such-stream", startingPosition="TRIM_HORIZON")
    query = run(frame, BatchLog(), tmp_path)
    with pytest.raises(StreamingQueryException, match="Kinesis stream 'no-such-stream' not found"):
        query.awaitTermination(DEADLINE_S)


def test_a_missing_stream_among_several_fails_at_load_naming_it(
    spark, kinesis_endpoint, stream_factory
):
    stream = stream_factory(1)
    with pytest.raises(Exception, match=r"Kinesis stream.* 'no-such-stream' not found"):
        source(spark, kinesis_endpoint, f"{stream}, no-such-stream")


def by_stream(log: BatchLog) -> dict[str, list[int]]:
    """The numbers read, by the stream the rows' `streamName` names."""
    numbers: dict[str, list[int]] = defaultdict(list)
    for rows in log.batches.values():
        for row in rows:
            numbers[row["streamName"]].append(row["n"])
    return {name: sorted(found) for name, found in numbers.items()}


def test_two_streams_in_one_query_share_the_trigger_limit_and_tasks_and_replay_exactly(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    orders, payments = stream_factory(2), stream_factory(1)
    put(kinesis_client, orders, messages(0, 30))
    put(kinesis_client, payments, messages(100, 20))
    frame = source(
        spark,
        read_endpoint,
        f"{orders}, {payments}",
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="10",
        metadataPath=str(tmp_path / "ends"),
        shardsPerTask="2",
    )
    checkpoint = tmp_path / "checkpoint"
    first = PartitionLog()
    drain(frame, checkpoint, first)
    assert by_stream(first) == {orders: list(range(30)), payments: list(range(100, 120))}
    assert max(len(rows) for rows in first.batches.values()) <= 10
    # The shards with records of both streams, two to a task.
    assert 3 in {len(by_shard(rows)) for rows in first.batches.values()}
    for batch_id, rows in first.batches.items():
        assert first.partitions[batch_id] == -(-len(by_shard(rows)) // 2)
    last_batch = max(first.batches)
    forget_commit(checkpoint, last_batch)
    put(kinesis_client, orders, messages(30, 5))  # must not leak into the replay
    put(kinesis_client, payments, messages(120, 5))
    second = drain(frame, checkpoint)
    assert by_shard(second.batches[last_batch]) == by_shard(first.batches[last_batch])
    replayed = {row["n"] for row in first.batches[last_batch]}
    assert sorted(set(second.numbers) - replayed) == [*range(30, 35), *range(120, 125)]


def _keys_either_side_of(hash_key: int) -> list[str]:
    """Two partition keys, one Kinesis hashes below `hash_key` and one at or above it."""
    below = above = None
    for index in range(1000):
        key = f"key-{index}"
        hashed = int(hashlib.md5(key.encode()).hexdigest(), 16)  # Kinesis' own hash
        if hashed < hash_key:
            below = below or key
        else:
            above = above or key
        if below and above:
            return [below, above]
    raise AssertionError("no keys either side of the split")


def test_one_stream_split_while_the_other_is_not_keeps_each_key_in_order(
    spark, read_endpoint, kinesis_client, stream_factory, tmp_path
):
    split, still = stream_factory(1), stream_factory(1)
    parent = _open_shards(kinesis_client, split)[0]
    low = int(parent["HashKeyRange"]["StartingHashKey"])
    middle = (low + int(parent["HashKeyRange"]["EndingHashKey"])) // 2
    keys = _keys_either_side_of(middle)
    counter = iter(range(10_000))

    def put_round() -> None:
        for stream in (split, still):
            for key in keys:
                put(kinesis_client, stream, [{"n": next(counter)} for _ in range(6)], key=key)

    frame = source(spark, read_endpoint, f"{split},{still}", startingPosition="TRIM_HORIZON")
    put_round()
    first = drain(frame, tmp_path)
    kinesis_client.split_shard(
        StreamName=split, ShardToSplit=parent["ShardId"], NewStartingHashKey=str(middle)
    )
    wait_active(kinesis_client, split)
    put_round()
    second = drain(frame, tmp_path)
    assert sorted(first.numbers + second.numbers) == list(range(48))  # 2 rounds x 2 x 2 x 6
    in_order: dict[tuple[str, str], list[int]] = defaultdict(list)
    shards: dict[str, set[str]] = defaultdict(set)
    for log in (first, second):
        for batch_id in sorted(log.batches):
            for row in log.batches[batch_id]:
                in_order[row["streamName"], row["partitionKey"]].append(row["n"])
                shards[row["streamName"]].add(row["shardId"])
    assert all(numbers == sorted(numbers) for numbers in in_order.values()), in_order
    assert (len(shards[split]), len(shards[still])) == (3, 1)


def test_throttling_is_waited_out_and_nothing_is_skipped(
    spark, throttled_kinesis_endpoint, throttling_proxy, tmp_path
):
    # The test's own writes retry hard: LocalStack refuses some of them on purpose.
    client = boto3.client(
        "kinesis",
        endpoint_url=throttled_kinesis_endpoint,
        region_name="us-east-1",
        config=Config(retries={"mode": "standard", "max_attempts": 20}),
    )
    stream = "throttled"
    client.create_stream(StreamName=stream, ShardCount=2)
    wait_active(client, stream)
    pending = [{"Data": json.dumps({"n": n}).encode(), "PartitionKey": str(n)} for n in range(200)]
    put_all(client, stream, pending)
    frame = source(
        spark,
        throttling_proxy.url,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="50",
    )
    assert drain(frame, tmp_path).numbers == list(range(200))
    assert throttling_proxy.events["throttled_reads"] > 10


def test_available_now_drains_past_empty_pages_and_still_ends(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 200))
    # AWS may answer empty pages while records wait (MillisBehindLatest > 0).
    kinesis_proxy.behaviours = Behaviours(empty_pages_first=2, empty_page_probability=0.3)
    frame = source(
        spark, kinesis_proxy.url, stream, startingPosition="TRIM_HORIZON", maxRecordsPerTrigger="50"
    )
    assert drain(frame, tmp_path).numbers == list(range(200))
    assert kinesis_proxy.events["empty_pages"] >= 4


def test_under_server_errors_and_dropped_connections_a_query_reads_every_record_once(
    spark, kinesis_proxy, kinesis_client, stream_factory, tmp_path
):
    stream = stream_factory(2)
    put(kinesis_client, stream, messages(0, 100))
    # 60% of reads fail: botocore's own 5 attempts all fail for 8% of calls.
    kinesis_proxy.behaviours = Behaviours(
        server_error_probability=0.2,
        unavailable_probability=0.2,
        dropped_connection_probability=0.2,
    )
    frame = source(
        spark,
        kinesis_proxy.url,
        stream,
        startingPosition="TRIM_HORIZON",
        maxRecordsPerTrigger="50",
        maxRecordsPerFetch="10",
    )
    log = drain(frame, tmp_path)
    assert log.numbers == list(range(100))  # each once: nothing lost, nothing doubled
    faults = ("server_errors", "unavailable", "dropped_connections")
    assert all(kinesis_proxy.events[fault] > 0 for fault in faults)
