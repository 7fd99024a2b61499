"""The stack renews LocalStack's shards as they fill, and the consumer reads on exactly once.

A stack of its own, renewing a shard at RENEWAL_RECORDS (the stack's default is
5,000; a small value keeps the test short), its producer sending PRODUCER_COUNT
events. Without renewal each open shard would hold about half of them. The
fault suite's checks (record_fault: every event once, per-key order) run on this
stack, through a module-level `stack` fixture.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest
from producer.renewal import ShardCounts, open_shards

pytestmark = pytest.mark.integration

RENEWAL_RECORDS = 100
PRODUCER_COUNT = 1_500


@pytest.fixture(scope="module")
def stack(stack_factory) -> Iterator[object]:
    with stack_factory(
        SHARD_RENEWAL_RECORDS=str(RENEWAL_RECORDS),
        SHARD_RENEWAL_CHECK_SECONDS="1",
        PRODUCER_COUNT=str(PRODUCER_COUNT),
        KINESIS_ERROR_PROBABILITY="0",
    ) as started:
        yield started


def _all_under(held: dict[str, int], limit: int) -> dict[str, int] | None:
    return held if held and max(held.values()) < limit else None


def _renewal_lines(stack) -> list[str]:
    logs = stack.run("logs", "--no-log-prefix", "shard-renewer").stdout
    return [line for line in logs.splitlines() if "renewed shard" in line]


def test_open_shards_stay_bounded_and_each_renewal_is_one_log_line(stack, record_fault):
    started = time.monotonic()
    # Beside the producer's events (a key each), events on seven keys, over renewals.
    for _ in range(3):
        stack.put_events(100, "message3")
    stack.wait_until(lambda: "exited" in stack.service_state("producer"), "the producer to finish")
    client = stack.kinesis()
    counts = ShardCounts(client, "events")
    # Once the renewer has caught up, no open shard holds RENEWAL_RECORDS (without renewal,
    # each would hold about half of the events sent).
    held = stack.wait_until(
        lambda: _all_under(counts.refresh(), RENEWAL_RECORDS),
        f"every open shard under {RENEWAL_RECORDS} records",
    )
    assert len(open_shards(client, "events")) == stack.shards
    assert sum(held.values()) < len(stack.expected)
    lines = _renewal_lines(stack)
    assert len(lines) >= 2
    assert f"SHARD_RENEWAL_RECORDS={RENEWAL_RECORDS}" in lines[0]
    # A renewal closes three shards (the full one, then the split's two children).
    closed = len(client.list_shards(StreamName="events")["Shards"]) - stack.shards
    assert closed == 3 * len(lines)
    record_fault(f"{len(lines)} shards renewed while data flows", len(stack.expected), started)


def test_a_localstack_restart_after_renewals_loses_nothing(stack, record_fault):
    stack.wait_for_sink()
    stack.put_events(100, "message1")
    stack.wait_for_sink()
    # Right away: kinesis-mock saves every record at LocalStack's stop, not only on its timer.
    started = time.monotonic()
    stack.restart_localstack_then_put(100, "message2")
    record_fault("LocalStack restarted after shard renewals", 200, started)
