"""The Spark-facing classes: the data source, its stream reader and the task's partition.

Several streams
---------------
A query may read several streams (`streamName` a comma-separated list): each
shard is a `StreamShard` (stream, shard id) in one plan, the offset holds one
entry per stream and shard (`pyspark_kinesis.shards` owns its format), and
reading a shard uses its stream's own options (`KinesisOptions.for_stream`),
so everything below holds per shard of each stream.

How a batch replays exactly, reading each record once
-----------------------------------------------------
A Kinesis batch's end is not known before its records are read, yet Spark
logs a batch's end offset *before* running it, and re-runs an unfinished batch
from the logged (start, end) after a restart. So the end offset the driver
logs says, per shard, where the batch starts and what it takes (`Take`): the
records that arrived by the planning instant, at most the batch's share of
`maxRecordsPerTrigger`. Both bounds are fixed at planning, so any read of the
batch returns the same records; the driver only looks at one record per shard
to see whether there is anything to take (`peek_shard`, which looks past empty
pages that say records wait further on, so Trigger.AvailableNow never mistakes
them for a drained shard). A busy shard needs no look: the task that read its
last batch stopped before the records that arrived after that batch was
planned, and its note says when the first of them arrived (`peek_from_end`),
so a shard that always has records is read once per batch, by its task.

The task that reads a shard's batch notes where it ended in a small document
under `metadataPath` (`ends`, the AWS connector's design): a file in a directory
every node sees, or an object under an `s3://` prefix. Once: a later attempt
of the same task that read to another end fails, and its retry reads exactly
to the note. The driver starts the next batch there, a retried or replayed
task reads exactly to it, and `commit` removes the notes of the batch before
the one Spark committed. Without a note (executors on other machines and no
`metadataPath` they all reach) the driver reads the batch's records again to find the
same end. That is exact only if the task saw every record the driver sees, so
until the driver has seen a note, a batch takes only records that arrived
VISIBILITY_MARGIN_S (2 s) before it was planned (`_planning_instant`).

Tasks: a batch's shards with records are read `shardsPerTask` to a task
(`shard_groups`), the shards of a task at once, each in a thread of its own
with its own pace, note and end (`task_reading`), so a task takes about as
long as its slowest shard. A batch runs in one wave of tasks while its shards
with records are at most `shardsPerTask` per task slot.

Enhanced fan-out (`consumerMode=efo`, `kinesis.consumerType=SubscribeToShard`):
planning, notes and replays are the same; a task takes its `Take` from its
worker's subscription to the shard (`subscriptions.take_reader`), which keeps
the records past the planned end for the next batch, and the query's consumer
is registered when the query first plans (`consumers`).

Pacing: the driver's look at a shard and the task reading it take turns, each
starting when the previous reader's pace allows (wall-clock times carried in
the partition and in the note): `minFetchPeriod` (default 250 ms) between
GetRecords calls and `maxFetchRate` (default 2 MB/s), inside AWS's 5 calls/s
and 2 MB/s per shard when the query is the shard's only reader. A batch takes
at most DEFAULT_MAX_RECORDS_PER_SHARD (100,000) records per shard unless
`maxRecordsPerShard` says otherwise, so the first batch after an outage is
bounded too. The remainder of `maxRecordsPerTrigger` goes to each shard in
turn, the last shard served kept in the offset (`split_budget`).

Limits: the bound is Kinesis' approximate arrival time against the driver's
clock, so clocks should agree (NTP). A record Kinesis shows later than its
arrival time falls to the next batch when notes are seen; without notes it is
read in its batch if Kinesis shows it within 2 s, and one shown later still
can be skipped: on clusters, set `metadataPath` to a directory every node
shares or to an `s3://` prefix. After a
restart, the notes of the batch before the first commit stay behind.
`maxRecordsPerTrigger` and the per-shard limit count rows (user records, after
KPL de-aggregation), so a batch may end inside an aggregate.
`maxRecordsPerTrigger` is shared over all shards with records of all streams;
the per-shard limit (`maxRecordsPerShard`) holds for each shard of each stream.
`LATEST` is the arrival time at which the query first plans, so a record whose
approximate arrival time is skewed across that instant may fall either side;
and as Spark logs no start offset for the first batch, a query that dies
before its first batch commits
pins a new instant on restart (its sink never committed that batch, so nothing
is doubled or lost in it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from functools import partial
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

from pyspark_kinesis.client import KinesisSourceError, make_client
from pyspark_kinesis.completions import refuse_s3_markers
from pyspark_kinesis.consumers import register_consumers
from pyspark_kinesis.ends import end_store
from pyspark_kinesis.extra_options import (
    BatchReadOptions,
    SinkOptions,
    refuse_options_of_another_use,
    starting_position_given,
)
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position
from pyspark_kinesis.reading import (
    ROWS,
    Peek,
    ShardEnd,
    TakeRead,
    listed_shards,
    missing_streams,
    peek_from_end,
    peek_shard,
    read_range,
)
from pyspark_kinesis.shards import (
    Shard,
    ShardProgress,
    StreamShard,
    StreamsProgress,
    Take,
    by_stream,
    initial_progress,
    last_served_from_offset,
    of_streams,
    split_budget,
    streams_from_offset,
    streams_to_offset,
    with_new_shards,
)
from pyspark_kinesis.sink import KinesisBatchWriter, KinesisStreamWriter, check_input_schema
from pyspark_kinesis.subscriptions import take_reader
from pyspark_kinesis.task_groups import task_groups, waits_in_group
from pyspark_kinesis.task_reading import read_at_once

if TYPE_CHECKING:
    import pyarrow as pa

log = logging.getLogger(__name__)

_MICROS_PER_SECOND = 1_000_000
# A batch takes at most this many records from a shard unless maxRecordsPerShard
# says otherwise, so the first batch after an outage stays a batch, not the backlog.
DEFAULT_MAX_RECORDS_PER_SHARD = 100_000
# Kinesis shows a record at most this long after its approximate arrival time
# (the bound under which a batch read without a note is exact; see `_planning_instant`).
VISIBILITY_MARGIN_S = 2.0
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
    """`format("kinesis")`: records of Kinesis streams, streamed, read in batch or written.

    Reads take one stream or several (`streamName` a comma-separated list); the
    sink writes one stream.

    >>> df = (spark.readStream.format("kinesis")
    ...       .option("streamName", "events")
    ...       .option("endpointUrl", "http://localhost:4566")
    ...       .option("region", "us-east-1")
    ...       .option("startingposition", "TRIM_HORIZON")
    ...       .load())

    Options are validated here, so a bad one fails at `load()`; so does a
    stream that does not exist among several read (one stream alone fails when
    the query first reads it, naming it too).
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
        # Spark asks for the schema at load(): the one moment a read can still fail before
        # any query runs. One stream is checked by its first read, as before.
        if len(self.kinesis_options.stream_names) > 1:
            refuse_missing_streams(self.kinesis_options)
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
        refuse_several_streams_to_write(self.kinesis_options)
        check_input_schema(schema)
        refuse_s3_markers(self.kinesis_options.metadata_path)
        return KinesisBatchWriter(self.sink_options)

    def streamWriter(self, schema: StructType, overwrite: bool) -> DataSourceStreamWriter:
        """`df.writeStream.format("kinesis")`: see `pyspark_kinesis.sink`."""
        refuse_options_of_another_use(self.options, "sink")
        refuse_several_streams_to_write(self.kinesis_options)
        check_input_schema(schema)
        refuse_s3_markers(self.kinesis_options.metadata_path)
        return KinesisStreamWriter(self.sink_options)


