"""The fault suite's order check itself: it must fail when order is broken."""

from __future__ import annotations

import pytest
from key_order import keys_over_several_batches, order_violations

# A unit test beside the suite that uses the check: it needs no stack.
pytestmark = pytest.mark.unit

STREAM_ORDER = {
    "key-1": [("shard-0", "1"), ("shard-0", "3"), ("shard-2", "7")],
    "key-2": [("shard-1", "2"), ("shard-1", "4")],
}


def test_batches_in_stream_order_are_kept():
    batch_of = {
        ("shard-0", "1"): 0,
        ("shard-0", "3"): 0,
        ("shard-2", "7"): 2,
        ("shard-1", "2"): 1,
        ("shard-1", "4"): 1,
    }
    assert order_violations(STREAM_ORDER, batch_of) == []


def test_a_record_in_an_earlier_batch_than_one_before_it_names_both():
    # A child shard read before its parent was drained.
    batch_of = {("shard-0", "1"): 0, ("shard-0", "3"): 3, ("shard-2", "7"): 2}
    assert order_violations(STREAM_ORDER, batch_of) == [
        "key 'key-1': shard-2 #7 is in batch 2, but shard-0 #3 before it is in batch 3"
    ]


def test_records_not_in_the_sink_are_skipped():
    # The resend ("shard-1", "4") was dropped; the dead letter ("shard-0", "3") is elsewhere.
    batch_of = {("shard-0", "1"): 0, ("shard-2", "7"): 1, ("shard-1", "2"): 5}
    assert order_violations(STREAM_ORDER, batch_of) == []


def test_keys_over_several_batches_counts_only_keys_split_between_batches():
    batch_of = {("shard-0", "1"): 0, ("shard-2", "7"): 2, ("shard-1", "2"): 1, ("shard-1", "4"): 1}
    assert keys_over_several_batches(STREAM_ORDER, batch_of) == 1
