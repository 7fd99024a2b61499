"""Figures 7 and 8: the Kinesis sink's throughput, and a bounded `spark.read` of a stream.

Sink: `writeStream.format("kinesis")` of one `rate-micro-batch` batch of
`count` rows (payloads as long as the producer's events, 16 partition keys)
into a fresh 2-shard stream, timed from `start()` to the query's end, beside
the emulator's ceiling (raw PutRecords of 500 from 4 threads) and the
qubole-style loop of one PutRecord per record, each into its own fresh stream
of the same emulator.

Batch read: `spark.read.format("kinesis")` of a 4-shard stream holding
`count` records into the `noop` sink, timed from `load()` to the action's end,
beside the plain boto3 reader (a thread per shard) on the same stream.
"""

from __future__ import annotations

import logging
import statistics
import tempfile
import time
from typing import Any

from pyspark.sql import SparkSession

from bench.drain import plain_reader
from bench.emulator import REGION, create_stream, event_records, put_concurrently
from bench.ingest import tutorial_loop

log = logging.getLogger(__name__)

SINK_SHARDS = 2
READ_SHARDS = 4
RUNS = 2


def spark_sink(spark: SparkSession, url: str, count: int) -> float:
    """Seconds from `start()` to the end of a query writing `count` rows to a fresh stream."""
    stream = create_stream(url, SINK_SHARDS)
    length = round(statistics.mean(len(record.data) for record in event_records(200)))
    rows = (
        spark.readStream.format("rate-micro-batch")
        .option("rowsPerBatch", count)
        .option("numPartitions", SINK_SHARDS)
        .load()
        .selectExpr(
            f"RPAD(CAST(value AS STRING), {length}, '.') AS data",
            "CAST(value % 16 AS STRING) AS partitionKey",
        )
    )
    with tempfile.TemporaryDirectory() as checkpoint:
        started = time.perf_counter()
        query = (
            rows.writeStream.format("kinesis")
            .options(streamName=stream, endpointUrl=url, region=REGION)
            .option("checkpointLocation", checkpoint)
            .trigger(once=True)
            .start()
        )
        query.awaitTermination()
        elapsed = time.perf_counter() - started
        written = sum(p["numInputRows"] for p in query.recentProgress)
    if written != count:
        raise RuntimeError(f"the sink wrote {written} of {count} rows")
    return elapsed


def measure_sink(spark: SparkSession, url: str, count: int) -> dict[str, Any]:
    spark_s = min(spark_sink(spark, url, count) for _ in range(RUNS))
    log.info("sink: %.1f s for %d rows", spark_s, count)
    ceiling_s = min(
        put_concurrently(url, create_stream(url, SINK_SHARDS), event_records(count))
        for _ in range(RUNS)
    )
    loop_s = tutorial_loop(url, create_stream(url, SINK_SHARDS), count)
    return {
        "records": count,
        "shards": SINK_SHARDS,
        "records_per_s": {
            "sink": count / spark_s,
            "emulator_ceiling": count / ceiling_s,
            "one_request_per_record": count / loop_s,
        },
        "sink_vs_ceiling": ceiling_s / spark_s,
        "sink_vs_per_record": loop_s / spark_s,
    }


def spark_batch_read(spark: SparkSession, url: str, stream: str, count: int) -> float:
    """Seconds from `load()` to the end of a `noop` write of the whole stream."""
    started = time.perf_counter()
    frame = (
        spark.read.format("kinesis")
        .options(streamName=stream, endpointUrl=url, region=REGION)
        .load()
    )
    frame.write.format("noop").mode("overwrite").save()
    elapsed = time.perf_counter() - started
    return elapsed


def measure_batch_read(spark: SparkSession, url: str, count: int) -> dict[str, Any]:
    stream = create_stream(url, READ_SHARDS)
    put_concurrently(url, stream, event_records(count))
    log.info("%d records in a %d-shard stream; reading", count, READ_SHARDS)
    rows = (
        spark.read.format("kinesis")
        .options(streamName=stream, endpointUrl=url, region=REGION)
        .load()
        .count()
    )
    if rows != count:
        raise RuntimeError(f"spark.read found {rows} of {count} records")
    spark_s = min(spark_batch_read(spark, url, stream, count) for _ in range(RUNS))
    plain_s = min(plain_reader(url, stream, count) for _ in range(RUNS))
    return {
        "records": count,
        "shards": READ_SHARDS,
        "records_per_s": {"spark_read": count / spark_s, "plain": count / plain_s},
        "spark_vs_plain": plain_s / spark_s,
    }
