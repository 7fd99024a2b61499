"""Reading one shard (takes, peeks, ranges), against a real LocalStack Kinesis."""

from __future__ import annotations

import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from kinesis_proxy import Behaviours
from pyspark.sql.streaming.datasource import ReadAllAvailable
from pyspark_kinesis.client import KinesisSourceError, call, make_client
from pyspark_kinesis.ends import ShardEnd
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after
from pyspark_kinesis.reading import Peek, TakeRead, peek_from_end, peek_shard, read_range
from pyspark_kinesis.shards import Take
from pyspark_kinesis.stream_reader import KinesisStreamReader

from testkit.clients import REGION
from testkit.streams import wait_active

pytestmark = pytest.mark.unit

SHARD_0 = "shardId-000000000000"
RESHARD_DEADLINE_S = 60.0


def options_for(endpoint: str, stream: str, **overrides: Any) -> KinesisOptions:
    return KinesisOptions(
        stream_name=stream,
        region=REGION,
        endpoint_url=endpoint,
        access_key_id="test",
        secret_access_key="test",
        **overrides,
    )


def put(kinesis_client: Any, stream: str, count: int, first: int = 0) -> list[str]:
    """Puts `count` records on one shard; returns their sequence numbers in order."""
    return [
        kinesis_client.put_record(StreamName=stream, Data=str(n).encode(), PartitionKey="k")[
            "SequenceNumber"
        ]
        for n in range(first, first + count)
    ]


def let_time_pass(since_s: float) -> None:
    """Returns once the clock is clearly past `since_s`, so later arrivals are later."""
    while time.time() < since_s + 0.01:
        time.sleep(0.002)


def shard_ids(kinesis_client: Any, stream: str) -> list[str]:
    return [shard["ShardId"] for shard in kinesis_client.list_shards(StreamName=stream)["Shards"]]


@pytest.fixture
def stream(stream_factory: Any) -> str:
    return str(stream_factory(1))


@pytest.fixture
def options(kinesis_endpoint: str, stream: str) -> KinesisOptions:
    return options_for(kinesis_endpoint, stream)


@pytest.fixture
def client(options: KinesisOptions) -> Any:
    return make_client(options)


def take(
    client: Any,
    options: KinesisOptions,
    start: Position = TRIM_HORIZON,
    limit: int | None = None,
    until_s: float | None = None,
    shard_id: str = SHARD_0,
) -> tuple[list[str], ShardEnd]:
    """What a batch taking `limit` records that arrived by `until_s` reads, and its end."""
    reader = TakeRead(client, options, shard_id, start, Take(until_s or time.time() + 60, limit))
    read = [record["SequenceNumber"] for records in reader for record in records]
    assert reader.end is not None
    return read, reader.end


def test_a_take_from_an_empty_shard_reads_nothing(client: Any, options: KinesisOptions) -> None:
    assert take(client, options) == ([], ShardEnd(TRIM_HORIZON, ended=False, records=0))


def test_a_take_stops_at_its_limit(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 10)
    read, end = take(client, options, limit=4)
    assert (read, end) == (sequence_numbers[:4], ShardEnd(after(sequence_numbers[3]), False, 4))


def test_a_limit_spans_several_fetches(
    kinesis_endpoint: str, kinesis_client: Any, stream: str
) -> None:
    options = options_for(kinesis_endpoint, stream, max_records_per_fetch=3)
    sequence_numbers = put(kinesis_client, stream, 10)
    assert take(make_client(options), options, limit=7)[0] == sequence_numbers[:7]


def test_a_take_without_limit_reads_to_the_shards_current_end(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 5)
    read, end = take(client, options)
    assert (read, end.position) == (sequence_numbers, after(sequence_numbers[-1]))


def test_a_take_continues_after_the_previous_end(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 6)
    read, _ = take(client, options, after(sequence_numbers[1]), limit=3)
    assert read == sequence_numbers[2:5]


