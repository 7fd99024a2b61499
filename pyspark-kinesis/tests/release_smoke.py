"""The built wheel's smoke test, run by test_release.py in a fresh virtual environment.

That environment holds PySpark, the wheel and what the wheel requires, nothing else: this
script imports only those and the standard library. Against the Kinesis at argv[1], it runs
the tutorial's read into a memory table, the same read with enhanced fan-out and
requireConsumerDeregistration (whose consumer must be gone once the query stopped: Spark's
stop of a query reaches the reader's `stop()`), writes the rows to a second stream with the
sink, reads that stream back in batch, and prints one JSON line saying what it saw.
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
import uuid
from typing import Any

import botocore.session
import pyspark
import pyspark_kinesis
from botocore.config import Config
from pyspark.sql import SparkSession

RECORDS = 20
# How long the fan-out consumer may take to be deregistered after its query stopped.
DEREGISTRATION_DEADLINE_S = 60.0
FAN_OUT = {"consumerMode": "efo", "consumerName": "smoke", "requireConsumerDeregistration": "true"}


def consumers_left(kinesis: Any, stream: str) -> list[str]:
    """The stream's consumers not being deleted, polled until there are none or the deadline."""
    summary = kinesis.describe_stream_summary(StreamName=stream)
    arn = summary["StreamDescriptionSummary"]["StreamARN"]
    deadline = time.monotonic() + DEREGISTRATION_DEADLINE_S
    while True:
        listed = kinesis.list_stream_consumers(StreamARN=arn)["Consumers"]
        names = [c["ConsumerName"] for c in listed if c["ConsumerStatus"] != "DELETING"]
        if not names or time.monotonic() > deadline:
            return names
        time.sleep(0.2)


def main(endpoint: str) -> None:
    kinesis = botocore.session.get_session().create_client(
        "kinesis",
        endpoint_url=endpoint,
        region_name="us-east-1",
        # LocalStack's documented dummies, not secrets.
        aws_access_key_id="test",
        aws_secret_access_key="test",
        config=Config(retries={"mode": "standard", "max_attempts": 10}),
    )
    source, copy = (f"smoke-{uuid.uuid4().hex[:8]}{suffix}" for suffix in ("", "-copy"))
    for name in (source, copy):
        kinesis.create_stream(StreamName=name, ShardCount=1)
        kinesis.get_waiter("stream_exists").wait(StreamName=name, WaiterConfig={"Delay": 0.5})
    for number in range(RECORDS):
        data = json.dumps({"number": number})
        kinesis.put_record(StreamName=source, Data=data, PartitionKey=f"key-{number}")

    spark = (
        SparkSession.builder.master("local[2]")
        .appName("pyspark-kinesis-smoke")
        .config("spark.ui.enabled", "false")
        .getOrCreate()
    )
    connection = {
        "endpointUrl": endpoint,
        "region": "us-east-1",
        "awsAccessKeyId": "test",
        "awsSecretKey": "test",
    }
    # The tutorial's read.
    stream = (
        spark.readStream.format("kinesis")
        .option("streamName", source)
        .options(**connection)
        .option("startingposition", "TRIM_HORIZON")
        .load()
    )
    with tempfile.TemporaryDirectory() as checkpoints:
        stream.writeStream.format("memory").queryName("smoke_read").option(
            "checkpointLocation", f"{checkpoints}/read"
        ).trigger(availableNow=True).start().awaitTermination()
        # The same read with enhanced fan-out.
        spark.readStream.format("kinesis").option("streamName", source).options(
            **connection, **FAN_OUT
        ).option("startingposition", "TRIM_HORIZON").load().writeStream.format("memory").queryName(
            "smoke_fan_out"
        ).option("checkpointLocation", f"{checkpoints}/fan-out").trigger(
            availableNow=True
        ).start().awaitTermination()
        left = consumers_left(kinesis, source)
        # The sink: the same rows into the second stream.
        stream.selectExpr("data", "partitionKey").writeStream.format("kinesis").option(
            "streamName", copy
        ).options(**connection).option("checkpointLocation", f"{checkpoints}/write").trigger(
            availableNow=True
        ).start().awaitTermination()
    read_rows = spark.sql("SELECT CAST(data AS STRING) AS data FROM smoke_read").collect()
    read = [row.data for row in read_rows]
    fan_out_rows = spark.sql("SELECT CAST(data AS STRING) AS data FROM smoke_fan_out").collect()
    batch = spark.read.format("kinesis").option("streamName", copy).options(**connection).load()
    copied = [row.data for row in batch.selectExpr("CAST(data AS STRING) AS data").collect()]
    spark.stop()
    for name in (source, copy):
        kinesis.delete_stream(StreamName=name)
    print(
        json.dumps(
            {
                "pyspark": pyspark.__version__,
                "pyspark_kinesis": pyspark_kinesis.__version__,
                "module": pyspark_kinesis.__file__,
                "read": sorted(json.loads(data)["number"] for data in read),
                "copied": sorted(json.loads(data)["number"] for data in copied),
                "fan_out_read": sorted(json.loads(row.data)["number"] for row in fan_out_rows),
                "consumers_left": left,
            }
        )
    )


if __name__ == "__main__":
    main(sys.argv[1])
