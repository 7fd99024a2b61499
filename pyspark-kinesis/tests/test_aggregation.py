"""KPL de-aggregation agrees with the aws-kinesis-agg aggregator, and never loses a record."""

from __future__ import annotations

import hashlib

import pytest
from aws_kinesis_agg.aggregator import RecordAggregator
from pyspark_kinesis.aggregation import MAGIC, UserRecord, user_records

pytestmark = pytest.mark.unit

ENTRIES = [
    ("user-1", b'{"n": 1}'),
    ("user-2", b""),
    ("user-1", b"\xff\xfe\x00\x80binary"),
    ("\u00e9t\u00e9", b"\xe2\x82\xac"),
]


def aggregate(entries: list[tuple[str, bytes]]) -> tuple[str, bytes]:
    aggregator = RecordAggregator()
    for partition_key, data in entries:
        aggregator.add_user_record(partition_key, data)
    partition_key, _, data = aggregator.clear_and_get().get_contents()
    return partition_key, data


def with_digest(body: bytes) -> bytes:
    return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()


def test_aggregated_record_yields_its_user_records_in_order() -> None:
    partition_key, data = aggregate(ENTRIES)
    assert list(user_records(data, partition_key)) == [
        UserRecord(entry_data, entry_key, index)
        for index, (entry_key, entry_data) in enumerate(ENTRIES)
    ]


def test_single_entry_aggregate_is_unwrapped() -> None:
    partition_key, data = aggregate([("k", b"only")])
    assert list(user_records(data, partition_key)) == [UserRecord(b"only", "k", 0)]


def test_many_entries_keep_their_sub_sequence_numbers() -> None:
    entries = [(f"key-{n % 7}", str(n).encode()) for n in range(300)]
    partition_key, data = aggregate(entries)
    found = [
        (r.partition_key, r.data, r.sub_sequence_number) for r in user_records(data, partition_key)
    ]
    assert found == [(key, value, n) for n, (key, value) in enumerate(entries)]


def test_plain_record_passes_through() -> None:
    assert list(user_records(b'{"n": 1}', "pk")) == [UserRecord(b'{"n": 1}', "pk", 0)]


def test_empty_plain_record_passes_through() -> None:
    assert list(user_records(b"", "pk")) == [UserRecord(b"", "pk", 0)]


def test_magic_with_a_wrong_digest_passes_through_whole() -> None:
    partition_key, data = aggregate(ENTRIES)
    tampered = data[:-1] + bytes([data[-1] ^ 0xFF])
    assert list(user_records(tampered, partition_key)) == [UserRecord(tampered, partition_key, 0)]


def test_magic_alone_passes_through_whole() -> None:
    assert list(user_records(MAGIC, "pk")) == [UserRecord(MAGIC, "pk", 0)]


@pytest.mark.parametrize("cut", [1, 3, 6])
def test_truncated_message_with_a_valid_digest_passes_through_whole(cut: int) -> None:
    partition_key, data = aggregate(ENTRIES)
    body = data[len(MAGIC) : -16]
    truncated = with_digest(body[:-cut])
    assert list(user_records(truncated, partition_key)) == [UserRecord(truncated, partition_key, 0)]


def test_partition_key_index_out_of_range_passes_through_whole() -> None:
    # Key table ["k"], one record pointing at key index 5 with data "x".
    record = with_digest(b"\x0a\x01k" + b"\x1a\x05\x08\x05\x1a\x01x")
    assert list(user_records(record, "pk")) == [UserRecord(record, "pk", 0)]


def test_non_utf8_partition_key_passes_through_whole() -> None:
    record = with_digest(b"\x0a\x01\xff" + b"\x1a\x05\x08\x00\x1a\x01x")
    assert list(user_records(record, "pk")) == [UserRecord(record, "pk", 0)]


def test_unsupported_wire_type_passes_through_whole() -> None:
    record = with_digest(b"\x0a\x01k\x1b")  # field 3, wire type 3 (deprecated group)
    assert list(user_records(record, "pk")) == [UserRecord(record, "pk", 0)]