def test_records_that_arrive_after_the_take_was_planned_are_left_for_the_next(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    early = put(kinesis_client, stream, 3)
    planned_s = time.time()
    let_time_pass(planned_s)
    late = put(kinesis_client, stream, 2, first=3)
    read, end = take(client, options, until_s=planned_s)
    assert (read, end.position) == (early, after(early[-1]))
    # The read saw the first record it left, so the next plan needs no look.
    assert end.next_arrival_s is not None
    assert end.next_arrival_s > planned_s
    later, last_end = take(client, options, end.position)
    assert later == late
    assert last_end.next_arrival_s is None  # nothing after the shard's current end


def test_an_end_that_saw_the_next_record_answers_for_a_peek() -> None:
    saw = ShardEnd(after("7"), False, 3, next_read_s=5.0, next_arrival_s=100.0)
    assert peek_from_end(saw, until_s=100.0) == Peek(
        has_records=True,
        first_arrival_s=100.0,
        ended=False,
        millis_behind_latest=0,
        iterator=None,
        next_read_s=5.0,
    )
    # Under Trigger.AvailableNow, a record after the cutoff means the shard is drained.
    assert peek_from_end(saw, until_s=99.0) == replace(
        peek_from_end(saw, until_s=100.0), has_records=False
    )
    assert peek_from_end(ShardEnd(after("7"), False, 3), until_s=100.0) is None


def test_reading_a_take_again_returns_the_same_records(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 4)
    planned_s = time.time()
    first = take(client, options, limit=10, until_s=planned_s)
    let_time_pass(planned_s)
    put(kinesis_client, stream, 4, first=4)
    assert take(client, options, limit=10, until_s=planned_s) == first


def test_a_take_planned_before_every_arrival_reads_nothing(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    planned_s = time.time() - 5
    put(kinesis_client, stream, 3)
    assert take(client, options, until_s=planned_s)[0] == []


def test_a_peek_sees_a_waiting_record_without_taking_it(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    first = put(kinesis_client, stream, 2)[0]
    peek = peek_shard(client, options, SHARD_0, TRIM_HORIZON, until_s=time.time())
    assert (peek.has_records, peek.ended, peek.iterator) == (True, False, None)
    assert take(client, options, limit=1)[0] == [first]


def test_a_peek_at_an_idle_shard_keeps_its_iterator_for_the_next_look(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    idle = peek_shard(client, options, SHARD_0, TRIM_HORIZON, until_s=time.time())
    assert (idle.has_records, idle.iterator is not None) == (False, True)
    put(kinesis_client, stream, 1)
    again = peek_shard(
        client, options, SHARD_0, TRIM_HORIZON, until_s=time.time(), iterator=idle.iterator
    )
    assert again.has_records


def test_a_peek_ignores_records_that_arrived_after_its_instant(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    planned_s = time.time() - 5
    put(kinesis_client, stream, 1)
    peek = peek_shard(client, options, SHARD_0, TRIM_HORIZON, until_s=planned_s)
    assert (peek.has_records, peek.first_arrival_s is not None) == (False, True)


def test_read_range_returns_exactly_the_records_an_earlier_take_read(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 8)
    _, end = take(client, options, limit=5)
    put(kinesis_client, stream, 4, first=8)
    batches = read_range(client, options, SHARD_0, TRIM_HORIZON, str(end.position.argument))
    assert [record["Data"] for batch in batches for record in batch] == [
        str(n).encode() for n in range(5)
    ]


def test_read_range_stops_at_a_fetch_boundary(
    kinesis_endpoint: str, kinesis_client: Any, stream: str
) -> None:
    options = options_for(kinesis_endpoint, stream, max_records_per_fetch=2)
    sequence_numbers = put(kinesis_client, stream, 6)
    batches = list(
        read_range(make_client(options), options, SHARD_0, TRIM_HORIZON, sequence_numbers[3])
    )
    assert [record["SequenceNumber"] for batch in batches for record in batch] == sequence_numbers[
        :4
    ]


def test_consecutive_ranges_neither_overlap_nor_skip(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    sequence_numbers = put(kinesis_client, stream, 7)
    first = read_range(client, options, SHARD_0, TRIM_HORIZON, sequence_numbers[2])
    second = read_range(client, options, SHARD_0, after(sequence_numbers[2]), sequence_numbers[6])
    read = [
        record["SequenceNumber"] for batches in (first, second) for b in batches for record in b
    ]
    assert read == sequence_numbers


def test_split_parent_is_ended_once_drained(
    client: Any, options: KinesisOptions, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 3)
    kinesis_client.split_shard(
        StreamName=stream, ShardToSplit=SHARD_0, NewStartingHashKey=str(2**127)
    )
    wait_active(kinesis_client, stream)
    _, end = take(client, options)
    assert (end.records, end.ended) == (3, True)
    drained = peek_shard(client, options, SHARD_0, end.position, until_s=time.time())
    assert (drained.has_records, drained.ended) == (False, True)


def test_merged_parents_are_ended_once_drained(
    kinesis_endpoint: str, kinesis_client: Any, stream_factory: Any
) -> None:
    stream = stream_factory(2)
    options = options_for(kinesis_endpoint, stream)
    first, second = sorted(shard_ids(kinesis_client, stream))
    kinesis_client.merge_shards(StreamName=stream, ShardToMerge=first, AdjacentShardToMerge=second)
    wait_active(kinesis_client, stream)
    client = make_client(options)
    ends = [take(client, options, shard_id=shard_id)[1] for shard_id in (first, second)]
    assert [end.ended for end in ends] == [True, True]


def test_missing_stream_error_names_stream_and_region(kinesis_endpoint: str) -> None:
    options = options_for(kinesis_endpoint, "no-such-stream")
    client = make_client(options)
    with pytest.raises(KinesisSourceError, match=r"'no-such-stream'.*'us-east-1'"):
        call(options, client.list_shards, StreamName=options.stream_name)


def test_unreachable_endpoint_error_names_the_endpoint() -> None:
    options = options_for("http://127.0.0.1:9", "events")
    client = make_client(options)
    with pytest.raises(KinesisSourceError, match=r"http://127\.0\.0\.1:9"):
        call(options, client.list_shards, StreamName=options.stream_name)


def test_idle_triggers_never_read_the_last_batch_again(
    kinesis_proxy: Any, kinesis_client: Any, stream: str, tmp_path: Path
) -> None:
    # No usable metadataPath: the driver must read the batch once to find its end.
    blocked = tmp_path / "a-file"
    blocked.write_text("")
    options = options_for(
        kinesis_proxy.url, stream, starting_position=TRIM_HORIZON, metadata_path=str(blocked)
    )
    reader = KinesisStreamReader(options)
    put(kinesis_client, stream, 5)
    start = end = reader.initialOffset()
    deadline = time.monotonic() + RESHARD_DEADLINE_S
    # Plan until every record is in a batch; each call reads the last batch to find its end.
    while (following := reader.latestOffset(end, ReadAllAvailable())) != end or end == start:
        assert time.monotonic() < deadline, "the records were never all planned"
        end = following
    read_while_planning = kinesis_proxy.events["records_read"]
    assert reader.latestOffset(end, ReadAllAvailable()) == end  # nothing new
    assert reader.latestOffset(end, ReadAllAvailable()) == end
    assert kinesis_proxy.events["records_read"] == read_while_planning  # nothing read again


def test_kms_throttling_is_waited_out(kinesis_proxy: Any, kinesis_client: Any, stream: str) -> None:
    put(kinesis_client, stream, 6)
    kinesis_proxy.behaviours = Behaviours(kms_throttling_probability=0.5)
    options = options_for(kinesis_proxy.url, stream, max_records_per_fetch=2)
    read, end = take(make_client(options), options)
    assert (len(read), end.records) == (6, 6)
    assert kinesis_proxy.events["kms_throttled"] > 0


def test_server_errors_and_dropped_connections_are_retried_past_botocores_attempts(
    kinesis_proxy: Any, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 10)
    # Botocore's own 5 attempts fail for 8% of calls at this rate: only a longer retry reads all.
    kinesis_proxy.behaviours = Behaviours(
        server_error_probability=0.2,
        unavailable_probability=0.2,
        dropped_connection_probability=0.2,
        faulty_operations=frozenset({"GetRecords", "GetShardIterator"}),
    )
    options = options_for(kinesis_proxy.url, stream, max_records_per_fetch=1)
    read, end = take(make_client(options), options)
    assert (len(read), len(set(read)), end.records) == (10, 10, 10)
    faults = ("server_errors", "unavailable", "dropped_connections")
    assert all(kinesis_proxy.events[fault] > 0 for fault in faults)


def test_a_shard_unavailable_past_the_read_retry_deadline_fails_naming_it(
    kinesis_proxy: Any, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 1)
    kinesis_proxy.behaviours = Behaviours(
        unavailable_probability=1.0, faulty_operations=frozenset({"GetRecords"})
    )
    options = KinesisOptions.parse(
        {
            "streamName": stream,
            "endpointUrl": kinesis_proxy.url,
            "region": REGION,
            "readRetryDeadline": "1s",
        }
    )
    with pytest.raises(KinesisSourceError) as failure:
        take(make_client(options), options)
    message = str(failure.value)
    assert SHARD_0 in message
    assert stream in message
    assert "GetRecords" in message
    assert "readRetryDeadline" in message
    assert "ServiceUnavailable" in message


def test_a_peek_looks_past_empty_pages_while_records_wait(
    kinesis_proxy: Any, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 1)
    kinesis_proxy.behaviours = Behaviours(empty_pages_first=3)
    options = options_for(kinesis_proxy.url, stream)
    peek = peek_shard(make_client(options), options, SHARD_0, TRIM_HORIZON, until_s=time.time())
    assert peek.has_records
    assert kinesis_proxy.events["empty_pages"] == 3


def test_a_peek_then_a_take_stay_inside_aws_read_limits(
    kinesis_proxy: Any, kinesis_client: Any, stream: str
) -> None:
    put(kinesis_client, stream, 12)
    kinesis_proxy.behaviours = Behaviours.aws()
    # One record per call: the take makes a dozen GetRecords calls in a row.
    options = options_for(kinesis_proxy.url, stream, max_records_per_fetch=1)
    client = make_client(options)
    peek = peek_shard(client, options, SHARD_0, TRIM_HORIZON, until_s=time.time())
    reader = TakeRead(
        client, options, SHARD_0, TRIM_HORIZON, Take(time.time()), not_before_s=peek.next_read_s
    )
    assert sum(len(records) for records in reader) == 12
    assert kinesis_proxy.events["throttled_reads"] == 0
