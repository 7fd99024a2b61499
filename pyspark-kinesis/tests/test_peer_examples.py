"""The peers' README examples, as written, on LocalStack with a real Spark session.

Verbatim but for the stream name, the endpoint (LocalStack's port) and, where an
example names a region, LocalStack's region; the console sink, which prints from
the JVM out of pytest's reach, is swapped for the memory sink. The sink examples
are Scala: their `.as[(String,String)]` is left out, the AWS connector's checkpoint
path is a temporary directory, and qubole's, which names none, gets the session's
default checkpoint directory.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql.streaming import StreamingQuery
from pyspark_kinesis.aggregation import user_records
from pyspark_kinesis.client import KinesisSourceError, call, make_client
from pyspark_kinesis.options import KinesisOptions

from testkit.clients import REGION
from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

ACCESS_KEY, SECRET_KEY = "test", "test"  # qubole's README's placeholders, LocalStack's keys
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


def qubole_readme_source(spark: SparkSession, stream: str, kinesis_endpoint: str) -> DataFrame:
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
    return kinesis


def test_qubole_readme_example(
    spark: SparkSession, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(2)
    put_words(kinesis_client, stream)
    kinesis = qubole_readme_source(spark, stream, kinesis_endpoint)
    assert drained_word_counts(spark, kinesis) == dict.fromkeys(QUBOLE_WORDS, 1)


def aws_readme_source(spark: SparkSession, stream: str, endpointUrl: str) -> DataFrame:  # noqa: N803 (the README's name)
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
    return kinesis


def test_aws_connector_readme_getrecords_example(
    spark: SparkSession, kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(1)
    kinesis_client.put_record(StreamName=stream, PartitionKey="k", Data="before the query")
    kinesis = aws_readme_source(spark, stream, kinesis_endpoint)
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


# The peers' README sink examples. Both start from their README's source DataFrame
# (`kinesis`) and are Scala: `.as[(String,String)]` only types the same two columns, so
# it has no PySpark counterpart and is left out.


def user_payloads(contents: list[tuple[str, dict[str, Any]]]) -> list[str]:
    """The user records (after KPL de-aggregation) of a stream's Kinesis records."""
    return sorted(
        user.data.decode()
        for _, record in contents
        for user in user_records(record["Data"], record["PartitionKey"])
    )


def written_until_stopped(
    query: StreamingQuery, stream: str, stream_contents: Any, expected: list[str]
) -> list[tuple[str, dict[str, Any]]]:
    """Polls `stream` until its user records are `expected` (or the query fails), then stops."""
    try:
        wait_until(
            lambda: (
                query.exception() is not None or user_payloads(stream_contents(stream)) == expected
            ),
            f"{expected} written to {stream}",
        )
        assert query.exception() is None
        return stream_contents(stream)
    finally:
        query.stop()


@pytest.fixture
def default_checkpoint(spark: SparkSession, tmp_path: Path) -> Iterator[None]:
    """A session default checkpoint directory: qubole's sink example sets none, and Spark
    requires one for any sink but the console and memory sinks."""
    spark.conf.set("spark.sql.streaming.checkpointLocation", str(tmp_path / "checkpoints"))
    yield
    spark.conf.unset("spark.sql.streaming.checkpointLocation")


@pytest.mark.parametrize(
    ("mode", "refusal"),
    [
        # As written. Spark runs a Python data source's stream writer in append and complete
        # mode only (PySpark 4: its write builder does not take update as append), so the
        # query fails on the output mode before the sink sees the rows.
        ("update", "kinesis does not support Update mode"),
        # In complete mode, which Spark allows for the aggregation, the sink refuses the
        # columns: the count took the place of partitionKey (qubole's sink needs it too).
        ("complete", r"missing \['partitionKey'\], unexpected \['count'\]"),
    ],
)
def test_qubole_readme_sink_example_fails_before_writing(
    mode: str,
    refusal: str,
    spark: SparkSession,
    kinesis_endpoint: str,
    kinesis_client: Any,
    stream_factory: Any,
    stream_contents: Any,
    default_checkpoint: None,
) -> None:
    source, sink = stream_factory(1), stream_factory(1)
    put_words(kinesis_client, source)
    kinesis = qubole_readme_source(spark, source, kinesis_endpoint)
    with pytest.raises(Exception, match=refusal):
        # --- qubole's README, "Using the Kinesis Sink" ---
        # fmt: off
        query = kinesis \
            .selectExpr("CAST(rand() AS STRING) as partitionKey","CAST(data AS STRING)") \
            .groupBy("data").count() \
            .writeStream \
            .format("kinesis") \
            .outputMode(mode) \
            .option("streamName", sink) \
            .option("endpointUrl", kinesis_endpoint) \
            .option("awsAccessKeyId", ACCESS_KEY) \
            .option("awsSecretKey", SECRET_KEY) \
            .start()
        # fmt: on
        query.awaitTermination(DEADLINE_S)
    assert stream_contents(sink) == []


