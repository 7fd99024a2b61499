"""Which shards a query reads as the stream is split and merged under it (pure functions)."""

from __future__ import annotations

import json

import pytest
from pyspark_kinesis.positions import TRIM_HORIZON, Position, after, at_timestamp
from pyspark_kinesis.shards import (
    Shard,
    ShardProgress,
    Take,
    initial_progress,
    progress_from_offset,
    progress_to_offset,
    with_new_shards,
)

pytestmark = pytest.mark.unit

QUERY_START = 1_704_067_200.25
LATEST = Position("LATEST")
# P was split into A and B; A and B were merged into M.
P = Shard("P", (), closed=True)
A = Shard("A", ("P",), closed=True)
B = Shard("B", ("P",), closed=True)
M = Shard("M", ("A", "B"), closed=False)
HISTORY = [P, A, B, M]


def open_(shard: Shard) -> Shard:
    return Shard(shard.shard_id, shard.parents, closed=False)


def reading(*shard_ids: str) -> dict[str, ShardProgress]:
    return {shard_id: ShardProgress(after("10")) for shard_id in shard_ids}


def ended(*shard_ids: str) -> dict[str, ShardProgress]:
    return {shard_id: ShardProgress(after("99"), ended=True) for shard_id in shard_ids}


def test_shard_from_listing() -> None:
    entry = {
        "ShardId": "shardId-000000000003",
        "ParentShardId": "shardId-000000000001",
        "AdjacentParentShardId": "shardId-000000000002",
        "SequenceNumberRange": {"StartingSequenceNumber": "1", "EndingSequenceNumber": "9"},
    }
    assert Shard.from_listing(entry) == Shard(
        "shardId-000000000003", ("shardId-000000000001", "shardId-000000000002"), closed=True
    )


def test_open_root_shard_from_listing() -> None:
    entry = {"ShardId": "s0", "SequenceNumberRange": {"StartingSequenceNumber": "1"}}
    assert Shard.from_listing(entry) == Shard("s0", (), closed=False)


def test_trim_horizon_starts_at_the_roots_only() -> None:
    progress = initial_progress(HISTORY, TRIM_HORIZON, {}, QUERY_START)
    assert progress == {"P": ShardProgress(TRIM_HORIZON)}


def test_trim_horizon_treats_a_shard_whose_parent_aged_out_as_a_root() -> None:
    progress = initial_progress([A, B, M], TRIM_HORIZON, {}, QUERY_START)
    assert set(progress) == {"A", "B"}


def test_latest_starts_at_open_shards_pinned_to_the_query_start() -> None:
    progress = initial_progress(HISTORY, LATEST, {}, QUERY_START)
    assert progress == {"M": ShardProgress(at_timestamp(QUERY_START))}


def test_named_shard_replaces_its_ancestors() -> None:
    named = {"A": Position("AT_SEQUENCE_NUMBER", "42")}
    progress = initial_progress([P, open_(A), open_(B)], TRIM_HORIZON, named, QUERY_START)
    assert progress == {"A": ShardProgress(Position("AT_SEQUENCE_NUMBER", "42"))}


def test_named_latest_shard_is_pinned_to_the_query_start() -> None:
    progress = initial_progress([P], TRIM_HORIZON, {"P": LATEST}, QUERY_START)
    assert progress == {"P": ShardProgress(at_timestamp(QUERY_START))}


def test_named_shard_missing_from_the_listing_is_ignored() -> None:
    progress = initial_progress([P], TRIM_HORIZON, {"gone": after("1")}, QUERY_START)
    assert set(progress) == {"P"}


def test_sibling_of_a_named_shard_is_read_from_the_start() -> None:
    # Naming A skips P; B, P's other child, must still be read.
    listing = [P, open_(A), open_(B)]
    progress = initial_progress(listing, TRIM_HORIZON, {"A": after("42")}, QUERY_START)
    assert with_new_shards(progress, listing)["B"] == ShardProgress(TRIM_HORIZON)


