"""What one Spark task does with its share of a batch: write it, and say what it wrote.

It runs inside `mapInArrow` on an executor. The rows (events and dead letters
together, already deduplicated) are split by kind and each kind is written as
one Parquet file under its hidden in-flight name; the task returns one summary
row: which files, how many rows of each kind, per-type counts and a sample of
events for the console. The driver publishes the files only once every task
succeeded, so a batch is visible whole or not at all; a task or batch that
runs again writes the same names with the same rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from consumer import fs
from consumer.layout import DEAD_LETTERS, EVENTS, hour_folder, hour_of, in_flight_name

_TIMESTAMP = pa.timestamp("us", tz="UTC")
_POSITION = [
    pa.field("partition_key", pa.string()),
    pa.field("shard_id", pa.string()),
    pa.field("sequence_number", pa.string()),
    pa.field("sub_sequence_number", pa.int64()),
    pa.field("arrival_time", _TIMESTAMP),
]
_BATCH = [pa.field("batch_id", pa.int64()), pa.field("batch_time", _TIMESTAMP)]
# The two tables' columns, in the files' order.
EVENT_SCHEMA = pa.schema(
    [
        pa.field("event_id", pa.string()),
        pa.field("event_time", _TIMESTAMP),
        pa.field("message_type", pa.string()),
        pa.field("count", pa.int32()),
        *_POSITION,
        *_BATCH,
    ]
)
DEAD_LETTER_SCHEMA = pa.schema(
    [pa.field("raw", pa.binary()), pa.field("error", pa.string()), *_POSITION, *_BATCH]
)
SCHEMAS = {EVENTS: EVENT_SCHEMA, DEAD_LETTERS: DEAD_LETTER_SCHEMA}
# The console's columns, as the tutorial showed them.
SAMPLE_COLUMNS = ("event_time", "message_type", "count", "event_id")
SUMMARY_DDL = "summary string"


@dataclass(frozen=True)
class BatchPlan:
    """What every task of one batch needs to know (pickled to the executors)."""

    output_path: str
    batch_id: int
    sample_size: int


def write_partition(
    plan: BatchPlan, partition: int, chunks: Iterator[pa.RecordBatch]
) -> dict[str, Any]:
    """Writes one partition's rows; returns its summary (see `summarize`)."""
    batches = list(chunks)
    rows = pa.Table.from_batches(batches) if batches else None
    summary: dict[str, Any] = {"partition": partition, "files": {}}
    if rows is None or rows.num_rows == 0:
        return summary | summarize(None, None, plan.sample_size)
    hour = hour_of(rows.column("batch_time")[0].as_py())
    tables = {kind: _table(rows, kind, plan.batch_id) for kind in SCHEMAS}
    for kind, table in tables.items():
        if table.num_rows:
            folder = hour_folder(f"{plan.output_path}/{kind}", hour)
            fs.write_parquet(table, f"{folder}/{in_flight_name(plan.batch_id, partition)}")
            summary["files"][kind] = hour
    return summary | summarize(tables[EVENTS], tables[DEAD_LETTERS], plan.sample_size)


def _table(rows: pa.Table, kind: str, batch_id: int) -> pa.Table:
    schema = SCHEMAS[kind]
    mine = rows.filter(pc.equal(rows.column("kind"), kind))
    batch_ids = pa.array([batch_id] * mine.num_rows, pa.int64())
    columns = [
        batch_ids if name == "batch_id" else mine.column(name).cast(schema.field(name).type)
        for name in schema.names
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def summarize(events: pa.Table | None, dead: pa.Table | None, sample_size: int) -> dict[str, Any]:
    """Row counts, per-type totals and the first events, for the driver's log and console."""
    counts: dict[str, list[int]] = {}
    if events is not None:
        types = events.column("message_type").to_pylist()
        for message_type, count in zip(types, events.column("count").to_pylist(), strict=True):
            totals = counts.setdefault(message_type, [0, 0])
            totals[0] += 1
            totals[1] += count
    sample = [] if events is None else events.select(list(SAMPLE_COLUMNS)).slice(0, sample_size)
    return {
        "events": 0 if events is None else events.num_rows,
        "dead_letters": 0 if dead is None else dead.num_rows,
        "counts": counts,
        "sample": [] if sample == [] else _jsonable(sample),
    }


def _jsonable(table: Any) -> list[list[Any]]:
    return [
        [value.isoformat() if hasattr(value, "isoformat") else value for value in row.values()]
        for row in table.to_pylist()
    ]


def task_writer(plan: BatchPlan) -> Any:
    """The function `mapInArrow` runs: one summary row per partition."""

    def write(chunks: Iterator[pa.RecordBatch]) -> Iterator[pa.RecordBatch]:
        from pyspark import TaskContext  # noqa: PLC0415 (on the executor)

        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        summary = write_partition(plan, partition, chunks)
        yield pa.RecordBatch.from_pydict({"summary": [json.dumps(summary)]})

    return write
