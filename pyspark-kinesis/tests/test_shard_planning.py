"""The driver's per-shard planning as plain functions (no Spark, no Kinesis), and `stop()`."""

from __future__ import annotations

import pickle

import pytest
from pyspark_kinesis import planning
from pyspark_kinesis.ends import ShardEnd
from pyspark_kinesis.options import KinesisOptions
from pyspark_kinesis.positions import TRIM_HORIZON, after
from pyspark_kinesis.reading import Peek
from pyspark_kinesis.shards import ShardProgress, StreamShard, Take
from pyspark_kinesis.stream_reader import KinesisStreamReader

pytestmark = pytest.mark.unit

NOW = 1_704_067_200.0
MARGIN_S = planning.VISIBILITY_MARGIN_S
ORDERS_0, ORDERS_1 = StreamShard("orders", "shardId-0"), StreamShard("orders", "shardId-1")
PAYMENTS_0 = StreamShard("payments", "shardId-0")


def looked(first_arrival_s: float | None, *, until_s: float = NOW, ended: bool = False) -> Peek:
    """A look that found a first record that arrived at `first_arrival_s` (None: none)."""
    has_records = first_arrival_s is not None and first_arrival_s <= until_s
    return Peek(has_records, first_arrival_s, ended, millis_behind_latest=0, iterator=None)


# The planning instant.


def test_with_notes_seen_a_batch_takes_what_arrived_until_now() -> None:
    assert planning.planning_instant(NOW, None, notes_seen=True) == (NOW, 0.0)


def test_without_notes_a_batch_leaves_the_last_records_to_the_visibility_margin() -> None:
    assert planning.planning_instant(NOW, None, notes_seen=False) == (NOW - MARGIN_S, 0.0)


def test_available_now_plans_until_its_cutoff_and_waits_out_the_margin_without_notes() -> None:
    cutoff = NOW - 0.5
    assert planning.planning_instant(NOW, cutoff, notes_seen=True) == (cutoff, 0.0)
    assert planning.planning_instant(NOW, cutoff, notes_seen=False) == (cutoff, MARGIN_S - 0.5)
    # Once the margin has passed, there is nothing left to wait for.
    later = cutoff + MARGIN_S + 1
    assert planning.planning_instant(later, cutoff, notes_seen=False) == (cutoff, 0.0)


# Which shards need a look.


def test_the_shards_to_look_at_are_those_not_ended_in_order() -> None:
    progress = {
        PAYMENTS_0: ShardProgress(TRIM_HORIZON),
        ORDERS_1: ShardProgress(after("9"), ended=True),
        ORDERS_0: ShardProgress(after("7")),
    }
    assert planning.shards_to_look_at(progress) == [ORDERS_0, PAYMENTS_0]


def test_a_shard_still_where_its_read_saw_the_next_record_needs_no_look() -> None:
    progress = {ORDERS_0: ShardProgress(after("7")), ORDERS_1: ShardProgress(after("3"))}
    ends = {
        ORDERS_0: ShardEnd(after("7"), False, 3, next_read_s=5.0, next_arrival_s=NOW - 1),
        # Its read saw no record after its end: only a look can tell.
        ORDERS_1: ShardEnd(after("3"), False, 3),
    }
    spared = planning.peeks_spared(progress, [ORDERS_0, ORDERS_1], ends, until_s=NOW)
    assert spared == {
        ORDERS_0: Peek(True, NOW - 1, False, 0, iterator=None, next_read_s=5.0),
    }


def test_a_read_ending_elsewhere_than_the_shard_stands_spares_no_look() -> None:
    progress = {ORDERS_0: ShardProgress(after("8"))}
    ends = {ORDERS_0: ShardEnd(after("7"), False, 3, next_arrival_s=NOW - 1)}
    assert planning.peeks_spared(progress, [ORDERS_0], ends, until_s=NOW) == {}


def test_a_shard_whose_look_found_its_end_is_marked_ended() -> None:
    progress = {ORDERS_0: ShardProgress(after("7")), ORDERS_1: ShardProgress(after("3"))}
    peeks = {ORDERS_0: looked(None, ended=True), ORDERS_1: looked(NOW - 1)}
    assert planning.with_ended_shards(progress, peeks) == {
        ORDERS_0: ShardProgress(after("7"), ended=True),
        ORDERS_1: ShardProgress(after("3")),
    }


