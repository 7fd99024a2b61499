"""From raw Kinesis rows to typed events and dead letters, as pure DataFrame functions.

Every record ends up in exactly one of the two: a typed event, or a dead
letter that keeps the raw bytes, the reason and where in the stream it was.
Events without an `event_id` (the tutorial's messages have none) get one made
from their stream position, so every event can be deduplicated by id.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType, TimestampType

EVENT_SCHEMA = StructType(
    [
        StructField("event_id", StringType()),
        StructField("event_time", TimestampType()),
        StructField("message_type", StringType()),
        StructField("count", IntegerType()),
        # Filled by from_json when the payload is not JSON or a field has the wrong type.
        StructField("_corrupt_record", StringType()),
    ]
)
_JSON_OPTIONS = {"mode": "PERMISSIVE", "columnNameOfCorruptRecord": "_corrupt_record"}


def classify(raw: DataFrame, max_event_bytes: int) -> DataFrame:
    """Adds the parsed `event` struct and an `error` column (null for a good event)."""
    text = F.col("data").cast("string")
    parsed = raw.withColumn("event", F.from_json(text, EVENT_SCHEMA, _JSON_OPTIONS))
    size = F.length("data")
    error = (
        F.when(size == 0, F.lit("empty payload"))
        .when(
            size > max_event_bytes,
            F.format_string(
                f"payload of %d bytes is over CONSUMER_MAX_EVENT_BYTES={max_event_bytes}", size
            ),
        )
        .when(~F.expr("is_valid_utf8(CAST(data AS STRING))"), F.lit("payload is not valid UTF-8"))
        .when(
            F.col("event._corrupt_record").isNotNull(),
            F.lit("not a JSON object with the event's fields and types"),
        )
        .when(F.col("event.message_type").isNull(), F.lit("missing field message_type"))
        .when(F.col("event.count").isNull(), F.lit("missing field count"))
    )
    return parsed.withColumn("error", error)


def good_events(classified: DataFrame) -> DataFrame:
    """Typed events, one per id (a resent event keeps its first copy)."""
    return (
        classified.where(F.col("error").isNull())
        .select(
            F.coalesce(F.col("event.event_id"), _position_id()).alias("event_id"),
            F.coalesce(F.col("event.event_time"), F.col("approximateArrivalTimestamp")).alias(
                "event_time"
            ),
            F.col("event.message_type").alias("message_type"),
            F.col("event.count").alias("count"),
            F.col("partitionKey").alias("partition_key"),
            F.col("shardId").alias("shard_id"),
            F.col("sequenceNumber").alias("sequence_number"),
            F.col("subSequenceNumber").alias("sub_sequence_number"),
            F.col("approximateArrivalTimestamp").alias("arrival_time"),
        )
        .dropDuplicates(["event_id"])
    )


def dead_letters(classified: DataFrame) -> DataFrame:
    """Records that are not events: raw bytes, the reason, and their place in the stream."""
    return classified.where(F.col("error").isNotNull()).select(
        F.col("data").alias("raw"),
        "error",
        F.col("partitionKey").alias("partition_key"),
        F.col("shardId").alias("shard_id"),
        F.col("sequenceNumber").alias("sequence_number"),
        F.col("subSequenceNumber").alias("sub_sequence_number"),
        F.col("approximateArrivalTimestamp").alias("arrival_time"),
    )


def message_counts(events: DataFrame) -> DataFrame:
    """Per message_type: how many events, and the sum of their `count` field."""
    return events.groupBy("message_type").agg(
        F.count(F.lit(1)).alias("events"), F.sum("count").cast("long").alias("count_sum")
    )


def _position_id() -> Column:
    return F.concat_ws(":", F.lit("kinesis"), "shardId", "sequenceNumber", "subSequenceNumber")
