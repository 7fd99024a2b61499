"""KPL de-aggregation: one Kinesis record in, one or more user records out.

The KPL's format is a 4-byte magic, a protobuf `AggregatedRecord` and its MD5
digest. The message is decoded here, with a 30-line protobuf wire reader,
rather than with the `aws-kinesis-agg` package: that package's modules import
each other as top-level modules and only load after it has altered `sys.path`,
and its deaggregator prints and drops the rest of a record when one entry
fails, which would lose data silently. The tests build aggregated records with
that package's aggregator, so the two stay in agreement. A record that is not
well-formed aggregation is passed through whole, as the KCL does.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from typing import NamedTuple

MAGIC = b"\xf3\x89\x9a\xc2"
_DIGEST_SIZE = 16

# AggregatedRecord fields, and Record fields inside it (field number -> meaning).
_PARTITION_KEY_TABLE, _RECORDS = 1, 3
_PARTITION_KEY_INDEX, _DATA = 1, 3
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5


class UserRecord(NamedTuple):
    data: bytes
    partition_key: str
    sub_sequence_number: int


class _MalformedError(ValueError):
    pass


def user_records(data: bytes, partition_key: str) -> Iterator[UserRecord]:
    """The user records inside one Kinesis record, in order."""
    body = data[len(MAGIC) : -_DIGEST_SIZE]
    aggregated = (
        data.startswith(MAGIC)
        and len(body) > 0
        and hashlib.md5(body, usedforsecurity=False).digest() == data[-_DIGEST_SIZE:]
    )
    if aggregated:
        try:
            entries = _decode_aggregated(body)
        except (_MalformedError, IndexError, UnicodeDecodeError):
            entries = None
        if entries is not None:
            for index, (entry_data, entry_key) in enumerate(entries):
                yield UserRecord(entry_data, entry_key, index)
            return
    yield UserRecord(data, partition_key, 0)


def _decode_aggregated(body: bytes) -> list[tuple[bytes, str]]:
    keys: list[str] = []
    raw_records: list[bytes] = []
    for number, value in _fields(body):
        if number == _PARTITION_KEY_TABLE and isinstance(value, bytes):
            keys.append(value.decode("utf-8"))
        elif number == _RECORDS and isinstance(value, bytes):
            raw_records.append(value)
    entries = []
    for raw in raw_records:
        fields = dict(_fields(raw))
        key_index, entry_data = fields.get(_PARTITION_KEY_INDEX), fields.get(_DATA)
        if not isinstance(key_index, int) or not isinstance(entry_data, bytes):
            raise _MalformedError("record without partition key index or data")
        entries.append((entry_data, keys[key_index]))
    return entries


def _fields(message: bytes) -> Iterator[tuple[int, int | bytes]]:
    position = 0
    while position < len(message):
        tag, position = _varint(message, position)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == _VARINT:
            value, position = _varint(message, position)
            yield number, value
        elif wire_type == _LENGTH_DELIMITED:
            size, position = _varint(message, position)
            if position + size > len(message):
                raise _MalformedError("field runs past the end of the message")
            yield number, message[position : position + size]
            position += size
        elif wire_type in (_FIXED64, _FIXED32):
            position += 8 if wire_type == _FIXED64 else 4
        else:
            raise _MalformedError(f"unsupported wire type {wire_type}")


def _varint(message: bytes, position: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = message[position]
        position += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, position
        shift += 7
        if shift > 63:
            raise _MalformedError("varint longer than 64 bits")
