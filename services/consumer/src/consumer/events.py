"""From raw Kinesis rows to typed events and dead letters, as pure DataFrame functions.

Every record ends up in exactly one of the two: a typed event, or a dead
letter that keeps the raw bytes, the reason and where in the stream it was;
both travel as one frame (`sink_rows`) so that one Spark job writes them.
Events without an `event_id` (the tutorial's messages have none) get one made
from their stream position, so every event can be deduplicated by id.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import IntegerType, StringType, StructField, StructType, TimestampType

from consumer.layout import DEAD_LETTERS, EVENTS

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


def sink_rows(classified: DataFrame) -> DataFrame:
    """One row per record for the sink: an event, or a dead letter, told apart by `kind`.

    `dedup_key` is what makes two rows the same: an event's id (one made from
    its stream position when it has none), or a dead letter's stream position.
    """
    is_event = F.col("error").isNull()
    event_id = F.coalesce(F.col("event.event_id"), _position_id())
    arrival = F.col("approximateArrivalTimestamp")
    return classified.select(
        F.when(is_event, F.lit(EVENTS)).otherwise(F.lit(DEAD_LETTERS)).alias("kind"),
        F.when(is_event, event_id)
        .otherwise(F.concat(F.lit("dead-letter:"), _position_id()))
        .alias("dedup_key"),
        F.when(is_event, event_id).alias("event_id"),
        F.when(is_event, F.coalesce(F.col("event.event_time"), arrival)).alias("event_time"),
        F.when(is_event, F.col("event.message_type")).alias("message_type"),
        F.when(is_event, F.col("event.count")).alias("count"),
        F.when(~is_event, F.col("data")).alias("raw"),
        "error",
        F.col("partitionKey").alias("partition_key"),
        F.col("shardId").alias("shard_id"),
        F.col("sequenceNumber").alias("sequence_number"),
        F.col("subSequenceNumber").alias("sub_sequence_number"),
        arrival.alias("arrival_time"),
    )


def first_copies(rows: DataFrame, window_seconds: float) -> DataFrame:
    """`rows` without a row whose `dedup_key` an earlier batch wrote within `window_seconds`.

    Spark's own streaming deduplication, its state in the checkpoint (so a batch
    that runs again sees the state it saw the first time). Its watermark is on
    `batch_time`, the batch's own timestamp, never on event or arrival time: a
    shard that lags behind the others (a limit, a reshard, an outage) can have
    no row older than the watermark, so none is dropped as late. A key is
    forgotten once the watermark (the newest batch time minus half the window)
    passes its first batch time plus half the window: `window_seconds` after
    the batch that wrote the first copy. Within a batch, of copies from one
    shard the first in stream order is kept.
    """
    half_window_ms = max(1, int(window_seconds * 500))
    return (
        rows.withColumn("batch_time", F.current_timestamp())
        .withWatermark("batch_time", f"{half_window_ms} milliseconds")
        .dropDuplicatesWithinWatermark(["dedup_key"])
    )


def _position_id() -> Column:
    return F.concat_ws(":", F.lit("kinesis"), "shardId", "sequenceNumber", "subSequenceNumber")
