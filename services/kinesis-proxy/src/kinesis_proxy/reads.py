"""GetShardIterator and GetRecords as AWS answers them: per-shard read limits, iterators
that expire, late visibility and empty pages while records wait.

The proxy hands out its own iterators and keeps LocalStack's behind them, so it
knows which shard each GetRecords reads, can expire iterators by age, and can
answer an empty page whose next iterator still points at the records it held back.
"""

from __future__ import annotations

import time
from email.message import Message
from itertools import takewhile
from typing import Any

from kinesis_proxy.answers import Answer, data_size, error, ok, passed_on, stream_name, throttled
from kinesis_proxy.state import ProxyIterator, ProxyState
from kinesis_proxy.trimming import Trimming, iterator_start
from kinesis_proxy.upstream import Upstream


class Reads:
    def __init__(self, state: ProxyState, upstream: Upstream, trimming: Trimming) -> None:
        self.state = state
        self.upstream = upstream
        self.trimming = trimming

    def get_shard_iterator(self, request: dict[str, Any], headers: Message) -> Answer:
        stream, shard_id = stream_name(request), str(request["ShardId"])
        if self.state.behaviours.read_limits:
            with self.state.lock:
                admitted = self.state.shard(stream, shard_id).iterators.admit(time.monotonic())
            if not admitted:
                self.state.count("throttled_iterators")
                return throttled(f"Rate exceeded for shard {shard_id} in stream {stream}")
        start = iterator_start(request)
        refused = self.trimming.refusal("GetShardIterator", stream, shard_id, start, headers)
        if refused is not None:
            return refused
        status, document = self.upstream.call("GetShardIterator", request, headers)
        if status != 200:
            return passed_on(status, document)
        issued = ProxyIterator(stream, shard_id, 0.0, upstream=document["ShardIterator"])
        return ok({"ShardIterator": self.state.issue(issued)})

    def get_records(self, request: dict[str, Any], headers: Message) -> Answer:
        iterator = self.state.iterator(str(request.get("ShardIterator")))
        if iterator is None:
            return error("InvalidArgumentException", "Invalid ShardIterator")
        lifetime = self.state.behaviours.iterator_lifetime_s
        if lifetime is not None and time.monotonic() - iterator.created_s > lifetime:
            self.state.count("expired_iterators")
            return error("ExpiredIteratorException", "Iterator expired")
        refused = self._refuse_read(iterator)
        if refused is not None:
            return refused
        upstream = self._upstream_iterator(iterator, headers)
        forwarded = {"ShardIterator": upstream} | (
            {"Limit": request["Limit"]} if "Limit" in request else {}
        )
        status, document = self.upstream.call("GetRecords", forwarded, headers)
        if status != 200:
            return passed_on(status, document)
        document["Records"] = self.trimming.untrimmed(
            iterator.stream, iterator.shard_id, document.get("Records", []), headers
        )
        return ok(self._as_aws_would(iterator, upstream, document))

    def _refuse_read(self, iterator: ProxyIterator) -> Answer | None:
        if not self.state.behaviours.read_limits:
            return None
        now = time.monotonic()
        with self.state.lock:
            shard = self.state.shard(iterator.stream, iterator.shard_id)
            admitted = shard.read_bytes.allows(now) and shard.reads.admit(now)
        if admitted:
            return None
        self.state.count("throttled_reads")
        return throttled(f"Rate exceeded for shard {iterator.shard_id} in stream {iterator.stream}")

    def _upstream_iterator(self, iterator: ProxyIterator, headers: Message) -> str:
        if iterator.upstream is not None:
            return iterator.upstream
        request = {
            "StreamName": iterator.stream,
            "ShardId": iterator.shard_id,
            "ShardIteratorType": "AFTER_SEQUENCE_NUMBER",
            "StartingSequenceNumber": iterator.after_sequence_number,
        }
        status, document = self.upstream.call("GetShardIterator", request, headers)
        if status != 200:
            raise RuntimeError(f"LocalStack refused an iterator the proxy needs: {document}")
        return str(document["ShardIterator"])

    def _as_aws_would(
        self, iterator: ProxyIterator, upstream: str, document: dict[str, Any]
    ) -> dict[str, Any]:
        """LocalStack's GetRecords answer, with late visibility and empty pages applied."""
        records = document.get("Records", [])
        visible_until = time.time() - self.state.behaviours.visibility_delay_s
        shown = list(
            takewhile(lambda r: r["ApproximateArrivalTimestamp"] <= visible_until, records)
        )
        follower = ProxyIterator(iterator.stream, iterator.shard_id, 0.0)
        if shown and self._gives_empty_page(iterator):
            self.state.count("empty_pages")
            behind_ms = int((time.time() - shown[0]["ApproximateArrivalTimestamp"]) * 1000)
            document["MillisBehindLatest"] = max(
                1, behind_ms, document.get("MillisBehindLatest", 0)
            )
            shown, follower.upstream = [], upstream
        elif len(shown) < len(records):
            self.state.count("records_held_back", len(records) - len(shown))
            if shown:
                follower.after_sequence_number = shown[-1]["SequenceNumber"]
            else:
                follower.upstream = upstream
        else:
            follower.upstream = document.get("NextShardIterator")
        if self.state.behaviours.read_limits:
            with self.state.lock:
                self.state.shard(iterator.stream, iterator.shard_id).read_bytes.spend(
                    sum(data_size(r) for r in shown)
                )
        self.state.count("records_read", len(shown))
        answer = dict(document, Records=shown)
        answer.pop("NextShardIterator", None)
        if follower.upstream is not None or follower.after_sequence_number is not None:
            answer["NextShardIterator"] = self.state.issue(follower)
        # else: a closed shard, read to its end
        return answer

    def _gives_empty_page(self, iterator: ProxyIterator) -> bool:
        settings = self.state.behaviours
        with self.state.lock:
            shard = self.state.shard(iterator.stream, iterator.shard_id)
            if shard.empty_pages_given < settings.empty_pages_first:
                shard.empty_pages_given += 1
                return True
            return self.state.random.random() < settings.empty_page_probability