# The takes.


def test_every_shard_with_records_takes_until_the_instant_at_most_the_cap() -> None:
    peeks = {ORDERS_0: looked(NOW - 5), ORDERS_1: looked(None), PAYMENTS_0: looked(NOW - 1)}
    takes, served = planning.takes_from_peeks(
        peeks, budget=None, per_shard_cap=100, last_served=None, until_s=NOW, fetch_window_s=None
    )
    assert takes == {ORDERS_0: Take(NOW, 100), PAYMENTS_0: Take(NOW, 100)}
    assert served is None


def test_a_record_that_arrived_after_the_instant_gives_no_take() -> None:
    peeks = {ORDERS_0: looked(NOW + 1)}
    takes, _ = planning.takes_from_peeks(
        peeks, budget=None, per_shard_cap=100, last_served=None, until_s=NOW, fetch_window_s=None
    )
    assert takes == {}


def test_the_budget_is_shared_and_its_remainder_goes_round() -> None:
    peeks = {ORDERS_0: looked(NOW - 5), ORDERS_1: looked(NOW - 5), PAYMENTS_0: looked(NOW - 5)}
    takes, served = planning.takes_from_peeks(
        peeks, budget=7, per_shard_cap=100, last_served=ORDERS_0, until_s=NOW, fetch_window_s=None
    )
    # 7 over 3 shards: 2 each, the one left over to the first shard after ORDERS_0.
    assert takes == {ORDERS_0: Take(NOW, 2), ORDERS_1: Take(NOW, 3), PAYMENTS_0: Take(NOW, 2)}
    assert served == ORDERS_1


def test_a_shard_whose_share_is_nothing_takes_nothing_this_batch() -> None:
    peeks = {ORDERS_0: looked(NOW - 5), ORDERS_1: looked(NOW - 5)}
    takes, served = planning.takes_from_peeks(
        peeks, budget=1, per_shard_cap=100, last_served=None, until_s=NOW, fetch_window_s=None
    )
    assert (takes, served) == ({ORDERS_0: Take(NOW, 1)}, ORDERS_0)


def test_max_fetch_duration_ends_a_take_that_long_after_its_first_record() -> None:
    peeks = {ORDERS_0: looked(NOW - 10), ORDERS_1: looked(NOW - 1)}
    takes, _ = planning.takes_from_peeks(
        peeks, budget=None, per_shard_cap=100, last_served=None, until_s=NOW, fetch_window_s=3.0
    )
    # ORDERS_0's window closes before the instant; ORDERS_1's after it, so the instant holds.
    assert takes == {ORDERS_0: Take(NOW - 7, 100), ORDERS_1: Take(NOW, 100)}


def test_takes_join_the_progress_and_name_the_batch() -> None:
    progress = {ORDERS_0: ShardProgress(after("7")), ORDERS_1: ShardProgress(after("3"))}
    taking = planning.with_takes(progress, {ORDERS_1: Take(NOW, 5)})
    assert taking == {
        ORDERS_0: ShardProgress(after("7")),
        ORDERS_1: ShardProgress(after("3"), take=Take(NOW, 5)),
    }
    assert planning.planned_takes(taking) == {(ORDERS_1, after("3"), Take(NOW, 5))}


# stop(): the driver's state released, twice if need be.


def test_stop_releases_the_driver_state_and_may_be_called_twice() -> None:
    keys = {"awsAccessKeyId": "test", "awsSecretKey": "test"}
    options = KinesisOptions.parse({"streamName": "orders", "region": "us-east-1", **keys})
    reader = KinesisStreamReader(options)
    assert reader.client is not None
    reader._listing = (NOW, {"orders": []})
    reader._next_read_s = {ORDERS_0: NOW}
    reader.stop()
    assert (reader._client, reader._listing, reader._next_read_s) == (None, None, {})
    reader.stop()
    # What is left is what the reader carries to the executors: it still pickles.
    assert pickle.loads(pickle.dumps(reader)).options == options