def test_cousin_and_sibling_of_a_named_grandchild_are_read() -> None:
    # P -> A, B; then A -> A1, A2. Naming A1 skips P and A, not B nor A2.
    listing = [P, A, open_(B), Shard("A1", ("A",), False), Shard("A2", ("A",), False)]
    progress = initial_progress(listing, TRIM_HORIZON, {"A1": after("42")}, QUERY_START)
    assert set(with_new_shards(progress, listing)) == {"A1", "A2", "B"}


def test_named_parent_still_blocks_the_sibling_of_its_named_child() -> None:
    listing = [P, open_(A), open_(B)]
    named = {"P": after("1"), "A": after("42")}
    progress = initial_progress(listing, TRIM_HORIZON, named, QUERY_START)
    assert set(with_new_shards(progress, listing)) == {"P", "A"}


def test_split_children_wait_for_the_parent_to_end() -> None:
    listing = [P, open_(A), open_(B)]
    assert with_new_shards(reading("P"), listing) == reading("P")


def test_split_children_join_once_the_parent_ended() -> None:
    progress = with_new_shards(ended("P"), [P, open_(A), open_(B)])
    assert progress == {"A": ShardProgress(TRIM_HORIZON), "B": ShardProgress(TRIM_HORIZON)}


def test_merge_child_waits_for_both_parents() -> None:
    progress = {**ended("A"), **reading("B")}
    assert with_new_shards(progress, HISTORY) == progress


def test_merge_child_joins_once_both_parents_ended() -> None:
    assert with_new_shards(ended("A", "B"), HISTORY) == {"M": ShardProgress(TRIM_HORIZON)}


def test_ended_parent_stays_while_a_child_is_not_tracked() -> None:
    progress = with_new_shards(ended("P"), [P, open_(A), open_(B)], eligible=frozenset({"A"}))
    assert set(progress) == {"P", "A"}


def test_ended_shard_without_children_stays() -> None:
    assert with_new_shards(ended("P"), [P]) == ended("P")


def test_dropped_parent_still_listed_is_not_read_again() -> None:
    assert with_new_shards(reading("A", "B"), HISTORY) == reading("A", "B")


def test_dropped_grandparent_is_not_read_again() -> None:
    assert with_new_shards(reading("M"), HISTORY) == reading("M")


def test_grandparent_of_a_second_split_is_not_read_again() -> None:
    # P -> A, B; then A -> A1, A2.
    listing = [
        P,
        Shard("A", ("P",), True),
        B,
        Shard("A1", ("A",), False),
        Shard("A2", ("A",), False),
    ]
    tracked = reading("B", "A1", "A2")
    assert with_new_shards(tracked, listing) == tracked


def test_eligible_limits_new_shards() -> None:
    progress = with_new_shards(ended("P"), [P, open_(A), open_(B)], eligible=frozenset({"P", "B"}))
    assert "A" not in progress
    assert "B" in progress


def test_parent_that_aged_out_does_not_block_its_child() -> None:
    assert with_new_shards({}, [M]) == {"M": ShardProgress(TRIM_HORIZON)}


def test_tracked_parent_that_aged_out_still_blocks_its_child() -> None:
    # Still tracked means not yet read to its end: its records come first.
    assert with_new_shards(reading("A", "B"), [M]) == reading("A", "B")


def test_offset_round_trips_through_json() -> None:
    progress = {
        "shardId-2": ShardProgress(after("4960"), ended=True),
        "shardId-1": ShardProgress(at_timestamp(QUERY_START)),
        "shardId-3": ShardProgress(TRIM_HORIZON),
        "shardId-4": ShardProgress(after("4961"), take=Take(QUERY_START + 0.125, limit=25)),
        "shardId-5": ShardProgress(TRIM_HORIZON, take=Take(QUERY_START)),
    }
    text = json.dumps(progress_to_offset(progress))
    assert progress_from_offset(json.loads(text)) == progress


def test_offset_lists_shards_in_order() -> None:
    offset = progress_to_offset({"b": ShardProgress(TRIM_HORIZON), "a": ShardProgress(after("1"))})
    assert offset == {
        "shards": {
            "a": {"position": "AFTER_SEQUENCE_NUMBER:1", "ended": False},
            "b": {"position": "TRIM_HORIZON", "ended": False},
        }
    }