def test_qubole_readme_sink_example_without_the_count_writes_with_its_sink_options(
    spark: SparkSession,
    kinesis_endpoint: str,
    kinesis_client: Any,
    stream_factory: Any,
    stream_contents: Any,
    default_checkpoint: None,
) -> None:
    source, sink = stream_factory(1), stream_factory(1)
    put_words(kinesis_client, source)
    kinesis = qubole_readme_source(spark, source, kinesis_endpoint)
    # qubole's sink example without `.groupBy("data").count()` and in append mode (the same
    # rows as update mode for a query without aggregation), with the sink options of its
    # README's "Kinesis Sink Configuration" at their documented defaults.
    # fmt: off
    query = kinesis \
        .selectExpr("CAST(rand() AS STRING) as partitionKey","CAST(data AS STRING)") \
        .writeStream \
        .format("kinesis") \
        .outputMode("append") \
        .option("streamName", sink) \
        .option("endpointUrl", kinesis_endpoint) \
        .option("awsAccessKeyId", ACCESS_KEY) \
        .option("awsSecretKey", SECRET_KEY) \
        .option("kinesis.executor.recordMaxBufferedTime", "1000") \
        .option("kinesis.executor.maxConnections", "1") \
        .option("kinesis.executor.aggregationEnabled", "true") \
        .option("kniesis.executor.flushwaittimemillis", "100") \
        .start()
    # fmt: on
    written = written_until_stopped(query, sink, stream_contents, sorted(QUBOLE_WORDS))
    assert len(written) < len(QUBOLE_WORDS)  # aggregationEnabled: fewer Kinesis records


def test_aws_connector_readme_sink_example_as_written_is_refused_by_spark(
    spark: SparkSession, kinesis_endpoint: str, stream_factory: Any, tmp_path: Path
) -> None:
    source, sink = stream_factory(1), stream_factory(1)
    kinesis = aws_readme_source(spark, source, kinesis_endpoint)
    with pytest.raises(Exception, match="not supported for streaming aggregations") as caught:
        # --- the AWS connector's README, "Using the Kinesis Sink" ---
        # fmt: off
        kinesis \
            .selectExpr("CAST(rand() AS STRING) as partitionKey","CAST(data AS STRING)") \
            .groupBy("data").count() \
            .writeStream \
            .format("aws-kinesis") \
            .outputMode("append") \
            .option("kinesis.region", "us-east-1") \
            .option("kinesis.streamName", sink) \
            .option("kinesis.endpointUrl", kinesis_endpoint) \
            .option("checkpointLocation", str(tmp_path / "checkpoint")) \
            .start()
        # fmt: on
    # Spark's own check, before the sink is asked anything.
    assert "STREAMING_OUTPUT_MODE" in str(caught.value)


def test_aws_connector_readme_sink_example_without_the_count_writes_with_its_sink_options(
    spark: SparkSession,
    kinesis_endpoint: str,
    kinesis_client: Any,
    stream_factory: Any,
    stream_contents: Any,
    tmp_path: Path,
) -> None:
    source, sink = stream_factory(1), stream_factory(1)
    kinesis = aws_readme_source(spark, source, kinesis_endpoint)
    # The AWS connector's sink example without `.groupBy("data").count()`, with the sink
    # options of its README's "Kinesis Sink Configuration" at their documented defaults.
    # fmt: off
    query = kinesis \
        .selectExpr("CAST(rand() AS STRING) as partitionKey","CAST(data AS STRING)") \
        .writeStream \
        .format("aws-kinesis") \
        .outputMode("append") \
        .option("kinesis.region", "us-east-1") \
        .option("kinesis.streamName", sink) \
        .option("kinesis.endpointUrl", kinesis_endpoint) \
        .option("checkpointLocation", str(tmp_path / "checkpoint")) \
        .option("kinesis.sink.flushWaitTimeMs", "100") \
        .option("kinesis.sink.recordMaxBufferedTimeMs", "1000") \
        .option("kinesis.sink.maxConnections", "1") \
        .option("kinesis.sink.aggregationEnabled", "True") \
        .option("kinesis.sink.recordTtl", "30000") \
        .start()
    # fmt: on
    # The source starts at LATEST, pinned at the first trigger: put the words after it.
    wait_until(lambda: query.lastProgress is not None, "the query's first trigger")
    kinesis_client.put_records(
        StreamName=source,
        Records=[{"Data": word, "PartitionKey": "1"} for word in QUBOLE_WORDS],
    )
    written = written_until_stopped(query, sink, stream_contents, sorted(QUBOLE_WORDS))
    assert len(written) < len(QUBOLE_WORDS)  # aggregationEnabled: fewer Kinesis records
