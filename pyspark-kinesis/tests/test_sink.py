"""The sink in real Spark writes: df.write and writeStream into real LocalStack Kinesis."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import pytest
from kinesis_proxy import Behaviours
from pyspark.sql import DataFrame, SparkSession
from pyspark_kinesis.aggregation import user_records

pytestmark = pytest.mark.unit

DEADLINE_S = 120.0


def connection(endpoint: str, stream: str) -> dict[str, str]:
    return {"streamName": stream, "endpointUrl": endpoint, "region": "us-east-1"}


def rows(spark: SparkSession, count: int) -> DataFrame:
    return spark.range(count).selectExpr(
        "CAST(id AS STRING) AS data", "CONCAT('key-', CAST(id % 5 AS STRING)) AS partitionKey"
    )


def payloads(contents: list[tuple[str, dict]]) -> Counter[bytes]:
    return Counter(
        user.data
        for _, record in contents
        for user in user_records(record["Data"], record["PartitionKey"])
    )


def expected(count: int, first: int = 0) -> Counter[bytes]:
    return Counter(str(n).encode() for n in range(first, first + count))


def test_df_write_puts_every_row_once(spark, kinesis_endpoint, stream_factory, stream_contents):
    stream = stream_factory(shards=2)
    rows(spark, 1000).repartition(3).write.format("kinesis").options(
        **connection(kinesis_endpoint, stream)
    ).mode("append").save()
    assert payloads(stream_contents(stream)) == expected(1000)


def test_columns_other_than_the_sinks_fail_before_any_task(spark, kinesis_endpoint):
    frame = spark.range(3).selectExpr("CAST(id AS STRING) AS body", "'k' AS partitionKey")
    with pytest.raises(Exception, match=r"missing \['data'\], unexpected \['body'\]"):
        frame.write.format("kinesis").options(**connection(kinesis_endpoint, "any")).mode(
            "append"
        ).save()


def test_a_list_of_streams_is_refused_by_the_sink(spark, kinesis_endpoint):
    options = connection(kinesis_endpoint, "orders,payments")
    with pytest.raises(Exception, match="the sink writes one stream, not orders, payments"):
        rows(spark, 1).write.format("kinesis").options(**options).mode("append").save()


def stream_to_stream(
    spark: SparkSession, endpoint: str, source: str, target: str, checkpoint: Path, **extra: str
) -> None:
    events = (
        spark.readStream.format("kinesis")
        .options(**connection(endpoint, source), startingPosition="TRIM_HORIZON")
        .load()
    )
    query = (
        events.selectExpr("data", "partitionKey")
        .writeStream.format("kinesis")
        .options(**connection(endpoint, target), **extra)
        .option("checkpointLocation", str(checkpoint))
        .trigger(availableNow=True)
        .start()
    )
    assert query.awaitTermination(DEADLINE_S), "the availableNow query did not finish"
    assert query.exception() is None


def put_numbers(kinesis_client, stream: str, count: int) -> None:
    for start in range(0, count, 500):
        entries = [
            {"Data": str(n).encode(), "PartitionKey": f"key-{n % 5}"}
            for n in range(start, min(count, start + 500))
        ]
        assert (
            kinesis_client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0
        )


def test_aggregated_stream_to_stream_reads_back_every_user_record(
    spark, kinesis_endpoint, kinesis_client, stream_factory, stream_contents, tmp_path
):
    source, target = stream_factory(shards=2), stream_factory(shards=2)
    put_numbers(kinesis_client, source, 3000)
    stream_to_stream(spark, kinesis_endpoint, source, target, tmp_path, aggregate="true")
    assert len(stream_contents(target)) < 3000  # aggregated: fewer Kinesis records
    back = (
        spark.read.format("kinesis")
        .options(**connection(kinesis_endpoint, target))
        .load()
        .selectExpr("CAST(data AS STRING) AS n")
        .collect()
    )
    assert Counter(row.n.encode() for row in back) == expected(3000)


def test_a_replayed_batch_does_not_write_its_partitions_again(
    spark, kinesis_endpoint, kinesis_client, stream_factory, stream_contents, tmp_path
):
    source, target = stream_factory(shards=2), stream_factory(shards=1)
    put_numbers(kinesis_client, source, 400)
    checkpoint = tmp_path / "checkpoint"
    stream_to_stream(spark, kinesis_endpoint, source, target, checkpoint)
    # As if the driver died after the sink's commit but before Spark logged it:
    # the restarted query runs batch 0 again.
    for logged in (checkpoint / "commits").iterdir():
        logged.unlink()
    stream_to_stream(spark, kinesis_endpoint, source, target, checkpoint)
    assert payloads(stream_contents(target)) == expected(400)


def test_refused_entries_are_resent_by_the_task_and_written_once(
    spark, kinesis_proxy, stream_factory, stream_contents
):
    # A shard takes 300 records/s here (AWS: 1,000): the write goes over it and is refused
    # in part, entry by entry, as Kinesis refuses it.
    kinesis_proxy.behaviours = Behaviours(write_limits=True, writes_per_s=300)
    stream = stream_factory(shards=2)
    rows(spark, 3000).write.format("kinesis").options(**connection(kinesis_proxy.url, stream)).mode(
        "append"
    ).save()
    assert kinesis_proxy.events["refused_writes"] > 0
    assert payloads(stream_contents(stream)) == expected(3000)


def test_records_refused_past_the_deadline_fail_the_write_with_their_count(
    spark, kinesis_proxy, stream_factory
):
    stream = stream_factory(shards=1)
    kinesis_proxy.behaviours = Behaviours(write_limits=True, writes_per_s=0)
    writer = (
        rows(spark, 50)
        .coalesce(1)
        .write.format("kinesis")
        .options(**connection(kinesis_proxy.url, stream), writeRetryDeadline="1s")
        .mode("append")
    )
    with pytest.raises(Exception, match="50 of this task's 50 records were not written"):
        writer.save()


@pytest.mark.parametrize("write", ["batch", "stream"])
def test_an_s3_metadata_path_is_refused_for_the_sink_naming_it(write: str) -> None:
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType
    from pyspark_kinesis.data_source import KinesisDataSource
    from pyspark_kinesis.options import KinesisOptionError

    options = {"streamName": "events", "region": "us-east-1", "metadataPath": "s3://bucket/x"}
    schema = StructType(
        [StructField("data", BinaryType()), StructField("partitionKey", StringType())]
    )
    source = KinesisDataSource(options)
    make = source.writer if write == "batch" else source.streamWriter
    with pytest.raises(KinesisOptionError, match="sink keeps its completion markers"):
        make(schema, False)
