"""Runs the streaming query: Kinesis in, the durable sink out, until stopped or drained.

Start-up order matters for clear errors: settings are validated, then the
stream is checked (waited for, while LocalStack may still be starting), and
only then is the JVM started, so a wrong region or credentials cost a second and
one line, and a stream that never comes one line, not a Spark stack trace.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import boto3
import botocore.exceptions
from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError, NoCredentialsError
from pyspark.errors import StreamingQueryException
from pyspark.sql import SparkSession
from pyspark.sql.streaming.query import StreamingQuery
from pyspark_kinesis import KinesisOptions
from pyspark_kinesis.client import KinesisSourceError, call, error_code, make_client

from consumer.events import classify, first_copies, sink_rows
from consumer.ledger import SinkOwnershipError, owned_ledger
from consumer.settings import ConsumerSettings
from consumer.sink import BatchSink

log = logging.getLogger(__name__)

# The source's own errors are already written for users: surface them alone.
_SOURCE_ERROR = re.compile(
    r"(?:KinesisSourceError|DataLossError|KinesisOptionError|SinkOwnershipError): (.+)"
)
_ROCKSDB_PROVIDER = "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
# Hadoop's local file system starts a process for its file calls when its native library is
# missing, and PySpark ships none: Spark's default checkpoint manager (FileContext) runs
# `chmod` for every file it creates and `readlink` twice for every rename, about 30
# processes a batch (offsets, commits, the state's changelog, each with its checksum), two
# batches a second at the default trigger. This one renames with Java's own call and
# leaves only the `chmod`s, a fifth of them (docs/performance.md).
_LOCAL_CHECKPOINT_MANAGER = (
    "org.apache.spark.sql.execution.streaming.checkpointing.FileSystemBasedCheckpointFileManager"
)
# How long SIGTERM waits for the batch in flight (Compose's stop_grace_period is longer).
STOP_GRACE_S = 30.0
# How often a consumer started before its stream asks again.
STREAM_POLL_S = 0.5


class StartupError(RuntimeError):
    """The consumer cannot start; the message says what to change."""


def check_stream(settings: ConsumerSettings) -> None:
    """Waits up to CONSUMER_STREAM_WAIT_SECONDS for the stream; fails with one clear line.

    The consumer starts beside LocalStack, not after it: until the emulator
    answers and its init hook has created the stream, "cannot reach" and "not
    found" mean "not yet". Wrong credentials or the wrong region never get
    better with time, and stop the consumer at once. On real AWS (no endpoint)
    it first asks STS who the credentials belong to, so an expired or wrong
    identity is named before any Kinesis error.
    """
    options = KinesisOptions.parse(settings.source_options())
    if not settings.kinesis_endpoint_url:
        log.info("AWS identity: %s", _caller_identity(settings))
    # One attempt per poll: botocore's own backoff would make each poll last seconds.
    client = make_client(options, max_attempts=1)
    started, announced = time.monotonic(), False
    while (not_yet := _why_not_readable(settings, options, client)) is not None:
        waited = time.monotonic() - started
        if waited >= settings.consumer_stream_wait_seconds:
            raise StartupError(
                f"{not_yet} (waited {waited:.0f} s, CONSUMER_STREAM_WAIT_SECONDS="
                f"{settings.consumer_stream_wait_seconds:g}): start LocalStack or create the "
                "stream, or raise CONSUMER_STREAM_WAIT_SECONDS"
            )
        if not announced:
            log.info("waiting for stream %r: %s", options.stream_name, not_yet)
            announced = True
        time.sleep(STREAM_POLL_S)
    if announced:
        # The start-up's phases read from the log: the stream's wait ends here.
        log.info("stream %r found after %.1f s", options.stream_name, time.monotonic() - started)


def _why_not_readable(
    settings: ConsumerSettings, options: KinesisOptions, client: Any
) -> str | None:
    """None once the stream is readable; why not, while waiting may help; else StartupError."""
    try:
        summary = call(options, client.describe_stream_summary, StreamName=options.stream_name)
    except (KinesisSourceError, ClientError) as error:
        if _may_pass(error):
            return str(error)
        raise StartupError(str(error)) from error
    description = summary["StreamDescriptionSummary"]
    status, arn_region = description["StreamStatus"], description["StreamARN"].split(":")[3]
    if arn_region != settings.aws_region:
        raise StartupError(
            f"stream {options.stream_name!r} is in region {arn_region!r}, not AWS_REGION="
            f"{settings.aws_region!r}: set AWS_REGION to the stream's region"
        )
    if status == "CREATING":
        return f"stream {options.stream_name!r} is CREATING"
    if status not in ("ACTIVE", "UPDATING"):
        raise StartupError(
            f"stream {options.stream_name!r} is {status}, not ACTIVE: wait, or check it"
        )
    return None


def _may_pass(error: Exception) -> bool:
    """True for an emulator still starting or a stream not created yet.

    Missing credentials are a BotoCoreError too, but they never turn up by waiting:
    only no answer from the endpoint (yet) passes.
    """
    cause = error if isinstance(error, ClientError) else error.__cause__
    if isinstance(cause, BotoCoreError):
        return isinstance(cause, botocore.exceptions.ConnectionError | HTTPClientError)
    if isinstance(cause, ClientError):
        status = cause.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
        return error_code(cause) == "ResourceNotFoundException" or status >= 500
    return False


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
    builder = SparkSession.builder
    if settings.checkpoint_on_local_disk:
        builder = builder.config(
            "spark.sql.streaming.checkpointFileManagerClass", _LOCAL_CHECKPOINT_MANAGER
        )
    session = (
        builder.master(settings.spark_master)
        .appName("kinesis-consumer")
        .config("spark.ui.port", "4040")
        .config("spark.sql.session.timeZone", "UTC")
        .config("spark.sql.shuffle.partitions", str(settings.consumer_shuffle_partitions))
        # The deduplication state: RocksDB keeps it off the JVM heap, and its changelog
        # makes a batch's state commit cost what the batch changed, not the whole state.
        .config("spark.sql.streaming.stateStore.providerClass", _ROCKSDB_PROVIDER)
        .config("spark.sql.streaming.stateStore.rocksdb.changelogCheckpointing.enabled", "true")
        # No extra batch just to move the watermark on: old keys are dropped by the next
        # batch with data, and an idle stream runs no Spark job at all.
        .config("spark.sql.streaming.noDataMicroBatches.enabled", "false")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("WARN")
    return session


def start_query(
    spark: SparkSession, settings: ConsumerSettings, sink: BatchSink | None = None
) -> StreamingQuery:
    """The consumer's query: Kinesis, parsed, deduplicated by Spark's state, into `sink`."""
    raw = spark.readStream.format("kinesis").options(**settings.source_options()).load()
    rows = sink_rows(classify(raw, settings.consumer_max_event_bytes))
    writer = (
        first_copies(rows, settings.dedup_window_seconds)
        .writeStream.queryName("kinesis-events")
        .foreachBatch(sink or BatchSink(settings))
        .option("checkpointLocation", settings.query_checkpoint_path)
    )
    if settings.consumer_trigger == "availableNow":
        writer = writer.trigger(availableNow=True)
    else:
        writer = writer.trigger(processingTime=settings.consumer_trigger_interval)
    return writer.start()


def check_output(settings: ConsumerSettings) -> None:
    """Refuses, before Spark starts, to write a new or reset checkpoint's batches over an
    earlier run's output."""
    try:
        owned_ledger(settings.consumer_output_path.rstrip("/"), settings.query_checkpoint_path)
    except SinkOwnershipError as error:
        raise StartupError(str(error)) from error


