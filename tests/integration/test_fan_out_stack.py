"""The stack with CONSUMER_READ_MODE=fan-out: the consumer reads with SubscribeToShard.

A stack of its own (a module-level `stack` fixture), its producer sending fewer events
than the session's to keep it short: LocalStack's own fan-out serves the consumer.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytestmark = pytest.mark.integration

PRODUCER_COUNT = 100
# The consumer service's fan-out consumer (services/consumer, FAN_OUT_CONSUMER_NAME).
CONSUMER_NAME = "kinesis-stack-consumer"


@pytest.fixture(scope="module")
def stack(stack_factory) -> Iterator[object]:
    with stack_factory(CONSUMER_READ_MODE="fan-out", PRODUCER_COUNT=str(PRODUCER_COUNT)) as started:
        yield started


def test_the_consumer_reads_every_event_once_as_its_registered_consumer(stack):
    stack.put_events(50, "message2")
    stack.assert_sink_holds_exactly_the_expected()
    kinesis = stack.kinesis()
    summary = kinesis.describe_stream_summary(StreamName="events")["StreamDescriptionSummary"]
    consumers = kinesis.list_stream_consumers(StreamARN=summary["StreamARN"])["Consumers"]
    assert [(c["ConsumerName"], c["ConsumerStatus"]) for c in consumers] == [
        (CONSUMER_NAME, "ACTIVE")
    ]
