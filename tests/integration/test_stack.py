"""End to end through the Compose stack: what was produced is what was consumed."""

from __future__ import annotations

import json
import uuid

import pytest

pytestmark = pytest.mark.integration


def put_events(stack, count: int, message_type: str) -> None:
    events = [
        {
            "event_id": uuid.uuid4().hex,
            "event_time": "2026-11-25T08:00:00.000Z",
            "message_type": message_type,
            "count": 3,
        }
        for _ in range(count)
    ]
    put_payloads(stack, [json.dumps(event).encode() for event in events])
    stack.expected.update({event["event_id"]: event for event in events})


def put_payloads(stack, payloads: list[bytes]) -> None:
    entries = [{"Data": data, "PartitionKey": str(index)} for index, data in enumerate(payloads)]
    answer = stack.kinesis().put_records(StreamName="events", Records=entries)
    assert answer["FailedRecordCount"] == 0


def assert_sink_holds_exactly_the_expected(stack) -> None:
    report = stack.wait_for_sink()
    assert report["event_ids"] == sorted(stack.expected)
    assert report["duplicate_event_ids"] == 0
    assert report["counts"] == stack.expected_counts()
    assert report["dead_letters"] == stack.expected_dead_letters


def test_the_stream_exists_with_the_configured_shards(stack):
    shards = stack.kinesis().list_shards(StreamName="events")["Shards"]
    assert len(shards) == stack.shards


def test_the_producer_container_sends_its_seeded_set_and_exits_cleanly(stack):
    stack.wait_until(lambda: "exited" in stack.service_state("producer"), "the producer to finish")
    container = stack.compose.get_container("producer", include_all=True)
    assert container.ExitCode == 0


def test_events_from_the_producer_and_from_outside_arrive_exactly_once(stack):
    put_events(stack, 50, "message9")
    assert_sink_holds_exactly_the_expected(stack)


def test_malformed_records_become_dead_letters_and_good_ones_still_arrive(stack):
    put_payloads(stack, [b"{broken", b"\xff\xfe", b'{"message_type": "message1"}', b""])
    stack.expected_dead_letters += 4
    put_events(stack, 5, "message8")
    assert_sink_holds_exactly_the_expected(stack)
    assert stack.report()["dead_letter_errors"] == {
        "not a JSON object with the event's fields and types": 1,
        "payload is not valid UTF-8": 1,
        "missing field count": 1,
        "empty payload": 1,
    }


def test_a_restarted_consumer_resumes_from_its_checkpoint(stack):
    stack.compose_command("restart", "consumer")
    put_events(stack, 20, "message7")
    assert_sink_holds_exactly_the_expected(stack)
