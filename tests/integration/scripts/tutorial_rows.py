"""The tutorial's code as a user's one-off script: five messages in, read back by Spark.

Run in the consumer image as `docker compose run consumer python my_script.py`
(the test pipes it to `python -`). It uses a stream of its own, and prints one
JSON line per record read.
"""

import json
import os
import uuid

import boto3
from botocore.config import Config
from pyspark.sql import SparkSession

MESSAGES = [
    {"message_type": "message1", "count": 2},
    {"message_type": "message2", "count": 1},
    {"message_type": "message1", "count": 3},
    {"message_type": "message3", "count": 4},
    {"message_type": "message2", "count": 5},
]

endpoint, region = os.environ["KINESIS_ENDPOINT_URL"], os.environ["AWS_REGION"]
stream = f"one-off-{uuid.uuid4().hex[:8]}"
# The stack's LocalStack refuses a share of puts on purpose: let botocore resend them.
kinesis = boto3.client(
    "kinesis",
    endpoint_url=endpoint,
    region_name=region,
    config=Config(retries={"mode": "standard", "max_attempts": 20}),
)
kinesis.create_stream(StreamName=stream, ShardCount=1)
kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.5})
for message in MESSAGES:
    kinesis.put_record(StreamName=stream, Data=json.dumps(message), PartitionKey="tutorial")

spark = SparkSession.builder.appName("one-off-script").getOrCreate()
kinesis_frame = (
    spark.readStream.format("kinesis")
    .option("streamName", stream)
    .option("endpointUrl", endpoint)
    .option("region", region)
    .option("awsAccessKeyId", "test")
    .option("awsSecretKey", "test")
    .option("startingposition", "TRIM_HORIZON")
    .load()
)
query = (
    kinesis_frame.selectExpr("CAST(data AS STRING) AS json")
    .writeStream.format("memory")
    .queryName("tutorial_rows")
    .trigger(availableNow=True)
    .start()
)
query.awaitTermination()
for row in spark.sql("SELECT json FROM tutorial_rows").collect():
    print(row.json)
spark.stop()
kinesis.delete_stream(StreamName=stream)
