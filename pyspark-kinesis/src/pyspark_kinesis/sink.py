"""The Spark-facing sink: `df.write.format("kinesis")` and `df.writeStream.format("kinesis")`.

Each task puts its partition's rows with `writing.StreamWriter` (PutRecords
of up to 500 records and 5 MiB, refused entries resent until
`writeRetryDeadline`, then the task fails saying how many records were not
written). Arrow writers: rows reach `write` as Arrow batches, never as Python
`Row`s.

At-least-once. Every row is written at least once or the write fails. A task
that has written its whole partition marks it done (`completions`), keyed by
(query id, batch id, partition) for a stream and (write id, partition) for a
`df.write`, so a retried task or a batch Spark re-runs after a restart skips
partitions that were written whole; that assumes a re-run partition holds the
same rows, as it does over a replayable source and a deterministic plan. A
task that fails part-way is written again whole, which duplicates what it had
written before failing; so does a task that dies between its last request
and its marker. Readers that must not see a record twice deduplicate on a key
of the data.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark import TaskContext
from pyspark.sql.datasource import (
    DataSourceArrowWriter,
    DataSourceStreamArrowWriter,
    WriterCommitMessage,
)
from pyspark.sql.types import BinaryType, StringType, StructType

from pyspark_kinesis.client import make_client
from pyspark_kinesis.completions import CompletedPartitions
from pyspark_kinesis.extra_options import SinkOptions
from pyspark_kinesis.options import KinesisOptionError
from pyspark_kinesis.writing import (
    RecordsNotWrittenError,
    SinkRecord,
    StreamWriter,
    WriteSummary,
)

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

REQUIRED_COLUMNS = ("data", "partitionKey")
OPTIONAL_COLUMNS = ("explicitHashKey",)


def check_input_schema(schema: StructType) -> None:
    """Fails the write on the driver, before any task, when the columns are not the sink's."""
    types = {field.name: field.dataType for field in schema.fields}
    missing = [name for name in REQUIRED_COLUMNS if name not in types]
    extra = [name for name in types if name not in REQUIRED_COLUMNS + OPTIONAL_COLUMNS]
    if missing or extra:
        raise KinesisOptionError(
            f"the Kinesis sink writes columns data (binary or string), partitionKey (string) "
            f"and optionally explicitHashKey (string); missing {missing}, unexpected {extra}: "
            "select or rename the columns first"
        )
    if not isinstance(types["data"], BinaryType | StringType):
        raise KinesisOptionError(f"column data must be binary or string, not {types['data']}")
    for name in ("partitionKey", "explicitHashKey"):
        if name in types and not isinstance(types[name], StringType):
            raise KinesisOptionError(f"column {name} must be a string, not {types[name]}")


def sink_records(batches: Iterable[pa.RecordBatch]) -> Iterator[SinkRecord]:
    """The rows of Arrow batches as records to put; a null data or key fails the write."""
    for batch in batches:
        columns = batch.to_pydict()
        hash_keys = columns.get("explicitHashKey") or [None] * batch.num_rows
        for data, key, hash_key in zip(
            columns["data"], columns["partitionKey"], hash_keys, strict=True
        ):
            if data is None or key is None:
                raise RecordsNotWrittenError(
                    "a row with a null data or partitionKey cannot be written to Kinesis: "
                    "filter such rows out, or give them a value"
                )
            payload = data.encode("utf-8") if isinstance(data, str) else data
            yield SinkRecord(payload, key, hash_key)


@dataclass
class PartitionWritten(WriterCommitMessage):
    """What one task did: its write, partition, and what it put (nothing if already done)."""

    write: tuple[str, str]
    partition: int
    summary: WriteSummary
    already_done: bool


class _PartitionWriting:
    """Writes one task's partition once per write (see the module docstring)."""

    def __init__(self, options: SinkOptions) -> None:
        self.options = options

    @property
    def completions(self) -> CompletedPartitions:
        connection = self.options.connection
        return CompletedPartitions(connection.metadata_path, connection.stream_name)

    def write_partition(
        self, write: tuple[str, str], batches: Iterable[pa.RecordBatch]
    ) -> PartitionWritten:
        context = TaskContext.get()
        partition = context.partitionId() if context is not None else 0
        completions = self.completions
        if completions.is_done(write, partition):
            log.info("partition %d of write %s was written whole before: skipped", partition, write)
            return PartitionWritten(write, partition, WriteSummary(), already_done=True)
        client = make_client(self.options.connection)
        summary = StreamWriter(client, self.options).write(sink_records(batches))
        completions.mark_done(write, partition)
        return PartitionWritten(write, partition, summary, already_done=False)


class KinesisBatchWriter(_PartitionWriting, DataSourceArrowWriter):
    """`df.write.format("kinesis")`: created on the driver, `write` runs in each task."""

    def __init__(self, options: SinkOptions) -> None:
        super().__init__(options)
        # Drawn once on the driver and pickled into every task: a retried task shares it.
        self.write_id = ("write", uuid.uuid4().hex)

    def write(self, iterator: Iterator[pa.RecordBatch]) -> PartitionWritten:
        """In each task, on an executor: puts the task's partition."""
        return self.write_partition(self.write_id, iterator)

    def commit(self, messages: list[WriterCommitMessage | None]) -> None:
        """On the driver, once every task succeeded: the write cannot re-run, markers go."""
        self.completions.forget(self.write_id)

    def abort(self, messages: list[WriterCommitMessage | None]) -> None:
        """On the driver, when a task failed for good: a new write draws a new id."""
        self.completions.forget(self.write_id)


class KinesisStreamWriter(_PartitionWriting, DataSourceStreamArrowWriter):
    """`df.writeStream.format("kinesis")`: `write` runs in each task of each micro-batch."""

    def write(self, iterator: Iterator[pa.RecordBatch]) -> PartitionWritten:
        """In each task of a micro-batch, on an executor: puts the task's partition."""
        context = TaskContext.get()
        assert context is not None  # Spark runs `write` in a task
        query_id = context.getLocalProperty("sql.streaming.queryId")
        batch_id = context.getLocalProperty("streaming.sql.batchId")
        if query_id is None or batch_id is None:
            raise RecordsNotWrittenError(
                "the Kinesis stream writer ran outside a micro-batch (no query or batch id); "
                "use df.write for a batch write"
            )
        return self.write_partition((query_id, batch_id), iterator)

    def commit(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:  # noqa: N803 (Spark calls it so)
        """On the driver, once a batch's tasks all succeeded: older batches' markers go."""
        written = [m for m in messages if isinstance(m, PartitionWritten)]
        for query_id in {message.write[0] for message in written}:
            self.completions.forget_batches_before(query_id, batchId)
        log.info(
            "batch %d: %d records written to %s (%d partitions already written before)",
            batchId,
            sum(message.summary.user_records for message in written),
            self.options.connection.stream_name,
            sum(message.already_done for message in written),
        )

    def abort(self, messages: list[WriterCommitMessage | None], batchId: int) -> None:  # noqa: N803 (Spark calls it so)
        """On the driver, when a task failed for good: markers stay for the batch's re-run."""
