"""PutRecords and PutRecord under AWS's per-shard write limits (1,000 records/s, 1 MiB/s):
PutRecords refuses entry by entry, as AWS does; PutRecord refuses the call."""

from __future__ import annotations

import time
from email.message import Message
from typing import Any

from kinesis_proxy.answers import Answer, data_size, hash_key, ok, passed_on, stream_name, throttled
from kinesis_proxy.state import ProxyState
from kinesis_proxy.upstream import Upstream


class Writes:
    def __init__(self, state: ProxyState, upstream: Upstream) -> None:
        self.state = state
        self.upstream = upstream

    def put_records(self, request: dict[str, Any], headers: Message) -> Answer:
        stream = stream_name(request)
        entries: list[dict[str, Any]] = request["Records"]
        admitted = self._admit(stream, entries, headers)
        results: list[dict[str, Any]] = [
            {
                "ErrorCode": "ProvisionedThroughputExceededException",
                "ErrorMessage": f"Rate exceeded for shard in stream {stream}",
            }
            for _ in entries
        ]
        accepted = [index for index, admit in enumerate(admitted) if admit]
        self.state.count("refused_writes", len(entries) - len(accepted))
        answer: dict[str, Any] = {"EncryptionType": "NONE"}
        if accepted:
            forwarded = dict(request, Records=[entries[index] for index in accepted])
            status, document = self.upstream.call("PutRecords", forwarded, headers)
            if status != 200:
                return passed_on(status, document)
            for index, result in zip(accepted, document["Records"], strict=True):
                results[index] = result
            answer = document
        answer["Records"] = results
        answer["FailedRecordCount"] = sum(1 for result in results if "ErrorCode" in result)
        return ok(answer)

    def put_record(self, request: dict[str, Any], headers: Message) -> Answer:
        stream = stream_name(request)
        if not self._admit(stream, [request], headers)[0]:
            self.state.count("refused_writes")
            return throttled(f"Rate exceeded in stream {stream}")
        status, document = self.upstream.call("PutRecord", request, headers)
        return passed_on(status, document)

    def _admit(self, stream: str, entries: list[dict[str, Any]], headers: Message) -> list[bool]:
        if not self.state.behaviours.write_limits:
            return [True] * len(entries)
        ranges = self._open_shard_ranges(stream, headers)
        now = time.monotonic()
        admitted = []
        with self.state.lock:
            for entry in entries:
                key = hash_key(entry)
                shard_id = next(
                    (shard for shard, (low, high) in ranges.items() if low <= key <= high), None
                )
                if shard_id is None:  # an unknown stream: LocalStack answers it
                    admitted.append(True)
                    continue
                shard = self.state.shard(stream, shard_id)
                size = data_size(entry) + len(entry["PartitionKey"].encode())
                admitted.append(shard.writes.admit(now) and shard.write_bytes.admit(now, size))
        return admitted

    def _open_shard_ranges(self, stream: str, headers: Message) -> dict[str, tuple[int, int]]:
        ranges: dict[str, tuple[int, int]] = {}
        request: dict[str, Any] = {"StreamName": stream}
        while True:
            status, document = self.upstream.call("ListShards", request, headers)
            if status != 200:
                return ranges
            for shard in document["Shards"]:
                if "EndingSequenceNumber" not in shard["SequenceNumberRange"]:
                    hash_range = shard["HashKeyRange"]
                    ranges[shard["ShardId"]] = (
                        int(hash_range["StartingHashKey"]),
                        int(hash_range["EndingHashKey"]),
                    )
            if not document.get("NextToken"):
                return ranges
            request = {"NextToken": document["NextToken"]}
