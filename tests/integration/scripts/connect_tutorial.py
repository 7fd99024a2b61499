"""The tutorial's read through Spark Connect, as docs/spark-connect.md shows it from a laptop.

Runs where only `pyspark-client` and boto3 are installed (the connect-client image, or
the host): creates a stream of its own, puts RECORDS numbered events, reads them with
`format("kinesis")` on the Connect server at SPARK_REMOTE into a memory table, and prints
one JSON line: the numbers read back, and whether this Python could have run Spark itself.
The server reads Kinesis at KINESIS_SERVER_ENDPOINT_URL (as the server sees it), the
client puts at KINESIS_ENDPOINT_URL.
"""

import importlib.util
import json
import os
import shutil
import uuid

import boto3
from botocore.config import Config
from pyspark.sql import SparkSession

RECORDS = 50

put_endpoint = os.environ["KINESIS_ENDPOINT_URL"]
read_endpoint = os.environ.get("KINESIS_SERVER_ENDPOINT_URL", put_endpoint)
stream = f"connect-{uuid.uuid4().hex[:8]}"
# The stack's LocalStack refuses a share of puts on purpose: let botocore resend them.
kinesis = boto3.client(
    "kinesis",
    endpoint_url=put_endpoint,
    region_name="us-east-1",
    config=Config(retries={"mode": "standard", "max_attempts": 20}),
)
kinesis.create_stream(StreamName=stream, ShardCount=2)
kinesis.get_waiter("stream_exists").wait(StreamName=stream, WaiterConfig={"Delay": 0.5})
for number in range(RECORDS):
    data = json.dumps({"number": number})
    kinesis.put_record(StreamName=stream, Data=data, PartitionKey=f"key-{number}")

spark = SparkSession.builder.remote(os.environ["SPARK_REMOTE"]).getOrCreate()
# --- the tutorial's read, the endpoint as the server sees it ---
# fmt: off
kinesis_frame = spark.readStream.format('kinesis') \
    .option('streamName', stream) \
    .option('endpointUrl', read_endpoint) \
    .option('region', 'us-east-1') \
    .option('awsAccessKeyId', 'test') \
    .option('awsSecretKey', 'test') \
    .option('startingposition', 'TRIM_HORIZON') \
    .load()
# fmt: on
# A sink the client sees: a memory table in the server's session, queried from here.
table = f"connect_{stream.replace('-', '_')}"
query = (
    kinesis_frame.selectExpr("CAST(data AS STRING) AS json")
    .writeStream.format("memory")
    .queryName(table)
    .trigger(availableNow=True)
    .start()
)
query.awaitTermination()
rows = spark.sql(f"SELECT json FROM {table}").collect()
numbers = [json.loads(row.json)["number"] for row in rows]
server_version = spark.version
spark.stop()
kinesis.delete_stream(StreamName=stream)
print(
    json.dumps(
        {
            "numbers": sorted(numbers),
            "server_spark": server_version,
            "java": shutil.which("java"),
            "jvm_bridge": importlib.util.find_spec("py4j") is not None,
        }
    )
)
