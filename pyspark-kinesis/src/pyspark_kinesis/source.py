"""The Spark-facing classes: the data source, its stream reader and the shard partition.

How a batch replays exactly
---------------------------
A Kinesis batch's end is not known before the records are read, yet Spark
writes a batch's end offset to its log *before* running the batch, and on a
restart re-runs an unfinished batch from the logged (start, end). So the driver
finds each batch's end by reading ahead (`latestOffset` -> `plan_shard`): per
shard, the sequence number of the last record the batch takes. The offset holds
real sequence numbers, and a task reads exactly the records in
(start, end] of its shard. A replay returns the very same records, with no side
files beside the checkpoint, on any cluster.

The price: each record is fetched twice, once by the driver (which only notes
sequence numbers and never ships data) and once by a task. Against Kinesis'
per-shard read limits (5 GetRecords/s, 2 MB/s) that halves the headroom a
single query has; the AWS connector avoids it by storing each batch's real end
per shard under the checkpoint, at the cost of a shared metadata store. Use
`maxFetchRate`/`minFetchPeriod` when several consumers share a busy shard.

Other limits: `maxRecordsPerTrigger` counts Kinesis records, before KPL
de-aggregation. `LATEST` is the arrival time at which the query first plans,
so a record whose approximate arrival time is skewed across that instant may
fall either side; and as Spark logs no start offset for the first batch, a
query that dies before its first batch commits pins a new instant on restart
(its sink never committed that batch, so nothing is doubled or lost in it).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow as pa
from pyspark.sql.datasource import DataSource, DataSourceStreamReader, InputPartition
from pyspark.sql.pandas.types import to_arrow_schema
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
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after
from pyspark_kinesis.reading import ShardPlan, plan_shard, read_range
from pyspark_kinesis.shards import (
    Progress,
    Shard,
    ShardProgress,
    initial_progress,
    progress_from_offset,
    progress_to_offset,
    with_new_shards,
)

log = logging.getLogger(__name__)

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


class KinesisDataSource(DataSource):
    """`spark.readStream.format("kinesis")`: records of one Kinesis stream.

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
        self.kinesis_options = KinesisOptions.parse(options)

    @classmethod
    def name(cls) -> str:
        return "kinesis"

    def schema(self) -> StructType:
        return SCHEMA

    def streamReader(self, schema: StructType) -> KinesisStreamReader:
        return KinesisStreamReader(self.kinesis_options)


class ShardRange(InputPartition):
    """The records of one shard after `start`, up to and including `last_sequence_number`."""

    def __init__(self, shard_id: str, start: Position, last_sequence_number: str) -> None:
        super().__init__(shard_id)
        self.shard_id = shard_id
        self.start = start
        self.last_sequence_number = last_sequence_number


class KinesisStreamReader(DataSourceStreamReader, SupportsTriggerAvailableNow):
    """Plans batches on the driver as per-shard sequence ranges; tasks read one shard each."""

    def __init__(self, options: KinesisOptions) -> None:
        self.options = options
        self._client: Any = None
        self._available_now: tuple[float, frozenset[str]] | None = None
        self._initial_offset: dict[str, Any] | None = None
        self._behind_ms: dict[str, int] = {}
        # shard id -> (position, iterator at that position), from the last plan.
        self._iterators: dict[str, tuple[Position, str]] = {}

    def __getstate__(self) -> dict[str, Any]:
        # Spark pickles the reader to run `read` on executors: the client stays behind.
        state = dict(self.__dict__)
        state["_client"] = None
        state["_iterators"] = {}
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
        progress = with_new_shards(progress_from_offset(start), self._list_shards(), eligible)
        readable = sorted(shard_id for shard_id, state in progress.items() if not state.ended)
        budget = limit.max_rows if isinstance(limit, ReadMaxRows) else None
        plans = self._plan(progress, readable, budget, cutoff_s)
        self._behind_ms = {plan.shard_id: plan.millis_behind_latest for plan in plans.values()}
        self._iterators = {}
        for shard_id, plan in plans.items():
            position = after(plan.last_sequence_number) if plan.last_sequence_number else None
            progress[shard_id] = ShardProgress(position or progress[shard_id].position, plan.ended)
            if plan.next_iterator:
                self._iterators[shard_id] = (progress[shard_id].position, plan.next_iterator)
        return progress_to_offset(progress)

    def reportLatestOffset(self) -> dict[str, Any] | None:
        if not self._behind_ms:
            return None
        return {"millisBehindLatest": dict(sorted(self._behind_ms.items()))}

    def partitions(self, start: dict[str, Any], end: dict[str, Any]) -> Sequence[InputPartition]:
        before = progress_from_offset(start)
        ranges = []
        for shard_id, state in sorted(progress_from_offset(end).items()):
            first = before[shard_id].position if shard_id in before else TRIM_HORIZON
            if state.position != first and state.position.kind == "AFTER_SEQUENCE_NUMBER":
                ranges.append(ShardRange(shard_id, first, str(state.position.argument)))
        return ranges

    def read(self, partition: InputPartition) -> Iterator[pa.RecordBatch]:
        assert isinstance(partition, ShardRange)
        client = make_client(self.options)
        arrow_schema = to_arrow_schema(SCHEMA, timezone="UTC")
        for records in read_range(
            client,
            self.options,
            partition.shard_id,
            partition.start,
            partition.last_sequence_number,
        ):
            yield _to_arrow(records, self.options.stream_name, partition.shard_id, arrow_schema)

    def _list_shards(self) -> list[Shard]:
        shards: list[Shard] = []
        request: dict[str, Any] = {"StreamName": self.options.stream_name}
        while True:
            answer = call(self.options, self.client.list_shards, **request)
            shards.extend(Shard.from_listing(entry) for entry in answer["Shards"])
            if not answer.get("NextToken"):
                return shards
            request = {"NextToken": answer["NextToken"]}

    def _plan(
        self, progress: Progress, shard_ids: list[str], budget: int | None, cutoff_s: float | None
    ) -> dict[str, ShardPlan]:
        """Plans every readable shard in parallel, sharing a row budget fairly between them."""
        if not shard_ids:
            return {}
        shares = _split(budget, shard_ids, self.options.max_records_per_shard)

        def plan(shard_id: str) -> ShardPlan:
            position = progress[shard_id].position
            saved_position, iterator = self._iterators.get(shard_id, (None, None))
            return plan_shard(
                self.client,
                self.options,
                shard_id,
                position,
                shares[shard_id],
                cutoff_s=cutoff_s,
                iterator=iterator if saved_position == position else None,
            )

        with ThreadPoolExecutor(max_workers=min(32, len(shard_ids))) as pool:
            return {found.shard_id: found for found in pool.map(plan, shard_ids)}


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
    rows = len(columns["data"])
    columns["streamName"] = [stream_name] * rows
    columns["shardId"] = [shard_id] * rows
    return pa.RecordBatch.from_pydict(columns, schema=schema)


def _describe(progress: Progress) -> str:
    return ", ".join(f"{shard_id}@{state.position}" for shard_id, state in sorted(progress.items()))