def run(settings: ConsumerSettings) -> int:
    """Runs until SIGTERM/SIGINT (or until drained, with availableNow); returns the exit code."""
    # The JVM starts while the stream is checked (and, beside LocalStack, waited for):
    # the two take about as long, and neither needs the other.
    began = time.monotonic()
    sessions: list[SparkSession] = []
    starting = threading.Thread(
        target=lambda: sessions.append(build_session(settings)), name="spark", daemon=True
    )
    starting.start()
    try:
        check_output(settings)
        check_stream(settings)
    except StartupError as error:
        log.error("cannot start: %s", error)
        return 1  # the JVM, half started, ends with this process
    starting.join()
    if not sessions:
        log.error("cannot start: Spark did not start (see the lines above)")
        return 1
    log.info("Spark session ready after %.1f s", time.monotonic() - began)
    spark = sessions[0]
    sink = BatchSink(settings)
    query = start_query(spark, settings, sink)
    log.info("query started: %s -> %s", settings.kinesis_stream_name, settings.consumer_output_path)
    stopping = threading.Event()

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("received %s: stopping", signal.Signals(signum).name)
        stopping.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    try:
        while query.isActive and not stopping.is_set():
            query.awaitTermination(1)
        if stopping.is_set():
            _stop_between_batches(query, sink)
        query.awaitTermination()
    except StreamingQueryException as error:
        log.error("query failed: %s", _user_message(error))
        return 1
    finally:
        query.stop()
        sink.close()
        spark.stop()
    log.info("query stopped")
    return 0


def _stop_between_batches(query: StreamingQuery, sink: BatchSink) -> None:
    """Lets the batch in flight finish (up to STOP_GRACE_S), stops, and says which it was.

    A batch is in flight while the sink writes it, not while a trigger merely plans the
    next one: when planning takes longer than the trigger interval (a busy machine), some
    trigger is always active, and waiting for none would always wait the whole grace.
    """
    deadline = time.monotonic() + STOP_GRACE_S
    while query.isActive and sink.in_flight is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    query.stop()
    if sink.in_flight is not None:
        log.warning(
            "abandoned batch %d after %.0f s: none of it is visible in the sink, and it runs "
            "again, whole, on the next start",
            sink.in_flight,
            STOP_GRACE_S,
        )
    elif sink.last_written is not None:
        log.info("finished batch %d, the last one written, before stopping", sink.last_written)
    else:
        log.info("no batch was in flight; stopped")


def _user_message(error: Exception) -> str:
    match = _SOURCE_ERROR.search(str(error))
    return match.group(1) if match else str(error).splitlines()[0]