def refuse_missing_streams(options: KinesisOptions) -> None:
    """Raises KinesisOptionError naming the streams read that Kinesis does not know."""
    missing = missing_streams(make_client(options), options)
    if missing:
        where = f" at {options.endpoint_url}" if options.endpoint_url else ""
        raise KinesisOptionError(
            f"Kinesis stream(s) {', '.join(repr(name) for name in missing)} not found in "
            f"region {options.region!r}{where} (reading {', '.join(options.stream_names)}): "
            "check streamName and region, or create the stream first"
        )


def refuse_several_streams_to_write(options: KinesisOptions) -> None:
    if len(options.stream_names) > 1:
        raise KinesisOptionError(
            f"the sink writes one stream, not {', '.join(options.stream_names)}: "
            "give streamName one stream"
        )


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


class KinesisStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans batches on the driver as per-shard takes; a task reads `shardsPerTask` shards at once.

    Every stream read has its shards in the same plan, each keyed by
    `StreamShard`: one offset per stream and shard, resharding followed per
    stream, `maxRecordsPerShard` per shard and `maxRecordsPerTrigger` shared
    over all shards of all streams.
    """

    def __init__(self, options: KinesisOptions) -> None:
        self.options = options
        # Each stream's own options: what reading, noting and listing its shards need.
        self._stream_options = {name: options.for_stream(name) for name in options.stream_names}
        self.ends_by_stream = {
            name: end_store(self._stream_options[name]) for name in options.stream_names
        }
        self._client: Any = None
        # (when, each stream's shards): planning reuses a listing younger than the interval.
        self._listing: tuple[float, dict[str, list[Shard]]] | None = None
        self._available_now: tuple[float, frozenset[StreamShard]] | None = None
        self._initial_offset: dict[str, Any] | None = None
        self._behind_ms: dict[StreamShard, int] = {}
        # shard -> (position, iterator still at that position), from the last look.
        self._iterators: dict[StreamShard, tuple[Position, str]] = {}
        # Where the batches of the last start offset ended: every idle trigger plans
        # from that same offset, and must not look (or, with no note, read) again.
        self._found_ends: dict[tuple[StreamShard, Position, Take], ShardEnd] = {}
        # shard -> that end, by shard: what its reader saw after it spares a look.
        self._ends_by_shard: dict[StreamShard, ShardEnd] = {}
        # shard -> wall-clock time its last reader (a peek or a task) lets it be read again.
        self._next_read_s: dict[StreamShard, float] = {}
        self._committed_takes: frozenset[tuple[StreamShard, Position, Take]] = frozenset()
        # Whether the tasks' notes reach this driver (see `_planning_instant`).
        self._notes_seen = False
        self._warned_about_rereading = False

    def __getstate__(self) -> dict[str, Any]:
        # Spark pickles the reader to run `read` on executors: the driver's state stays behind.
        state = dict(self.__dict__)
        state["_client"] = None
        state["_listing"] = None
        state["_iterators"] = {}
        state["_found_ends"] = {}
        state["_ends_by_shard"] = {}
        state["_next_read_s"] = {}
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
        query_start_s = time.time()
        listings = self._list_shards(fresh=True)
        progress = of_streams(
            {
                name: initial_progress(
                    listings[name],
                    options.starting_position,
                    options.shard_starting_positions,
                    query_start_s=query_start_s,
                )
                for name, options in self._stream_options.items()
            }
        )
        log.info("starting at %s", _describe(progress))
        return streams_to_offset(progress)

    def getDefaultReadLimit(self) -> ReadLimit:
        limit = self.options.max_records_per_trigger
        return ReadMaxRows(limit) if limit else ReadAllAvailable()

    def prepareForTriggerAvailableNow(self) -> None:
        # Records that arrive after this instant, and shards created after it, are not read.
        listings = self._list_shards(fresh=True)
        listed = frozenset(
            StreamShard(name, shard.shard_id)
            for name, shards in listings.items()
            for shard in shards
        )
        self._available_now = (time.time(), listed)

    def latestOffset(self, start: dict[str, Any], limit: ReadLimit) -> dict[str, Any]:
        if self.options.fan_out:
            register_consumers(self.client, self.options)  # kept per process once ACTIVE
        cutoff_s, eligible = self._available_now or (None, None)
        known = self._where_batches_ended(self._progress_of(start))
        until_s = self._planning_instant(cutoff_s)
        progress = self._with_new_shards(known, eligible)
        readable = sorted(shard for shard, state in progress.items() if not state.ended)
        peeks = self._peek(progress, readable, until_s)
        self._behind_ms = {shard: peek.millis_behind_latest for shard, peek in peeks.items()}
        for shard, peek in peeks.items():
            if peek.ended:
                progress[shard] = ShardProgress(progress[shard].position, ended=True)
        with_records = [shard for shard, peek in peeks.items() if peek.has_records]
        if not with_records and progress == known:
            return start  # nothing to read: Spark runs no batch
        budget = limit.max_rows if isinstance(limit, ReadMaxRows) else None
        last_served = last_served_from_offset(start)
        cap = self.options.max_records_per_shard or DEFAULT_MAX_RECORDS_PER_SHARD
        shares, served = split_budget(budget, with_records, cap, last_served)
        window = self.options.max_fetch_duration_s
        for shard, share in shares.items():
            if share == 0:
                continue
            first_arrival_s = peeks[shard].first_arrival_s
            shard_until_s = until_s
            if window is not None and first_arrival_s is not None:
                shard_until_s = min(until_s, first_arrival_s + window)
            take = Take(shard_until_s, share)
            progress[shard] = ShardProgress(progress[shard].position, take=take)
        offset = streams_to_offset(progress)
        if served is not None:
            offset["lastServed"] = str(served)
        return offset

    def _progress_of(self, offset: dict[str, Any]) -> StreamsProgress:
        return streams_from_offset(offset, self.options.stream_names)

    def _with_new_shards(
        self, progress: StreamsProgress, eligible: frozenset[StreamShard] | None
    ) -> StreamsProgress:
        """`progress` with the shards each stream's resharding lets the query read now."""
        listings = self._list_shards()

        def eligible_in(name: str) -> frozenset[str] | None:
            if eligible is None:
                return None
            return frozenset(shard.shard_id for shard in eligible if shard.stream_name == name)

        return of_streams(
            {
                name: with_new_shards(by_stream(progress, name), listings[name], eligible_in(name))
                for name in self.options.stream_names
            }
        )

    def _planning_instant(self, cutoff_s: float | None) -> float:
        """Until when the next batch takes records (their approximate arrival time).

        Until a task's note has been seen, the driver may have to read a batch
        again to find its end, which is exact only if the task saw every record
        the driver will see. Kinesis shows a record a little after its arrival
        time, so the batch then takes only records older than
        VISIBILITY_MARGIN_S (under Trigger.AvailableNow, it waits that long past
        the query's cutoff once).
        """
        if self._notes_seen:
            return time.time() if cutoff_s is None else cutoff_s
        if cutoff_s is None:
            return time.time() - VISIBILITY_MARGIN_S
        time.sleep(max(0.0, cutoff_s + VISIBILITY_MARGIN_S - time.time()))
        return cutoff_s

    def reportLatestOffset(self) -> dict[str, Any] | None:
        if not self._behind_ms:
            return None
        return {"millisBehindLatest": behind_by_stream(self._behind_ms)}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        """The batch's shards with records, `shardsPerTask` to a task.

        A child shard never shares a batch with its parents (it joins the offset
        once they were seen to end), so a task's shards are read at once freely.
        """
        batches = [
            ShardBatch(shard, state.position, state.take, self._next_read_s.get(shard, 0.0))
            for shard, state in sorted(self._progress_of(end).items())
            if state.take is not None
        ]
        return shard_groups(batches, self.options.shards_per_task)

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        """Called on an executor: reads the task's shards at once (`read_group`)."""
        return read_group(partition, self._read_shard)

    def _read_shard(self, batch: ShardBatch) -> Iterator[pa.RecordBatch]:
        """One shard's records of the batch, exactly to its noted end if it has one."""
        shard, start, take = batch.shard, batch.start, batch.take
        options = self._stream_options[shard.stream_name]
        ends = self.ends_by_stream[shard.stream_name]
        client = make_client(options)
        arrow_schema = arrow_schema_of_rows()

        def arrow(chunks: Iterable[list[dict[str, Any]]]) -> Iterator[pa.RecordBatch]:
            for chunk in chunks:
                yield _to_arrow(chunk, shard, arrow_schema)

        not_before_s = batch.not_before_s
        known_end = ends.get(shard.shard_id, start, take)
        if known_end is not None:
            # Read before (a retry, a replay): exactly to where that read ended.
            if known_end.position != start:
                end = known_end.position
                yield from arrow(
                    read_range(
                        client,
                        options,
                        shard.shard_id,
                        start,
                        str(end.argument),
                        last_sub_sequence_number=end.sub_sequence_number,
                        not_before_s=not_before_s,
                    )
                )
            return
        take_read = take_reader(
            client, options, shard.shard_id, start, take, not_before_s=not_before_s
        )
        yield from arrow(take_read)
        assert take_read.end is not None  # set once its records were all read
        noted = ends.put(shard.shard_id, start, take, take_read.end)
        if noted != take_read.end:
            # Spark keeps the output of one attempt only: this one must match the note.
            raise KinesisSourceError(
                f"another attempt of this task read shard {shard} to {noted.position}, this "
                f"one to {take_read.end.position}: failing it, so that its retry reads exactly "
                "to the noted end"
            )

    def commit(self, end: dict[str, Any]) -> None:
        """Called on the driver once Spark has committed the batch ending at `end`.

        The next batch starts from `end`'s notes; the batch before needs none any
        more, so its notes are removed. (After a restart the first commit has no
        batch before it: that batch's notes stay behind.)
        """
        takes = _takes(self._progress_of(end))
        for shard, position, take in self._committed_takes - takes:
            self.ends_by_stream[shard.stream_name].remove(shard.shard_id, position, take)
        self._committed_takes = takes

    def _list_shards(self, *, fresh: bool = False) -> dict[str, list[Shard]]:
        """Each stream's shards, listed in parallel.

        Unless `fresh`, a listing younger than `shard_listing_interval_s` (the
        peers' describeShardInterval / shardFetchInterval, default 1 s) is
        reused: a trigger then makes no ListShards call, and a reshard is seen
        within the interval.
        """
        now = time.monotonic()
        if (
            not fresh
            and self._listing is not None
            and now - self._listing[0] < self.options.shard_listing_interval_s
        ):
            return self._listing[1]
        listings = self._in_parallel(
            lambda name: listed_shards(self.client, self._stream_options[name]),
            list(self.options.stream_names),
        )
        self._listing = (now, listings)
        return listings

    def _where_batches_ended(self, progress: StreamsProgress) -> StreamsProgress:
        """`progress` with every take replaced by the place it reached."""
        taken = {
            (shard, state.position, state.take): shard
            for shard, state in progress.items()
            if state.take is not None
        }
        found = {key: end for key, end in self._found_ends.items() if key in taken}

        missing: list[StreamShard] = []

        def end_of(key: tuple[StreamShard, Position, Take]) -> ShardEnd:
            shard, position, take = key
            ends = self.ends_by_stream[shard.stream_name]
            known_end = ends.get(shard.shard_id, position, take)
            if known_end is not None:
                return known_end
            missing.append(shard)
            if not self._warned_about_rereading:
                self._warned_about_rereading = True
                log.warning(
                    "no batch end noted under metadataPath=%s for %s; the driver reads the "
                    "batch again to find it (slower): set metadataPath to a directory the "
                    "driver and every executor share, or to an s3:// prefix",
                    ends.location,
                    shard,
                )
            # The task's last read of the shard is unknown: one period after now is safe.
            not_before_s = time.time() + self.options.min_fetch_period_s
            options = self._stream_options[shard.stream_name]
            return TakeRead(
                self.client, options, shard.shard_id, position, take, not_before_s=not_before_s
            ).read_to_end()

        unresolved = [key for key in taken if key not in found]
        found.update(self._in_parallel(end_of, unresolved))
        if unresolved:
            self._notes_seen = not missing
        self._found_ends = found
        self._ends_by_shard = {shard: end for (shard, _, _), end in found.items()}
        for (shard, _, _), end in found.items():
            self._next_read_s[shard] = max(self._next_read_s.get(shard, 0.0), end.next_read_s)
        resolved = dict(progress)
        for key, end in found.items():
            resolved[taken[key]] = ShardProgress(end.position, end.ended)
        return resolved

    def _peek(
        self, progress: StreamsProgress, shards: list[StreamShard], until_s: float
    ) -> dict[StreamShard, Peek]:
        def peek(shard: StreamShard) -> Peek:
            position = progress[shard].position
            end = self._ends_by_shard.get(shard)
            # A busy shard's last read saw what follows its end: no call, no wait for its pace.
            if end is not None and end.position == position:
                seen = peek_from_end(end, until_s)
                if seen is not None:
                    return seen
            saved_position, iterator = self._iterators.get(shard, (None, None))
            return peek_shard(
                self.client,
                self._stream_options[shard.stream_name],
                shard.shard_id,
                position,
                until_s=until_s,
                iterator=iterator if saved_position == position else None,
                not_before_s=self._next_read_s.get(shard, 0.0),
            )

        peeks = self._in_parallel(peek, shards)
        self._next_read_s.update({shard: peek.next_read_s for shard, peek in peeks.items()})
        self._iterators = {
            shard: (progress[shard].position, peek.iterator)
            for shard, peek in peeks.items()
            if peek.iterator
        }
        return peeks

    def _in_parallel(self, work: Callable[[K], T], items: list[K]) -> dict[K, T]:
        """`work` for every item (a shard each), in parallel: one slow shard holds up no other."""
        if not items:
            return {}
        with ThreadPoolExecutor(max_workers=min(32, len(items))) as pool:
            return dict(zip(items, pool.map(work, items), strict=True))


