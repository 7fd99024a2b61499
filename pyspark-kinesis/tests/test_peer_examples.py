"""The peers' README examples, as written, on LocalStack with a real Spark session.

Verbatim but for the stream name, the endpoint (LocalStack's port) and, where an
example names a region, LocalStack's region; the console sink, which prints from
the JVM out of pytest's reach, is swapped for the memory sink.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark_kinesis.client import KinesisSourceError, call, make_client
from pyspark_kinesis.options import KinesisOptions

from tests.waiting import wait_until

pytestmark = pytest.mark.unit

REGION = "us-east-1"
QUBOLE_WORDS = ["Kinesis", "Connector", "for", "Apache", "Spark"]
DEADLINE_S = 120.0


def counts_in(spark: SparkSession, table: str) -> dict[str, int]:
    return {row["data"]: row["count"] for row in spark.table(table).collect()}


def word_count_into_memory(kinesis: DataFrame, **trigger: Any) -> tuple[StreamingQuery, str]:
    # The peers' "Start Query" / "Word Count", into the memory sink.
    table = f"counts_{uuid.uuid4().hex[:8]}"
    query = (
        kinesis.selectExpr("CAST(data AS STRING)")
        .groupBy("data")
        .count()
        .writeStream.format("memory")
        .queryName(table)
        .outputMode("complete")
        .trigger(**trigger)
        .start()
    )
    return query, table


def drained_word_counts(spark: SparkSession, kinesis: DataFrame) -> dict[str, int]:
    query, table = word_count_into_memory(kinesis, availableNow=True)
    query.awaitTermination()
    return counts_in(spark, table)


def put_words(kinesis_client: Any, stream: str) -> None:
    for word in QUBOLE_WORDS:  # qubole's README, "Add Records in the stream"
        kinesis_client.put_record(StreamName=stream, PartitionKey="1", Data=word)


def test_qubole_readme_example(
    spark: SparkSession, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(2)
    put_words(kinesis_client, stream)
    ACCESS_KEY, SECRET_KEY = "test", "test"  # noqa: N806 (the README's placeholders)

    # --- qubole's README, "Subscribe to Kinesis Source" ---
    # fmt: off
    kinesis = spark \
        .readStream \
        .format("kinesis") \
        .option("streamName", stream) \
        .option("endpointUrl", kinesis_endpoint) \
        .option("awsAccessKeyId", ACCESS_KEY) \
        .option("awsSecretKey", SECRET_KEY) \
        .option("startingposition", "TRIM_HORIZON") \
        .load()
    # fmt: on

    assert drained_word_counts(spark, kinesis) == dict.fromkeys(QUBOLE_WORDS, 1)


def test_aws_connector_readme_getrecords_example(
    spark: SparkSession, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(1)
    kinesis_client.put_record(StreamName=stream, PartitionKey="k", Data="before the query")
    endpointUrl = kinesis_endpoint  # noqa: N806 (the README's name)

    # --- the AWS connector's README, "Configure Kinesis Source with GetRecords consumer type" ---
    # fmt: off
    kinesis = spark \
        .readStream \
        .format("aws-kinesis") \
        .option("kinesis.region", REGION) \
        .option("kinesis.streamName", stream) \
        .option("kinesis.consumerType", "GetRecords") \
        .option("kinesis.endpointUrl", endpointUrl) \
        .option("kinesis.startingposition", "LATEST") \
        .load()
    # fmt: on

    query, table = word_count_into_memory(kinesis, processingTime="1 second")
    try:
        # LATEST is pinned at the first trigger: what arrives after it is read.
        wait_until(
            lambda: query.lastProgress is not None,
            "the query's first trigger",
            deadline_s=DEADLINE_S,
        )
        kinesis_client.put_record(StreamName=stream, PartitionKey="k", Data="after")
        wait_until(
            lambda: counts_in(spark, table) == {"after": 1},
            "the record put after LATEST",
            deadline_s=DEADLINE_S,
        )
    finally:
        query.stop()


def test_aws_connector_readme_subscribe_to_shard_example_is_refused_clearly(
    spark: SparkSession, kinesis_endpoint: str
) -> None:
    endpointUrl = kinesis_endpoint  # noqa: N806 (the README's name)
    with pytest.raises(Exception, match="enhanced fan-out") as caught:
        # --- the AWS connector's README, "... with SubscribeToShard consumer type" ---
        # fmt: off
        spark \
            .readStream \
            .format("aws-kinesis") \
            .option("kinesis.region", REGION) \
            .option("kinesis.streamName", "teststream") \
            .option("kinesis.consumerType", "SubscribeToShard") \
            .option("kinesis.endpointUrl", endpointUrl) \
            .option("kinesis.startingposition", "LATEST") \
            .option("kinesis.consumerName", "TestConsumer") \
            .load()
        # fmt: on
    assert "kinesis.consumerType=GetRecords" in str(caught.value)


def test_databricks_documented_options(
    spark: SparkSession, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    # Databricks documents these options, not a complete example; endpointUrl is ours.
    stream = stream_factory(1)
    put_words(kinesis_client, stream)
    kinesis = (
        spark.readStream.format("kinesis")
        .option("streamName", stream)
        .option("region", REGION)
        .option("initialPosition", "earliest")
        .option("awsAccessKey", "test")
        .option("awsSecretKey", "test")
        .option("maxRecordsPerFetch", "2")
        .option("shardsPerTask", "5")
        .option("endpointUrl", kinesis_endpoint)
        .load()
    )
    assert drained_word_counts(spark, kinesis) == dict.fromkeys(QUBOLE_WORDS, 1)


def test_the_aws_connectors_per_shard_limit_counts_rows_of_kpl_aggregates(
    spark: SparkSession, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(1)
    aggregator = RecordAggregator()
    for n in range(5):
        aggregator.add_user_record("k", f"row-{n}".encode())
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    kinesis_client.put_record(StreamName=stream, PartitionKey=partition_key, Data=data)
    kinesis = (
        spark.readStream.format("aws-kinesis")
        .option("kinesis.region", REGION)
        .option("kinesis.streamName", stream)
        .option("kinesis.endpointUrl", kinesis_endpoint)
        .option("kinesis.startingPosition", "TRIM_HORIZON")
        .option("kinesis.maxFetchRecordsPerShard", "2")
        .load()
    )
    batches: list[list[str]] = []
    query = (
        kinesis.selectExpr("CAST(data AS STRING) AS data", "subSequenceNumber")
        .writeStream.foreachBatch(
            lambda frame, _: batches.append(
                [row["data"] for row in frame.orderBy("subSequenceNumber").collect()]
            )
        )
        .trigger(availableNow=True)
        .start()
    )
    query.awaitTermination()
    assert [batch for batch in batches if batch] == [
        ["row-0", "row-1"],
        ["row-2", "row-3"],
        ["row-4"],
    ]


def test_a_missing_stream_named_without_a_region_names_the_region_used(
    kinesis_endpoint: str,
) -> None:
    # No region option: the default chain's region (AWS_DEFAULT_REGION in these tests).
    options = KinesisOptions.parse(
        {"streamName": "no-such-stream", "endpointUrl": kinesis_endpoint}
    )
    with pytest.raises(KinesisSourceError, match=f"not found in region '{REGION}'"):
        call(options, make_client(options).list_shards, StreamName=options.stream_name)
