"""Fan-out's logic that needs no Kinesis: its options, starting positions and a subscription's
buffer (which records a task's start finds there, and what taking them leaves)."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from pyspark_kinesis.options import KinesisOptionError, KinesisOptions
from pyspark_kinesis.positions import Position, after, at_timestamp, parse_position
from pyspark_kinesis.reading import ROWS
from pyspark_kinesis.subscriptions import Subscription, starting_position

pytestmark = pytest.mark.unit


def options(**given: str) -> KinesisOptions:
    return KinesisOptions.parse({"streamName": "events", "region": "us-east-1", **given})


@pytest.mark.parametrize(
    "switch",
    [
        {"consumerMode": "efo", "consumerName": "reader"},
        {"consumerMode": "EFO", "consumerName": "reader"},
        {"kinesis.consumerType": "SubscribeToShard", "kinesis.consumerName": "reader"},
        {"kinesis.consumerType": "subscribetoshard", "consumerName": "reader"},
    ],
)
def test_either_peers_switch_turns_fan_out_on(switch: dict[str, str]) -> None:
    parsed = options(**switch)
    assert parsed.fan_out
    assert parsed.consumer_name == "reader"


def test_polling_is_the_default() -> None:
    assert not options().fan_out
    assert not options(consumerName="reader").fan_out


def test_fan_out_without_a_consumer_name_is_refused_naming_the_option() -> None:
    with pytest.raises(KinesisOptionError, match="consumerName") as refused:
        options(consumerMode="efo")
    assert "Databricks names the consumer after the query's id" in str(refused.value)
    # The README says why in the same words.
    readme = " ".join((Path(__file__).parents[1] / "README.md").read_text().split())
    assert str(refused.value) in readme


def test_require_consumer_deregistration_is_off_by_default() -> None:
    assert not options(consumerMode="efo", consumerName="reader").require_consumer_deregistration


@pytest.mark.parametrize(
    ("name", "value"), [("consumerMode", "push"), ("kinesis.consumerType", "FanOut")]
)
def test_another_consumer_mode_is_refused_with_the_accepted_ones(name: str, value: str) -> None:
    with pytest.raises(KinesisOptionError, match="polling or efo"):
        options(**{name: value})


@pytest.mark.parametrize(
    ("text", "size"), [("512kb", 512 * 1024), ("16MB", 16 * 1024**2), ("1000", 1000)]
)
def test_fetch_buffer_size_takes_units(text: str, size: int) -> None:
    assert options(fetchBufferSize=text).fetch_buffer_bytes == size


@pytest.mark.parametrize("text", ["0", "lots", "-1mb"])
def test_a_bad_fetch_buffer_size_is_refused(text: str) -> None:
    with pytest.raises(KinesisOptionError, match="fetchBufferSize"):
        options(fetchBufferSize=text)


@pytest.mark.parametrize(
    ("position", "expected"),
    [
        ("TRIM_HORIZON", {"Type": "TRIM_HORIZON"}),
        ("AT_SEQUENCE_NUMBER:7", {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "7"}),
        ("AFTER_SEQUENCE_NUMBER:7", {"Type": "AFTER_SEQUENCE_NUMBER", "SequenceNumber": "7"}),
        # Inside an aggregate: the aggregate again, its user records read skipped.
        ("AFTER_SEQUENCE_NUMBER:7/2", {"Type": "AT_SEQUENCE_NUMBER", "SequenceNumber": "7"}),
    ],
)
def test_starting_positions_are_get_shard_iterators_twins(
    position: str, expected: dict[str, Any]
) -> None:
    assert starting_position(parse_position(position)) == expected


def test_an_at_timestamp_start_is_a_timestamp() -> None:
    assert starting_position(at_timestamp(1.5)) == {
        "Type": "AT_TIMESTAMP",
        "Timestamp": datetime.fromtimestamp(1.5, tz=UTC),
    }


def record(sequence_number: int, arrival_s: float = 0.0) -> dict[str, Any]:
    return {
        "SequenceNumber": str(sequence_number),
        "ApproximateArrivalTimestamp": arrival_s,
        "Data": b"x",
        "PartitionKey": "k",
    }


def holding(*records: dict[str, Any], origin: Position) -> Subscription:
    """A subscription (never opened) whose buffer holds `records` after `origin`."""
    subscription = Subscription(options(consumerMode="efo", consumerName="r"), "shard-0")
    subscription.origin = origin
    assert subscription._hold({"Records": list(records)}, generation=0)
    return subscription


def numbers(subscription: Subscription) -> list[str]:
    return [r["SequenceNumber"] for r in subscription.head(100)]


def test_a_start_at_the_origin_takes_the_whole_buffer() -> None:
    subscription = holding(record(1), record(2), origin=Position("TRIM_HORIZON"))
    assert subscription.holds(Position("TRIM_HORIZON"))
    assert numbers(subscription) == ["1", "2"]


def test_a_start_after_a_buffered_record_drops_it_and_those_before() -> None:
    subscription = holding(record(1), record(2), record(3), origin=Position("TRIM_HORIZON"))
    assert subscription.holds(after("2"))
    assert numbers(subscription) == ["3"]
    assert subscription.origin == after("2")


def test_a_start_inside_a_buffered_aggregate_keeps_it() -> None:
    subscription = holding(record(1), record(2), origin=Position("TRIM_HORIZON"))
    assert subscription.holds(after("1", 0))
    assert numbers(subscription) == ["1", "2"]


@pytest.mark.parametrize("start", [after("9"), Position("LATEST"), at_timestamp(1.0)])
def test_a_start_the_buffer_does_not_hold_needs_a_new_subscription(start: Position) -> None:
    subscription = holding(record(1), origin=Position("TRIM_HORIZON"))
    assert not subscription.holds(start)


def test_taking_records_moves_the_origin_and_frees_the_buffer() -> None:
    subscription = holding(record(1), record(2), record(3), origin=Position("TRIM_HORIZON"))
    kept = subscription.head(2)
    subscription.take(kept, after("2"))
    assert subscription.origin == after("2")
    assert numbers(subscription) == ["3"]
    assert subscription.holds(after("2"))


def test_an_aggregate_cut_by_a_take_stays_with_its_rows_taken_skipped() -> None:
    subscription = holding(record(1), origin=Position("TRIM_HORIZON"))
    kept = subscription.head(1)
    subscription.take(kept, after("1", 0))
    assert numbers(subscription) == ["1"]
    assert subscription.head(1)[0][ROWS] == []  # its one user record was taken


def test_records_before_an_at_timestamp_start_are_dropped() -> None:
    subscription = holding(record(1, 9.5), record(2, 10.5), origin=at_timestamp(10.0))
    assert numbers(subscription) == ["2"]


def test_a_full_buffer_holds_no_more_for_a_replaced_subscription() -> None:
    subscription = Subscription(
        options(consumerMode="efo", consumerName="r", fetchBufferSize="1"), "shard-0"
    )
    assert subscription._hold({"Records": [record(1)]}, generation=0)
    subscription.close()  # a newer generation: the full buffer's reader gives up
    assert not subscription._hold({"Records": [record(2)]}, generation=0)


def test_only_a_live_subscription_says_its_shard_is_caught_up() -> None:
    subscription = holding(origin=Position("TRIM_HORIZON"))  # one empty event, behind 0
    subscription.running = True
    assert subscription.caught_up(until_s=0.0)
    assert not subscription.caught_up(until_s=time.time() + 60)  # too soon after the instant
    subscription.running = False  # expired: records may have come since its last event
    assert not subscription.caught_up(until_s=0.0)
