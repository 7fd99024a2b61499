"""The shard renewer: when to renew (plain functions), and renewing a real LocalStack stream."""

from __future__ import annotations

import logging
import threading

import pytest
from producer.renewal import (
    EXIT_OK,
    EXIT_STARTUP,
    Counted,
    ShardCounts,
    middle_hash_key,
    open_shards,
    run,
    run_renewals,
    shard_to_renew,
)
from producer.settings import ShardRenewalSettings
from producer.stream import wait_until_active
from producer_testkit import read_stream

from testkit.waiting import wait_until

pytestmark = pytest.mark.unit

FULL_RANGE = {"HashKeyRange": {"StartingHashKey": "0", "EndingHashKey": str(2**128 - 1)}}


def test_the_fullest_shard_is_renewed_once_it_reaches_the_limit():
    assert shard_to_renew({"a": 10, "b": 30, "c": 29}, limit=30) == "b"
    assert shard_to_renew({"a": 10, "b": 29}, limit=30) is None


def test_a_limit_of_zero_or_no_shards_renews_nothing():
    assert shard_to_renew({"a": 10**9}, limit=0) is None
    assert shard_to_renew({}, limit=1) is None


def test_the_split_cuts_the_hash_range_in_two_halves():
    assert middle_hash_key(FULL_RANGE) == str(2**127)
    small = {"HashKeyRange": {"StartingHashKey": "10", "EndingHashKey": "13"}}
    assert middle_hash_key(small) == "12"  # 10-11 and 12-13


def _put(kinesis_client, stream: str, count: int, tag: str) -> None:
    entries = [{"Data": f"{tag}-{i}".encode(), "PartitionKey": f"k{i}"} for i in range(count)]
    assert kinesis_client.put_records(StreamName=stream, Records=entries)["FailedRecordCount"] == 0


def test_counts_follow_what_each_open_shard_holds(kinesis_client, stream_factory):
    stream = stream_factory(2)
    counts = ShardCounts(kinesis_client, stream)
    assert sum(counts.refresh().values()) == 0
    _put(kinesis_client, stream, 40, "a")
    assert sum(counts.refresh().values()) == 40
    _put(kinesis_client, stream, 25, "b")
    assert sum(counts.refresh().values()) == 65  # read on from the last count, not again


def test_a_shard_closed_under_the_count_is_counted_to_its_end(kinesis_client, stream_factory):
    stream = stream_factory(1)
    counts = ShardCounts(kinesis_client, stream)
    _put(kinesis_client, stream, 30, "a")
    ((shard_id, held),) = counts.refresh().items()
    assert held == 30
    shard = open_shards(kinesis_client, stream)[0]
    kinesis_client.split_shard(
        StreamName=stream, ShardToSplit=shard_id, NewStartingHashKey=middle_hash_key(shard)
    )
    wait_until_active(kinesis_client, stream)
    # A count that listed the shard before it closed reads on from its end: no next iterator.
    assert counts._read_on(counts._counted[shard_id]) == Counted(None, 30)
    assert sorted(counts.refresh().values()) == [0, 0]  # the two children, empty


def test_a_full_shard_is_renewed_and_every_record_stays_readable(
    kinesis_endpoint, kinesis_client, stream_factory, caplog
):
    stream = stream_factory(2)
    before = open_shards(kinesis_client, stream)
    _put(kinesis_client, stream, 60, "before")
    settings = ShardRenewalSettings(
        kinesis_stream_name=stream,
        kinesis_endpoint_url=kinesis_endpoint,
        shard_renewal_records=20,
        shard_renewal_check_seconds=0.2,
    )
    stop = threading.Event()
    renewer = threading.Thread(target=run_renewals, args=(settings, kinesis_client, stop))
    with caplog.at_level(logging.INFO, logger="producer.renewal"):
        renewer.start()
        try:
            renewed = wait_until(
                lambda: (
                    not {s["ShardId"] for s in before}
                    & {s["ShardId"] for s in open_shards(kinesis_client, stream)}
                ),
                "both shards renewed",
            )
        finally:
            stop.set()
            renewer.join()
    assert renewed
    after = open_shards(kinesis_client, stream)
    assert [s["HashKeyRange"] for s in after] == [s["HashKeyRange"] for s in before]
    lines = [r.getMessage() for r in caplog.records if "renewed shard" in r.getMessage()]
    assert len(lines) >= 2, lines
    assert "SHARD_RENEWAL_RECORDS=20" in lines[0]
    _put(kinesis_client, stream, 10, "after")
    data = sorted(r["data"] for r in read_stream(kinesis_client, stream))
    expected = [f"before-{i}".encode() for i in range(60)] + [
        f"after-{i}".encode() for i in range(10)
    ]
    assert data == sorted(expected)


def test_renewal_refuses_real_aws(monkeypatch, caplog):
    monkeypatch.setenv("SHARD_RENEWAL_RECORDS", "100")
    monkeypatch.delenv("KINESIS_ENDPOINT_URL", raising=False)
    with caplog.at_level(logging.ERROR, logger="producer.renewal"):
        assert run() == EXIT_STARTUP
    assert "runs only against LocalStack" in caplog.text


def test_renewal_off_exits_at_once(monkeypatch, caplog):
    monkeypatch.setenv("SHARD_RENEWAL_RECORDS", "0")
    with caplog.at_level(logging.INFO, logger="producer.renewal"):
        assert run() == EXIT_OK
    assert "shard renewal is off (SHARD_RENEWAL_RECORDS=0)" in caplog.text


def test_a_bad_value_names_the_variable(monkeypatch, caplog):
    monkeypatch.setenv("SHARD_RENEWAL_RECORDS", "many")
    with caplog.at_level(logging.ERROR, logger="producer.renewal"):
        assert run() == EXIT_STARTUP
    assert "SHARD_RENEWAL_RECORDS='many' is invalid" in caplog.text
