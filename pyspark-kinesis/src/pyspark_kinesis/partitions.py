"""What a Spark task reads (`ShardGroup`, the `InputPartition`): the batches of up to
`shardsPerTask` shards, each a `ShardBatch` (a shard's start and take).

Streaming and batch reads both cut their shards into groups here (`shard_groups`)
and read a group's shards at once (`read_group`, see `task_reading`). Partitions
are plain data, pickled by Spark from the driver to the executors: clients and
threads are made where the task reads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from pyspark.sql.datasource import InputPartition

from pyspark_kinesis.positions import Position
from pyspark_kinesis.shards import StreamShard, Take
from pyspark_kinesis.task_groups import task_groups, waits_in_group
from pyspark_kinesis.task_reading import read_at_once

if TYPE_CHECKING:
    import pyarrow as pa


@dataclass(frozen=True)
class ShardBatch:
    """What one batch takes from one shard of one stream: `take` after `start`.

    `not_before_s` is when the driver's look at the shard lets the task read it.
    """

    shard: StreamShard
    start: Position
    take: Take
    not_before_s: float = 0.0


class ShardGroup(InputPartition):
    """What one task reads: the batches of up to `shardsPerTask` shards, read at once.

    `after[i]` lists the positions of the shards that shard `i` is read after
    (its parents, in a batch read; see `task_reading.read_at_once`). Plain data,
    so it pickles: clients and threads are made where the task reads.
    """

    def __init__(self, batches: Sequence[ShardBatch], after: Sequence[Sequence[int]] = ()) -> None:
        super().__init__(",".join(str(batch.shard) for batch in batches))
        self.batches = tuple(batches)
        self.after = tuple(tuple(waits) for waits in after)


def shard_groups(
    batches: Sequence[ShardBatch],
    shards_per_task: int,
    parents: Mapping[StreamShard, Sequence[StreamShard]] | None = None,
) -> list[ShardGroup]:
    """`batches` in order, `shards_per_task` to a task (see `task_groups`); a shard read
    after its `parents` where they share its task."""
    groups = []
    for group in task_groups(batches, shards_per_task):
        shards = [batch.shard for batch in group]
        groups.append(ShardGroup(group, waits_in_group(shards, parents or {})))
    return groups


def read_group(
    group: InputPartition, read_shard: Callable[[ShardBatch], Iterator[pa.RecordBatch]]
) -> Iterator[pa.RecordBatch]:
    """What a task yields: every shard of its group read at once, each by `read_shard`."""
    assert isinstance(group, ShardGroup)
    return read_at_once([partial(read_shard, batch) for batch in group.batches], group.after)
