"""What LocalStack's own fault injection does, as the settings' documentation says it."""

from __future__ import annotations

import pytest

from testkit.streams import wait_active

pytestmark = pytest.mark.unit

CALLS = 60


def test_kinesis_error_probability_refuses_whole_putrecords_calls(
    throttled_kinesis_endpoint, localstack_kinesis_client
):
    # KINESIS_ERROR_PROBABILITY (settings_docs.stack): a share of calls, each refused entry
    # by entry (HTTP 200, an ErrorCode on every entry), never a part of a call.
    client = localstack_kinesis_client(throttled_kinesis_endpoint)
    client.create_stream(StreamName="refused-calls", ShardCount=2)
    wait_active(client, "refused-calls")
    entries = [{"Data": b"x", "PartitionKey": f"key-{n}"} for n in range(10)]
    failed = [
        sum("ErrorCode" in result for result in answer["Records"])
        for answer in (
            client.put_records(StreamName="refused-calls", Records=entries) for _ in range(CALLS)
        )
    ]
    client.delete_stream(StreamName="refused-calls")
    assert set(failed) == {0, len(entries)}
