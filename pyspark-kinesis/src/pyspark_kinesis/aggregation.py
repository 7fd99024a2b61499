"""KPL aggregation both ways: many user records in one Kinesis record, and back.

The KPL's format is a 4-byte magic, a protobuf `AggregatedRecord` and its MD5
digest. The message is read and written here, with a small protobuf wire
reader and writer, rather than with the `aws-kinesis-agg` package: that
package's modules import each other as top-level modules and only load after
it has altered `sys.path`, it pulls in `protobuf` (a second runtime dependency
for thirty lines of wire format), and its deaggregator prints and drops the
rest of a record when one entry fails, which would lose data silently. The
tests check both directions against that package, so the two stay in
agreement. A record that is not well-formed aggregation is passed through
whole, as the KCL does.
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
_EXPLICIT_HASH_KEY_TABLE, _EXPLICIT_HASH_KEY_INDEX = 2, 2
_VARINT, _FIXED64, _LENGTH_DELIMITED, _FIXED32 = 0, 1, 2, 5
# The KPL's default AggregationMaxSize: an aggregate stays far under Kinesis' 1 MiB.
AGGREGATE_MAX_BYTES = 51_200


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


class AggregateBuilder:
    """Packs user records into one aggregated Kinesis record, in the KPL's format.

    The aggregate takes the first user record's partition key (and explicit
    hash key), so its user records all land on that key's shard.
    """

    def __init__(self) -> None:
        self._keys: dict[str, int] = {}
        self._hash_keys: dict[str, int] = {}
        self._body = bytearray()
        self.partition_key: str | None = None
        self.explicit_hash_key: str | None = None
        self.count = 0

    def size_with(self, data: bytes, partition_key: str, explicit_hash_key: str | None) -> int:
        """The aggregate's size in Kinesis' terms (record plus partition key) were this added."""
        extra = len(self._entry(data, partition_key, explicit_hash_key))
        extra += _table_growth(self._keys, partition_key)
        if explicit_hash_key is not None:
            extra += _table_growth(self._hash_keys, explicit_hash_key)
        first_key = self.partition_key if self.partition_key is not None else partition_key
        body = len(self._body) + extra
        return len(MAGIC) + body + _DIGEST_SIZE + len(first_key.encode("utf-8"))

    def add(self, data: bytes, partition_key: str, explicit_hash_key: str | None) -> None:
        entry = self._entry(data, partition_key, explicit_hash_key)
        for table, field_number, key in (
            (self._keys, _PARTITION_KEY_TABLE, partition_key),
            (self._hash_keys, _EXPLICIT_HASH_KEY_TABLE, explicit_hash_key),
        ):
            if key is not None and key not in table:
                table[key] = len(table)
                self._body += _length_delimited(field_number, key.encode("utf-8"))
        self._body += entry
        if self.partition_key is None:
            self.partition_key, self.explicit_hash_key = partition_key, explicit_hash_key
        self.count += 1

    def build(self) -> bytes:
        body = bytes(self._body)
        return MAGIC + body + hashlib.md5(body, usedforsecurity=False).digest()

    def _entry(self, data: bytes, partition_key: str, explicit_hash_key: str | None) -> bytes:
        record = _tag(_PARTITION_KEY_INDEX, _VARINT) + _varint_bytes(
            self._keys.get(partition_key, len(self._keys))
        )
        if explicit_hash_key is not None:
            index = self._hash_keys.get(explicit_hash_key, len(self._hash_keys))
            record += _tag(_EXPLICIT_HASH_KEY_INDEX, _VARINT) + _varint_bytes(index)
        record += _length_delimited(_DATA, data)
        return _length_delimited(_RECORDS, record)


def _table_growth(table: dict[str, int], key: str) -> int:
    return 0 if key in table else len(_length_delimited(1, key.encode("utf-8")))


def _tag(number: int, wire_type: int) -> bytes:
    return _varint_bytes(number << 3 | wire_type)


def _length_delimited(number: int, payload: bytes) -> bytes:
    return _tag(number, _LENGTH_DELIMITED) + _varint_bytes(len(payload)) + payload


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
