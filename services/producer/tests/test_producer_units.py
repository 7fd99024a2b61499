"""The producer's parts in-process: settings, events, and the writer against a real LocalStack."""

from __future__ import annotations

import json
import logging
import re

import pytest
from producer.events import (
    MESSAGE_TYPES,
    SAMPLE_MESSAGES,
    EventFactory,
    Record,
    key_for_payload,
    to_record,
)
from producer.settings import ProducerSettings, SettingsError, load_settings
from producer.writer import MAX_REQUEST_BYTES, KinesisWriter, UnsentFile, UnsentRecordsError
from producer_testkit import read_stream

from testkit.clients import localstack_kinesis
from testkit.streams import wait_active

pytestmark = pytest.mark.unit

EVENT_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture
def clean_env(monkeypatch):
    for name in ProducerSettings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    return monkeypatch


def test_defaults(clean_env):
    settings = load_settings()
    assert settings.kinesis_stream_name == "events"
    assert settings.aws_region == "us-east-1"
    assert settings.kinesis_endpoint_url is None
    assert (settings.kinesis_shard_count, settings.producer_create_stream) == (2, False)
    assert (settings.producer_rate, settings.producer_count, settings.producer_seed) == (
        10,
        0,
        None,
    )
    assert (settings.producer_batch_size, settings.producer_max_retry_seconds) == (500, 120)
    assert str(settings.producer_unsent_path) == "unsent.jsonl"
    assert settings.producer_log_level == "INFO"


def test_empty_variables_mean_unset(clean_env):
    # Compose passes `${PRODUCER_SEED:-}` as an empty string.
    clean_env.setenv("PRODUCER_SEED", "")
    clean_env.setenv("KINESIS_ENDPOINT_URL", "")
    settings = load_settings()
    assert settings.producer_seed is None
    assert settings.kinesis_endpoint_url is None


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        ("KINESIS_STREAM_NAME", "no spaces allowed"),
        ("AWS_REGION", "mars"),
        ("KINESIS_ENDPOINT_URL", "localstack:4566"),
        ("KINESIS_SHARD_COUNT", "0"),
        ("PRODUCER_CREATE_STREAM", "perhaps"),
        ("PRODUCER_RATE", "-1"),
        ("PRODUCER_COUNT", "many"),
        ("PRODUCER_SEED", "1.5"),
        ("PRODUCER_BATCH_SIZE", "501"),
        ("PRODUCER_MAX_RETRY_SECONDS", "0"),
        ("PRODUCER_LOG_LEVEL", "LOUD"),
    ],
)
def test_an_invalid_variable_is_named_with_what_it_accepts(clean_env, variable, value):
    clean_env.setenv(variable, value)
    with pytest.raises(SettingsError) as raised:
        load_settings()
    message = str(raised.value)
    assert message.startswith(f"{variable}={value!r} is invalid")
    assert "expected " in message
    assert "\n" not in message


def test_a_command_line_override_is_validated_and_names_its_option(clean_env):
    with pytest.raises(SettingsError, match=r"^PRODUCER_BATCH_SIZE \(--batch-size\)='900'"):
        load_settings(
            {"producer_batch_size": "900"}, options={"producer_batch_size": "--batch-size"}
        )
    assert load_settings({"producer_batch_size": "7"}).producer_batch_size == 7


def test_seeded_events_are_reproducible_ids_included():
    def sequence(seed):
        return [
            (e["event_id"], e["message_type"], e["count"])
            for e in EventFactory(seed).random_events(200)
        ]

    assert sequence(42) == sequence(42)
    assert sequence(42) != sequence(43)
    assert len({event_id for event_id, _, _ in sequence(42)}) == 200


def test_events_have_the_documented_shape():
    for event in EventFactory(1).random_events(500):
        assert set(event) == {"event_id", "event_time", "message_type", "count"}
        assert re.fullmatch(r"[0-9a-f]{32}", event["event_id"])
        assert EVENT_TIME.match(event["event_time"])
        assert event["message_type"] in MESSAGE_TYPES
        assert 1 <= event["count"] <= 10
        record = to_record(event)
        assert record.partition_key == event["event_id"]
        assert json.loads(record.data) == event


def test_samples_are_the_tutorials_five_messages_with_id_and_time():
    samples = EventFactory(3).samples()
    assert [{"message_type": s["message_type"], "count": s["count"]} for s in samples] == list(
        SAMPLE_MESSAGES
    )
    assert all(len(s["event_id"]) == 32 and EVENT_TIME.match(s["event_time"]) for s in samples)


def test_a_payload_is_keyed_by_its_event_id_when_it_has_one():
    factory = EventFactory(5)
    assert key_for_payload(b'{"event_id": "abc", "count": 1}', factory) == "abc"
    for payload in (b"{not json", b"[1, 2]", b'{"event_id": 7}', b"\xff\xfe", b""):
        assert re.fullmatch(r"[0-9a-f]{32}", key_for_payload(payload, factory))


def test_an_unwritable_unsent_file_is_reported_as_lost(tmp_path, caplog):
    (tmp_path / "a-file").write_text("")
    unsent = UnsentFile(tmp_path / "a-file" / "unsent.jsonl")
    with caplog.at_level(logging.ERROR):
        assert unsent.keep([Record(b"x", "k")]) == 0
    assert "1 records LOST" in caplog.text


def writer_for(endpoint, stream, tmp_path, **options):
    client = localstack_kinesis(endpoint)
    return KinesisWriter(client, stream, UnsentFile(tmp_path / "unsent.jsonl"), **options)


