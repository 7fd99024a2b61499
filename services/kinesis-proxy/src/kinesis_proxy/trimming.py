"""Records trimmed as past the stream's retention: what a reader finds where data was lost.

AWS trims each shard's oldest records once they are older than the stream's
retention period (24 hours at least); LocalStack never trims. With
`trimmed_records` N the proxy acts as if each shard's first N records had been
trimmed: no read returns them (a read from TRIM_HORIZON, from a timestamp
before them, or by an iterator that pointed at them starts after them), and
GetShardIterator or SubscribeToShard at one of their sequence numbers answers
InvalidArgumentException naming StartingSequenceNumber, as AWS answers a
sequence number past retention.
"""

from __future__ import annotations

import threading
from email.message import Message
from typing import Any

from kinesis_proxy.answers import Answer, error
from kinesis_proxy.state import ProxyState
from kinesis_proxy.upstream import Upstream

_BY_SEQUENCE_NUMBER = frozenset({"AT_SEQUENCE_NUMBER", "AFTER_SEQUENCE_NUMBER"})


class Trimming:
    """Each shard's trim horizon (its last trimmed record), learnt from LocalStack."""

    def __init__(self, state: ProxyState, upstream: Upstream) -> None:
        self._state = state
        self._upstream = upstream.call
        self._lock = threading.Lock()
        # (stream, shard, trimmed records) -> the last trimmed sequence number, once the
        # shard holds that many records (before then, later records are trimmed too).
        self._horizons: dict[tuple[str, str, int], int] = {}

    def refusal(
        self,
        operation: str,
        stream: str,
        shard_id: str,
        start: tuple[str, str | None],
        headers: Message,
    ) -> Answer | None:
        """InvalidArgumentException for a start (iterator type, sequence number) at a
        trimmed record; None for any other start."""
        kind, sequence_number = start
        if kind not in _BY_SEQUENCE_NUMBER or sequence_number is None:
            return None
        horizon = self.horizon(stream, shard_id, headers)
        if horizon is None or int(sequence_number) > horizon:
            return None
        self._state.count("trimmed_starts_refused")
        return error(
            "InvalidArgumentException",
            f"StartingSequenceNumber {sequence_number} used in {operation} on shard "
            f"{shard_id} in stream {stream} is older than the stream's retention period: "
            "its record was trimmed",
        )

    def untrimmed(
        self, stream: str, shard_id: str, records: list[dict[str, Any]], headers: Message
    ) -> list[dict[str, Any]]:
        """`records` (of one shard, in order) less the trimmed ones."""
        if not records:
            return records
        horizon = self.horizon(stream, shard_id, headers)
        if horizon is None:
            return records
        kept = [record for record in records if int(record["SequenceNumber"]) > horizon]
        self._state.count("trimmed_records_skipped", len(records) - len(kept))
        return kept

    def horizon(self, stream: str, shard_id: str, headers: Message) -> int | None:
        """The sequence number of the shard's last trimmed record; None if none is."""
        count = self._state.behaviours.trimmed_records
        if not count:
            return None
        key = (stream, shard_id, count)
        with self._lock:
            if key in self._horizons:
                return self._horizons[key]
        first = self._first_records(stream, shard_id, count, headers)
        if not first:
            return None
        horizon = int(first[-1]["SequenceNumber"])
        if len(first) == count:
            with self._lock:
                self._horizons[key] = horizon
        return horizon

    def _first_records(
        self, stream: str, shard_id: str, count: int, headers: Message
    ) -> list[dict[str, Any]]:
        request = {"StreamName": stream, "ShardId": shard_id, "ShardIteratorType": "TRIM_HORIZON"}
        status, document = self._upstream("GetShardIterator", request, headers)
        iterator = document.get("ShardIterator") if status == 200 else None
        records: list[dict[str, Any]] = []
        while iterator and len(records) < count:
            page_request = {"ShardIterator": iterator, "Limit": count - len(records)}
            status, page = self._upstream("GetRecords", page_request, headers)
            if status != 200 or not page.get("Records"):
                break
            records.extend(page["Records"])
            iterator = page.get("NextShardIterator")
        return records[:count]


def iterator_start(request: dict[str, Any]) -> tuple[str, str | None]:
    """GetShardIterator's start: its iterator type and sequence number."""
    return str(request.get("ShardIteratorType")), request.get("StartingSequenceNumber")


def subscription_start(request: dict[str, Any]) -> tuple[str, str | None]:
    """SubscribeToShard's start: its StartingPosition's type and sequence number."""
    position = request.get("StartingPosition", {})
    return str(position.get("Type")), position.get("SequenceNumber")