def behind_by_stream(behind_ms: Mapping[StreamShard, int]) -> dict[str, dict[str, int]]:
    """Each shard's millisBehindLatest, by stream then shard id, in order (for the progress)."""
    behind: dict[str, dict[str, int]] = {}
    for shard, millis in sorted(behind_ms.items()):
        behind.setdefault(shard.stream_name, {})[shard.shard_id] = millis
    return behind


def _takes(progress: StreamsProgress) -> frozenset[tuple[StreamShard, Position, Take]]:
    return frozenset(
        (shard, state.position, state.take)
        for shard, state in progress.items()
        if state.take is not None
    )


def arrow_schema_of_rows() -> pa.Schema:
    """SCHEMA in Arrow, for the tasks' record batches."""
    # Imported here, on the executors: the driver's planning process never needs
    # pyarrow, and its import is a third of a second of every query's start.
    from pyspark.sql.pandas.types import to_arrow_schema  # noqa: PLC0415

    return to_arrow_schema(SCHEMA, timezone="UTC")


def _to_arrow(
    records: list[dict[str, Any]], shard: StreamShard, schema: pa.Schema
) -> pa.RecordBatch:
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


def _describe(progress: StreamsProgress) -> str:
    return ", ".join(f"{shard}@{state.position}" for shard, state in sorted(progress.items()))
