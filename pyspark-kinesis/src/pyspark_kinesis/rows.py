"""The rows the source returns: their schema (`SCHEMA`) and the records read turned into Arrow.

One row per user record (a KPL aggregate's user records are rows of their own,
`subSequenceNumber` telling them apart), the same for a streaming and a batch
read. Tasks return Arrow record batches (`arrow_batches`), cheaper for Spark to
take than rows.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

from pyspark.sql.types import (
    BinaryType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from pyspark_kinesis.reading import ROWS
from pyspark_kinesis.shards import StreamShard

if TYPE_CHECKING:
    import pyarrow as pa

_MICROS_PER_SECOND = 1_000_000

SCHEMA = StructType(
    [
        StructField("data", BinaryType(), nullable=False),
        StructField("streamName", StringType(), nullable=False),
        StructField("partitionKey", StringType(), nullable=False),
        StructField("sequenceNumber", StringType(), nullable=False),
        StructField("subSequenceNumber", LongType(), nullable=False),
        StructField("approximateArrivalTimestamp", TimestampType(), nullable=False),
        StructField("shardId", StringType(), nullable=False),
    ]
)


def arrow_schema_of_rows() -> pa.Schema:
    """SCHEMA in Arrow, for the tasks' record batches."""
    # Imported here, on the executors: the driver's planning process never needs
    # pyarrow, and its import is a third of a second of every query's start.
    from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415

    return to_arrow_schema(SCHEMA, timezone="UTC")


def arrow_batches(
    pages: Iterable[list[dict[str, Any]]], shard: StreamShard
) -> Iterator[pa.RecordBatch]:
    """A shard's pages of records read (each record with its rows, `ROWS`), as record batches
    of SCHEMA's rows: one batch a page."""
    schema = arrow_schema_of_rows()
    for page in pages:
        yield _to_arrow(page, shard, schema)


def _to_arrow(
    records: list[dict[str, Any]], shard: StreamShard, schema: pa.Schema
) -> pa.RecordBatch:
    """The rows of `records`, read from `shard`, as one record batch of `schema`."""
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for record in records:
        for user_record in record[ROWS]:
            columns["data"].append(user_record.data)
            columns["partitionKey"].append(user_record.partition_key)
            columns["subSequenceNumber"].append(user_record.sub_sequence_number)
            columns["sequenceNumber"].append(record["SequenceNumber"])
            columns["approximateArrivalTimestamp"].append(
                int(record["ApproximateArrivalTimestamp"] * _MICROS_PER_SECOND)
            )
    import pyarrow as pa  # noqa: PLC0415 (see `arrow_schema_of_rows`)

    rows = len(columns["data"])
    columns["streamName"] = [shard.stream_name] * rows
    columns["shardId"] = [shard.shard_id] * rows
    return pa.RecordBatch.from_pydict(columns, schema=schema)
