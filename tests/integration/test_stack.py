"""End to end through the Compose stack: what was produced is what was consumed."""

from __future__ import annotations

from collections import Counter

import pytest

pytestmark = pytest.mark.integration


def test_localstack_and_the_consumer_report_healthy(stack):
    # LocalStack is healthy once its init hook made the stream, the consumer once Spark's UI is up.
    for service in ("localstack", "consumer"):
        stack.wait_until(
            lambda service=service: stack.compose.get_container(service).Health == "healthy",
            f"{service} to report healthy",
        )


def test_the_stream_exists_with_the_configured_shards(stack):
    shards = stack.kinesis().list_shards(StreamName="events")["Shards"]
    # Other cases reshard the stream: its open shards still add up to the configured count.
    open_shards = [s for s in shards if "EndingSequenceNumber" not in s["SequenceNumberRange"]]
    assert len(open_shards) == stack.shards


def test_the_producer_container_sends_its_seeded_set_and_exits_cleanly(stack):
    stack.wait_until(lambda: "exited" in stack.service_state("producer"), "the producer to finish")
    container = stack.compose.get_container("producer", include_all=True)
    assert container.ExitCode == 0


def test_events_from_the_producer_and_from_outside_arrive_exactly_once(stack):
    stack.put_events(50, "message9")
    stack.assert_sink_holds_exactly_the_expected()


def test_malformed_records_become_dead_letters_and_good_ones_still_arrive(stack):
    before = Counter(stack.wait_for_sink()["dead_letter_errors"])
    stack.put([b"{broken", b"\xff\xfe", b'{"message_type": "message1"}', b""])
    stack.expected_dead_letters += 4
    stack.put_events(5, "message8")
    stack.assert_sink_holds_exactly_the_expected()
    after = Counter(stack.report()["dead_letter_errors"])
    assert after - before == {
        "not a JSON object with the event's fields and types": 1,
        "payload is not valid UTF-8": 1,
        "missing field count": 1,
        "empty payload": 1,
    }


def test_a_restarted_consumer_resumes_from_its_checkpoint(stack):
    stack.run("restart", "consumer")
    stack.put_events(20, "message7")
    stack.assert_sink_holds_exactly_the_expected()