def test_every_record_written_is_read_back_once(
    kinesis_endpoint, stream_factory, kinesis_client, tmp_path
):
    stream = stream_factory(2)
    events = list(EventFactory(11).random_events(1234))
    writer = writer_for(kinesis_endpoint, stream, tmp_path, batch_size=100)
    writer.put_all(to_record(event) for event in events)

    assert (writer.stats.sent, writer.stats.failed) == (1234, 0)
    read = read_stream(kinesis_client, stream)
    assert sorted(r["key"] for r in read) == sorted(e["event_id"] for e in events)
    assert sorted(json.loads(r["data"])["event_id"] for r in read) == sorted(
        e["event_id"] for e in events
    )


def test_batches_stay_under_five_mib(kinesis_endpoint, stream_factory, kinesis_client, tmp_path):
    stream = stream_factory(1)
    writer = writer_for(kinesis_endpoint, stream, tmp_path)
    calls = []
    # Observe the real requests with botocore's event system; nothing is replaced.
    writer.client.meta.events.register(
        "provide-client-params.kinesis.PutRecords",
        lambda params, **_: calls.append(
            sum(len(r["Data"]) + len(r["PartitionKey"]) for r in params["Records"])
        ),
    )
    records = [Record(bytes([65 + n]) * 900_000, f"key-{n}") for n in range(12)]
    writer.put_all(records)

    assert writer.stats.sent == 12
    assert len(calls) == 3 and all(size <= MAX_REQUEST_BYTES for size in calls)
    assert sorted(r["data"] for r in read_stream(kinesis_client, stream)) == sorted(
        r.data for r in records
    )


def test_an_oversized_record_goes_to_the_unsent_file(
    kinesis_endpoint, stream_factory, kinesis_client, tmp_path
):
    stream = stream_factory(1)
    writer = writer_for(kinesis_endpoint, stream, tmp_path)
    # 1 MiB of data plus the key is over the limit, which counts both.
    oversized = Record(b"x" * (1024 * 1024), "k")
    writer.put_all([Record(b"before", "a"), oversized, Record(b"after", "b")])

    assert (writer.stats.sent, writer.stats.failed, writer.stats.unsent) == (2, 1, 1)
    assert (tmp_path / "unsent.jsonl").read_bytes() == oversized.data + b"\n"
    assert sorted(r["data"] for r in read_stream(kinesis_client, stream)) == [b"after", b"before"]


def test_refused_entries_are_resent_until_accepted(
    throttled_kinesis_endpoint, tmp_path, localstack_kinesis_client
):
    # This LocalStack refuses 30% of PutRecords calls entry by entry, as Kinesis does
    # when a shard is over its limits (HTTP 200, ErrorCode per entry).
    client = localstack_kinesis_client(throttled_kinesis_endpoint)
    client.create_stream(StreamName="throttled-resend", ShardCount=2)
    wait_active(client, "throttled-resend")
    events = list(EventFactory(8).random_events(1000))
    writer = KinesisWriter(
        client, "throttled-resend", UnsentFile(tmp_path / "unsent.jsonl"), batch_size=20
    )
    writer.put_all(to_record(event) for event in events)

    assert (writer.stats.sent, writer.stats.failed) == (1000, 0)
    assert writer.stats.refused > 0
    read = read_stream(client, "throttled-resend")
    assert sorted(r["key"] for r in read) == sorted(e["event_id"] for e in events)


def test_records_refused_past_the_deadline_are_kept_not_dropped(
    throttled_kinesis_endpoint, tmp_path, localstack_kinesis_client
):
    client = localstack_kinesis_client(throttled_kinesis_endpoint)
    client.create_stream(StreamName="throttled-deadline", ShardCount=1)
    wait_active(client, "throttled-deadline")
    writer = KinesisWriter(
        client,
        "throttled-deadline",
        UnsentFile(tmp_path / "unsent.jsonl"),
        batch_size=10,
        max_retry_seconds=0.001,
    )
    records = [Record(f"record-{n}".encode(), f"key-{n}") for n in range(1000)]
    with pytest.raises(UnsentRecordsError, match=r"records could not be sent; \d+ are in"):
        writer.put_all(records)

    unsent = (tmp_path / "unsent.jsonl").read_bytes().splitlines()
    sent = [r["data"] for r in read_stream(client, "throttled-deadline")]
    # The refused batch of 10, and the record whose put found the buffer full.
    assert (writer.stats.failed, writer.stats.unsent, len(unsent)) == (11, 11, 11)
    assert writer.stats.sent == len(sent)
    # What was handed to the writer is in the stream or in the file, once.
    assert sorted(sent + unsent) == sorted(r.data for r in records[: len(sent) + 11])


def test_under_a_shard_write_limit_refused_entries_are_resent_none_lost_none_doubled(
    kinesis_proxy, stream_factory, kinesis_client, tmp_path
):
    from kinesis_proxy import Behaviours

    stream = stream_factory(1)
    # The proxy refuses entries past a shard's write rate, per entry, as AWS does. AWS's
    # 1,000 records/s is more than one writer reaches through LocalStack here, so the rate
    # is 200/s: every batch of 500 is then over it, whatever the machine's speed.
    kinesis_proxy.behaviours = Behaviours(write_limits=True, writes_per_s=200)
    events = list(EventFactory(16).random_events(1000))
    writer = writer_for(kinesis_proxy.url, stream, tmp_path, batch_size=500)
    writer.put_all(to_record(event) for event in events)

    assert (writer.stats.sent, writer.stats.failed) == (len(events), 0)
    assert writer.stats.refused > 0
    assert kinesis_proxy.events["refused_writes"] == writer.stats.refused
    read = read_stream(kinesis_client, stream)  # from LocalStack itself, behind the proxy
    assert sorted(r["key"] for r in read) == sorted(e["event_id"] for e in events)
