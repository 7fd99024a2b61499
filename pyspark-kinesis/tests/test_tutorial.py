"""The tutorial's reading code, as written, against a real emulator and a real Spark session."""

from __future__ import annotations

import json

import pytest
from pyspark.sql.functions import from_json
from pyspark.sql.types import IntegerType, StringType, StructField, StructType

pytestmark = pytest.mark.unit

SAMPLES = [
    {"message_type": "message1", "count": 2},
    {"message_type": "message2", "count": 1},
    {"message_type": "message1", "count": 3},
    {"message_type": "message3", "count": 4},
    {"message_type": "message2", "count": 5},
]


def test_tutorial_code_runs_as_written(spark, kinesis_endpoint, kinesis_client, stream_factory):
    stream_name = stream_factory(1)
    for message in SAMPLES:
        kinesis_client.put_record(
            StreamName=stream_name, Data=json.dumps(message), PartitionKey="partitionkey"
        )

    # --- the tutorial, verbatim but for the stream name and the endpoint's port ---
    # fmt: off
    kinesis = spark.readStream.format('kinesis') \
        .option('streamName', stream_name) \
        .option('endpointUrl', kinesis_endpoint) \
        .option('region', 'us-east-1') \
        .option('awsAccessKeyId', 'test') \
        .option('awsSecretKey', 'test') \
        .option('startingposition', 'TRIM_HORIZON') \
        .load()
    schema = StructType([
        StructField("message_type", StringType()),
        StructField("count", IntegerType())])
    kinesis \
        .selectExpr('CAST(data AS STRING)') \
        .select(from_json('data', schema).alias('data')) \
        .select('data.*') \
        .writeStream \
        .outputMode('append') \
        .format('console') \
        .trigger(once=True) \
        .start() \
        .awaitTermination()
    # fmt: on
    # --- end of the tutorial ---

    # The console sink prints from the JVM, out of pytest's reach: read the same
    # DataFrame into the memory sink to check what the tutorial's query saw.
    query = (
        kinesis.selectExpr("CAST(data AS STRING)")
        .select(from_json("data", schema).alias("data"))
        .select("data.*")
        .writeStream.format("memory")
        .queryName("tutorial")
        .trigger(once=True)
        .start()
    )
    query.awaitTermination()
    rows = [row.asDict() for row in spark.table("tutorial").collect()]
    assert rows == SAMPLES
