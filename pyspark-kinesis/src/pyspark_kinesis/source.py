"""The Spark-facing classes: the data source, its stream reader and the shard partition.

How a batch replays exactly, reading each record once
-----------------------------------------------------
A Kinesis batch's end is not known before its records are read, yet Spark
logs a batch's end offset *before* running it, and re-runs an unfinished batch
from the logged (start, end) after a restart. So the end offset the driver
logs says, per shard, where the batch starts and what it takes (`Take`): the
records that arrived by the planning instant, at most the batch's share of
`maxRecordsPerTrigger`. Both bounds are fixed at planning, so any read of the
batch returns the same records; the driver only looks at one record per shard
to see whether there is anything to take (`peek_shard`).

The task that reads a shard's batch notes where it ended in a small file under
`metadataPath` (`EndStore`, the AWS connector's design); the driver starts the
next batch there, and a retried or replayed task reads exactly to it. Without
the file (executors on other machines and no shared `metadataPath`) the driver
reads the batch's records again to find the same end: slower, equally exact.

Limits: the bound is Kinesis' approximate arrival time against the driver's
clock, so clocks should agree (NTP), and a record Kinesis accepted before the
planning instant but shows only after a task has read the shard's end falls to
the next batch, or, if the driver must re-read to find the end and sees it by
then, is not read at all: on clusters, give every node the same `metadataPath`.
`maxRecordsPerTrigger` counts Kinesis records, before KPL de-aggregation, and
is shared among the shards that have records. `LATEST` is the arrival time at
which the query first plans, so a record whose approximate arrival time is
skewed across that instant may fall either side; and as Spark logs no start
offset for the first batch, a query that dies before its first batch commits
pins a new instant on restart (its sink never committed that batch, so nothing
is doubled or lost in it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import TYPE_CHECKING, Any, TypeVar

from pyspark.sql.datasource import (
    DataSource,
    DataSourceReader,
    DataSourceStreamReader,
    DataSourceStreamWriter,
    DataSourceWriter,
    InputPartition,
)
from pyspark.sql.streaming.datasource import (
    ReadAllAvailable,
    ReadLimit,
    ReadMaxRows,
    SupportsTriggerAvailableNow,
)
from pyspark.sql.types import (
    BinaryType,
    LongType,
    StringType,
    StructField,
    StructType,
    TimestampType,
)

from pyspark_kinesis.aggregation import user_records
from pyspark_kinesis.client import call, make_client
from pyspark_kinesis.ends import EndStore
from pyspark_kinesis.extra_options import (
    BatchReadOptions,
    SinkOptions,
    refuse_options_of_another_use,
    starting_position_given,
)
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position
from pyspark_kinesis.reading import Peek, ShardEnd, TakeRead, peek_shard, read_range
from pyspark_kinesis.shards import (
    Progress,
    Shard,
    ShardProgress,
    Take,
    initial_progress,
    progress_from_offset,
    progress_to_offset,
    with_new_shards,
)
from pyspark_kinesis.sink import KinesisBatchWriter, KinesisStreamWriter, check_input_schema

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_MICROS_PER_SECOND = 1_000_000
K = TypeVar("K")
T = TypeVar("T")

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


class KinesisDataSource(DataSource):
    """`format("kinesis")`: records of one Kinesis stream, streamed, read in batch or written.

    >>> df = (spark.readStream.format("kinesis")
    ...       .option("streamName", "events")
    ...       .option("endpointUrl", "http://localhost:4566")
    ...       .option("region", "us-east-1")
    ...       .option("startingposition", "TRIM_HORIZON")
    ...       .load())

    Options are validated here, so a bad one fails at `load()`.
    """

    def __init__(self, options: dict[str, str]) -> None:
        super().__init__(options)
        # The sink's and the batch read's own options are split off; the rest is
        # KinesisOptions', shared by every way of using the source.
        self.sink_options = SinkOptions.parse(options)
        self.kinesis_options = self.sink_options.connection
        self.batch_read_options = BatchReadOptions.parse(options)

    @classmethod
    def name(cls) -> str:
        return "kinesis"

    def schema(self) -> StructType:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KinesisStreamReader:
        refuse_options_of_another_use(self.options, "stream read")
        return KinesisStreamReader(self.kinesis_options)

    def reader(self, schema: StructType) -> DataSourceReader:
        """`spark.read.format("kinesis")`: see `pyspark_kinesis.batch`."""
        from pyspark_kinesis.batch import KinesisBatchReader  # noqa: PLC0415 (imports this module)

        refuse_options_of_another_use(self.options, "batch read")
        options = self.kinesis_options
        if not starting_position_given(self.options):
            options = replace(options, starting_position=TRIM_HORIZON)
        return KinesisBatchReader(options, self.batch_read_options)

    def writer(self, schema: StructType, overwrite: bool) -> DataSourceWriter:
        """`df.write.format("kinesis")`: see `pyspark_kinesis.sink`."""
        refuse_options_of_another_use(self.options, "sink")
        check_input_schema(schema)
        return KinesisBatchWriter(self.sink_options)

    def streamWriter(self, schema: StructType, overwrite: bool) -> DataSourceStreamWriter:
        """`df.writeStream.format("kinesis")`: see `pyspark_kinesis.sink`."""
        refuse_options_of_another_use(self.options, "sink")
        check_input_schema(schema)
        return KinesisStreamWriter(self.sink_options)


class ShardBatch(InputPartition):
    """What one batch takes from one shard: `take` after `start`."""

    def __init__(self, shard_id: str, start: Position, take: Take) -> None:
        super().__init__(shard_id)
        self.shard_id = shard_id
        self.start = start
        self.take = take


class KinesisStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans batches on the driver as per-shard takes; tasks read one shard each."""

    def __init__(self, options: KinesisOptions) -> None:
        self.options = options
        self.ends = EndStore(options)
        self._client: Any = None
        self._available_now: tuple[float, frozenset[str]] | None = None
        self._initial_offset: dict[str, Any] | None = None
        self._behind_ms: dict[str, int] = {}
        # shard id -> (position, iterator still at that position), from the last look.
        self._iterators: dict[str, tuple[Position, str]] = {}
        # Where the batches of the last start offset ended: every idle trigger plans
        # from that same offset, and must not look (or, with no note, read) again.
        self._found_ends: dict[tuple[str, Position, Take], ShardEnd] = {}
        self._warned_about_rereading = False

    def __getstate__(self) -> dict[str, Any]:
        # Spark pickles the reader to run `read` on executors: the driver's state stays behind.
        state = dict(self.__dict__)
        state["_client"] = None
        state["_iterators"] = {}
        state["_found_ends"] = {}
        return state

    @property
    def client(self) -> Any:
        if self._client is None:
            self._client = make_client(self.options)
        return self._client

    def initialOffset(self) -> dict[str, Any]:
        # Spark asks more than once; LATEST must pin one instant for the whole run.
        if self._initial_offset is None:
            self._initial_offset = self._pin_initial_offset()
        return self._initial_offset

    def _pin_initial_offset(self) -> dict[str, Any]:
        progress = initial_progress(
            self._list_shards(),
            self.options.starting_position,
            self.options.shard_starting_positions,
            query_start_s=time.time(),
        )
        log.info("starting %s at %s", self.options.stream_name, _describe(progress))
        return progress_to_offset(progress)

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.max_records_per_trigger
        return ReadMaxRows(limit) if limit else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        # Records that arrive after this instant, and shards created after it, are not read.
        self._available_now = (time.time(), frozenset(s.shard_id for s in self._list_shards()))

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        cutoff_s, eligible = self._available_now or (None, None)
        until_s = time.time() if cutoff_s is None else cutoff_s
        known = self._where_batches_ended(progress_from_offset(start))
        progress = with_new_shards(known, self._list_shards(), eligible)
        readable = sorted(shard_id for shard_id, state in progress.items() if not state.ended)
        peeks = self._peek(progress, readable, until_s)
        self._behind_ms = {shard_id: peek.millis_behind_latest for shard_id, peek in peeks.items()}
        for shard_id, peek in peeks.items():
            if peek.ended:
                progress[shard_id] = ShardProgress(progress[shard_id].position, ended=True)
        with_records = [shard_id for shard_id, peek in peeks.items() if peek.has_records]
        if not with_records and progress == known:
            return start  # nothing to read: Spark runs no batch
        budget = limit.max_rows if isinstance(limit, ReadMaxRows) else None
        shares = _split(budget, with_records, self.options.max_records_per_shard)
        window = self.options.max_fetch_duration_s
        for shard_id, share in shares.items():
            if share == 0:
                continue
            first_arrival_s = peeks[shard_id].first_arrival_s
            shard_until_s = until_s
            if window is not None and first_arrival_s is not None:
                shard_until_s = min(until_s, first_arrival_s + window)
            take = Take(shard_until_s, share)
            progress[shard_id] = ShardProgress(progress[shard_id].position, take=take)
        return progress_to_offset(progress)

    def reportLatestOffset(self) -> dict[str, Any] | None:
        if not self._behind_ms:
            return None
        return {"millisBehindLatest": dict(sorted(self._behind_ms.items()))}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        return [
            ShardBatch(shard_id, state.position, state.take)
            for shard_id, state in sorted(progress_from_offset(end).items())
            if state.take is not None
        ]

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        # Imported here, on the executors: the driver's planning process never needs
        # pyarrow, and its import is a third of a second of every query's start.
        from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415

        assert isinstance(partition, ShardBatch)
        client = make_client(self.options)
        arrow_schema = to_arrow_schema(SCHEMA, timezone="UTC")
        shard_id, start, take = partition.shard_id, partition.start, partition.take

        def arrow(chunks: Iterable[list[dict[str, Any]]]) -> Iterator[pa.RecordBatch]:
            for chunk in chunks:
                yield _to_arrow(chunk, self.options.stream_name, shard_id, arrow_schema)

        known_end = self.ends.get(shard_id, start, take)
        if known_end is not None:
            # Read before (a retry, a replay): exactly to where that read ended.
            if known_end.position != start:
                last = str(known_end.position.argument)
                yield from arrow(read_range(client, self.options, shard_id, start, last))
            return
        take_read = TakeRead(client, self.options, shard_id, start, take)
        yield from arrow(take_read)
        assert take_read.end is not None  # set once its records were all read
        self.ends.put(shard_id, start, take, take_read.end)

    def _list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        request: dict[str, Any] = {"StreamName": self.options.stream_name}
        while True:
            answer = call(self.options, self.client.list_shards, **request)
            shards.extend(Shard.from_listing(entry) for entry in answer["Shards"])
            if not answer.get("NextToken"):
                return shards
            request = {"NextToken": answer["NextToken"]}

    def _where_batches_ended(self, progress: Progress) -> Progress:
        """`progress` with every take replaced by the place it reached."""
        taken = {
            (shard_id, state.position, state.take): shard_id
            for shard_id, state in progress.items()
            if state.take is not None
        }
        found = {key: end for key, end in self._found_ends.items() if key in taken}

        def end_of(key: tuple[str, Position, Take]) -> ShardEnd:
            shard_id, position, take = key
            known_end = self.ends.get(shard_id, position, take)
            if known_end is not None:
                return known_end
            if not self._warned_about_rereading:
                self._warned_about_rereading = True
                log.warning(
                    "no batch end noted under metadataPath=%s for %s; the driver reads the "
                    "batch again to find it (slower): give the driver and every executor the "
                    "same metadataPath",
                    self.ends.root,
                    shard_id,
                )
            return TakeRead(self.client, self.options, shard_id, position, take).read_to_end()

        found.update(self._in_parallel(end_of, [key for key in taken if key not in found]))
        self._found_ends = found
        resolved = dict(progress)
        for key, end in found.items():
            resolved[taken[key]] = ShardProgress(end.position, end.ended)
        return resolved

    def _peek(self, progress: Progress, shard_ids: list[str], until_s: float) -> dict[str, Peek]:
        def peek(shard_id: str) -> Peek:
            position = progress[shard_id].position
            saved_position, iterator = self._iterators.get(shard_id, (None, None))
            return peek_shard(
                self.client,
                self.options,
                shard_id,
                position,
                until_s=until_s,
                iterator=iterator if saved_position == position else None,
            )

        peeks = self._in_parallel(peek, shard_ids)
        self._iterators = {
            shard_id: (progress[shard_id].position, peek.iterator)
            for shard_id, peek in peeks.items()
            if peek.iterator
        }
        return peeks

    def _in_parallel(self, work: Callable[[K], T], items: list[K]) -> dict[K, T]:
        """`work` for every item (a shard each), in parallel: one slow shard holds up no other."""
        if not items:
            return {}
        with ThreadPoolExecutor(max_workers=min(32, len(items))) as pool:
            return dict(zip(items, pool.map(work, items), strict=True))


