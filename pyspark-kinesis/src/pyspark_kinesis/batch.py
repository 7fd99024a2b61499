"""`spark.read.format("kinesis")`: a bounded read of what a stream holds.

The driver lists the shards once and fixes one instant, the planning time
(or `endingTimestamp` / `endingPosition=AT_TIMESTAMP:<t>`): each shard is read
from its starting position up to the last record that arrived by then, the
same bound a streaming batch uses (`Take`), so records arriving during the
read are left out and every shard stops where it stood when the read was
planned. One partition per shard, listed parents before children, so rows
come out with a parent's records ahead of its children's.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSourceReader, InputPartition

from pyspark_kinesis.client import call, make_client
from pyspark_kinesis.extra_options import BatchReadOptions
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.positions import Position, at_timestamp
from pyspark_kinesis.reading import TakeRead
from pyspark_kinesis.shards import Shard, Take
from pyspark_kinesis.source import SCHEMA, ShardBatch, _to_arrow

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


def listed_shards(client: Any, options: KinesisOptions) -> list[Shard]:
    """Every shard ListShards shows (open, and closed ones still within retention)."""
    pages: list[dict[str, Any]] = [
        call(options, client.list_shards, StreamName=options.stream_name)
    ]
    while pages[-1].get("NextToken"):
        pages.append(call(options, client.list_shards, NextToken=pages[-1]["NextToken"]))
    return [Shard.from_listing(entry) for page in pages for entry in page["Shards"]]


class KinesisBatchReader(DataSourceReader):
    """Plans one partition per shard on the driver; each task reads its shard to the bound."""

    def __init__(self, options: KinesisOptions, ending: BatchReadOptions) -> None:
        if options.starting_position.kind == "LATEST":
            raise KinesisOptionError(
                "startingPosition LATEST reads nothing in a batch read (spark.read): use "
                "TRIM_HORIZON (the default there), AT_TIMESTAMP or per-shard positions"
            )
        self.options = options
        self.ending = ending

    def partitions(self) -> Sequence[InputPartition]:
        until_s = self.ending.until_s if self.ending.until_s is not None else time.time()
        shards = parents_first(listed_shards(make_client(self.options), self.options))
        take = Take(until_s)
        return [
            ShardBatch(shard.shard_id, self._start_of(shard.shard_id, until_s), take)
            for shard in shards
        ]

    def _start_of(self, shard_id: str, until_s: float) -> Position:
        position = self.options.starting_position_for(shard_id)
        # A per-shard LATEST means the bound itself: nothing of that shard is read.
        return at_timestamp(until_s) if position.kind == "LATEST" else position

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415 (see source.read)

        assert isinstance(partition, ShardBatch)
        arrow_schema = to_arrow_schema(SCHEMA, timezone="UTC")
        client = make_client(self.options)
        shard_read = TakeRead(
            client, self.options, partition.shard_id, partition.start, partition.take
        )
        for chunk in shard_read:
            yield _to_arrow(chunk, self.options.stream_name, partition.shard_id, arrow_schema)
