"""`spark.read.format("kinesis")`: a bounded read of what one or several streams hold.

The driver lists the shards once and fixes one instant, the planning time
(or `endingTimestamp` / `endingPosition=AT_TIMESTAMP:<t>`): each shard is read
from its starting position up to the last record that arrived by then, the
same bound a streaming batch uses (`Take`), so records arriving during the
read are left out and every shard stops where it stood when the read was
planned. The shards of each stream are listed parents before children and
read `shardsPerTask` to a task, as a streaming batch's are; a child that
shares its parent's task is read once the parent's read has ended, so rows
come out with a parent's records ahead of its children's. Several streams
share the one instant.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from pyspark.sql.datasource import DataSourceReader, InputPartition

from pyspark_kinesis.client import make_client
from pyspark_kinesis.extra_options import BatchReadOptions
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.partitions import ShardBatch, read_group, shard_groups
from pyspark_kinesis.positions import Position, at_timestamp
from pyspark_kinesis.reading import TakeRead, listed_shards
from pyspark_kinesis.rows import arrow_batches
from pyspark_kinesis.shards import Shard, StreamShard, Take

if TYPE_CHECKING:
    import pyarrow as pa


def parents_first(shards: Sequence[Shard]) -> list[Shard]:
    """The shards ordered so that every parent in the listing comes before its children."""
    by_id = {shard.shard_id: shard for shard in shards}
    ordered: list[Shard] = []
    placed: set[str] = set()

    def place(shard: Shard) -> None:
        if shard.shard_id in placed:
            return
        placed.add(shard.shard_id)
        for parent in sorted(shard.parents):
            if parent in by_id:
                place(by_id[parent])
        ordered.append(shard)

    for shard in sorted(shards, key=lambda shard: shard.shard_id):
        place(shard)
    return ordered


class KinesisBatchReader(DataSourceReader):
    """Plans on the driver: the shards of every stream, `shardsPerTask` to a task; each
    task reads its shards at once.

    Spark makes it (`KinesisDataSource.reader`) and calls `partitions` on the
    driver, in the Python process that plans the read; `read` runs on the
    executors' Python workers, on a pickled copy of it.
    """

    def __init__(self, options: KinesisOptions, ending: BatchReadOptions) -> None:
        if options.starting_position.kind == "LATEST":
            raise KinesisOptionError(
                "startingPosition LATEST reads nothing in a batch read (spark.read): use "
                "TRIM_HORIZON (the default there), AT_TIMESTAMP or per-shard positions"
            )
        self.options = options
        self.ending = ending

    def partitions(self) -> Sequence[InputPartition]:
        """Every shard of every stream, from its starting position to the read's instant.

        Spark calls it on the driver, in the Python process that plans the read.
        """
        until_s = self.ending.until_s if self.ending.until_s is not None else time.time()
        take = Take(until_s)
        client = make_client(self.options)
        batches: list[ShardBatch] = []
        parents: dict[StreamShard, list[StreamShard]] = {}
        for name in self.options.stream_names:
            options = self.options.for_stream(name)
            for shard in parents_first(listed_shards(client, options)):
                key = StreamShard(name, shard.shard_id)
                parents[key] = [StreamShard(name, parent) for parent in shard.parents]
                batches.append(ShardBatch(key, _start_of(options, shard.shard_id, until_s), take))
        return shard_groups(batches, self.options.shards_per_task, parents)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Reads the task's shards at once (`partitions.read_group`), a child shard after
        its parents where they share the task.

        Spark calls it on an executor's Python worker, once per task.
        """
        return read_group(partition, self._read_shard)

    def _read_shard(self, batch: ShardBatch) -> Iterator[pa.RecordBatch]:
        options = self.options.for_stream(batch.shard.stream_name)
        shard_read = TakeRead(
            make_client(options), options, batch.shard.shard_id, batch.start, batch.take
        )
        return arrow_batches(shard_read, batch.shard)


def _start_of(options: KinesisOptions, shard_id: str, until_s: float) -> Position:
    position = options.starting_position_for(shard_id)
    # A per-shard LATEST means the bound itself: nothing of that shard is read.
    return at_timestamp(until_s) if position.kind == "LATEST" else position