def _split(
    budget: int | None, shard_ids: list[str], per_shard_cap: int | None
) -> dict[str, int | None]:
    if budget is None:
        return dict.fromkeys(shard_ids, per_shard_cap)
    share, extra = divmod(budget, len(shard_ids))
    # Rotate who gets the remainder so a budget smaller than the shard count starves no shard.
    offset = int(time.monotonic()) % len(shard_ids)
    rotated = shard_ids[offset:] + shard_ids[:offset]
    shares = {
        shard_id: share + (1 if index < extra else 0) for index, shard_id in enumerate(rotated)
    }
    if per_shard_cap is not None:
        shares = {shard_id: min(rows, per_shard_cap) for shard_id, rows in shares.items()}
    return dict(shares)


def _to_arrow(
    records: list[dict[str, Any]], stream_name: str, shard_id: str, schema: pa.Schema
) -> pa.RecordBatch:
    columns: dict[str, list[Any]] = {name: [] for name in schema.names}
    for record in records:
        for user_record in user_records(record["Data"], record["PartitionKey"]):
            columns["data"].append(user_record.data)
            columns["partitionKey"].append(user_record.partition_key)
            columns["subSequenceNumber"].append(user_record.sub_sequence_number)
            columns["sequenceNumber"].append(record["SequenceNumber"])
            columns["approximateArrivalTimestamp"].append(
                int(record["ApproximateArrivalTimestamp"] * _MICROS_PER_SECOND)
            )
    import pyarrow as pa  # noqa: PLC0415 (see `read`)

    rows = len(columns["data"])
    columns["streamName"] = [stream_name] * rows
    columns["shardId"] = [shard_id] * rows
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def _describe(progress: Progress) -> str:
    return ", ".join(f"{shard_id}@{state.position}" for shard_id, state in sorted(progress.items()))
