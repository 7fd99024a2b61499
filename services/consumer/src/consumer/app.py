"""Runs the streaming query: Kinesis in, the durable sink out, until stopped or drained.

Start-up order matters for clear errors: settings are validated, then the
stream is checked with one Kinesis call, and only then is the JVM started, so
a wrong stream name or region costs a second and one line, not a Spark stack trace.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
from types import FrameType

import boto3
from botocore.exceptions import BotoCoreError, ClientError, NoCredentialsError
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery
from pyspark_kinesis import KinesisOptions
from pyspark_kinesis.client import KinesisSourceError, call, make_client

from consumer.settings import ConsumerSettings
from consumer.sink import BatchSink

log = logging.getLogger(__name__)

# The source's own errors are already written for users: surface them alone.
_SOURCE_ERROR = re.compile(r"(?:KinesisSourceError|DataLossError|KinesisOptionError): (.+)")


class StartupError(RuntimeError):
    """The consumer cannot start; the message says what to change."""


def check_stream(settings: ConsumerSettings) -> None:
    """Fails fast, with one clear line, if the stream cannot be read.

    On real AWS (no endpoint) it first asks STS who the credentials belong to,
    so an expired or wrong identity is named before any Kinesis error.
    """
    options = KinesisOptions.parse(settings.source_options())
    if not settings.kinesis_endpoint_url:
        log.info("AWS identity: %s", _caller_identity(settings))
    client = make_client(options)
    try:
        summary = call(options, client.describe_stream_summary, StreamName=options.stream_name)
    except KinesisSourceError as error:
        raise StartupError(str(error)) from error
    description = summary["StreamDescriptionSummary"]
    status, arn_region = description["StreamStatus"], description["StreamARN"].split(":")[3]
    if status not in ("ACTIVE", "UPDATING"):
        raise StartupError(
            f"stream {options.stream_name!r} is {status}, not ACTIVE: wait, or check it"
        )
    if arn_region != settings.aws_region:
        raise StartupError(
            f"stream {options.stream_name!r} is in region {arn_region!r}, not AWS_REGION="
            f"{settings.aws_region!r}: set AWS_REGION to the stream's region"
        )


def _caller_identity(settings: ConsumerSettings) -> str:
    try:
        identity = boto3.client("sts", region_name=settings.aws_region).get_caller_identity()
    except NoCredentialsError as error:
        raise StartupError(
            "no AWS credentials found: set AWS_PROFILE (with ~/.aws mounted), "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance or task role"
        ) from error
    except (ClientError, BotoCoreError) as error:
        raise StartupError(
            f"AWS rejected the credentials (sts:GetCallerIdentity): {error}"
        ) from error
    return str(identity["Arn"])


def build_session(settings: ConsumerSettings) -> SparkSession:
    # Python workers (and Spark's data source lookup) must run this interpreter, the
    # one with pyspark_kinesis installed; Spark's default is whatever `python3` is first
    # on PATH. The JVM inherits this environment when the session starts it.
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    session = (
        SparkSession.builder.master(settings.spark_master)
        .appName("kinesis-consumer")
        .config("spark.ui.port", "4040")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.consumer_shuffle_partitions))
        .config("spark.sql.parquet.outputTimestampType", "TIMESTAMP_MICROS")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    return session


def start_query(spark: SparkSession, settings: ConsumerSettings) -> StreamingQuery:
    raw = spark.readStream.format("kinesis").options(**settings.source_options()).load()
    writer = (
        raw.writeStream.queryName("kinesis-events")
        .foreachBatch(BatchSink(settings))
        .option("checkpointLocation", f"{settings.consumer_checkpoint_path}/events")
    )
    if settings.consumer_trigger == "availableNow":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=settings.consumer_trigger_interval)
    return writer.start()


def run(settings: ConsumerSettings) -> int:
    """Runs until SIGTERM/SIGINT (or until drained, with availableNow); returns the exit code."""
    try:
        check_stream(settings)
    except StartupError as error:
        log.error("cannot start: %s", error)
        return 1
    spark = build_session(settings)
    query = start_query(spark, settings)
    log.info("query started: %s -> %s", settings.kinesis_stream_name, settings.consumer_output_path)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping after the current batch", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        while query.isActive and not stopping.is_set():
            query.awaitTermination(1)
    except StreamingQueryException as error:
        log.error("query failed: %s", _user_message(error))
        return 1
    finally:
        query.stop()
        spark.stop()
    log.info("query stopped")
    return 0


def _user_message(error: Exception) -> str:
    match = _SOURCE_ERROR.search(str(error))
    return match.group(1) if match else str(error).splitlines()[0]
