"""The stack as a daily tool: one-off Spark scripts, and a look into the stream without Spark.

The consumer service sets SPARK_LOCAL_HOSTNAME=consumer for the cluster profile;
a one-off container does not answer to that name, and its entrypoint drops it.
The cluster profile, which needs the name, is checked in test_cluster.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parent / "scripts" / "tutorial_rows.py"


@pytest.mark.parametrize(
    "local_hostname",
    [
        pytest.param([], id="the service's own name, which is another container's"),
        pytest.param(["-e", "SPARK_LOCAL_HOSTNAME=nobody-here"], id="a name nothing answers to"),
    ],
)
def test_a_one_off_spark_script_prints_the_tutorials_five_rows(stack, local_hostname):
    answer = stack.run(
        "run", "--rm", "-T", *local_hostname, "consumer", "python", "-",
        check=False,
        input=SCRIPT.read_text(),
    )  # fmt: skip
    assert answer.returncode == 0, answer.stderr[-3000:]
    rows = [json.loads(line) for line in answer.stdout.splitlines() if line.startswith("{")]
    assert sorted(row["count"] for row in rows) == [1, 2, 3, 4, 5], answer.stdout


def test_make_tail_prints_what_the_producer_wrote(stack):
    # `make tail` is `docker compose run --rm --no-deps producer tail`.
    answer = stack.run(
        "run", "--rm", "--no-deps", "-T", "producer", "tail", "--from-start", "--max-records", "3"
    )  # fmt: skip
    lines = [json.loads(line) for line in answer.stdout.splitlines()]
    assert len(lines) == 3, answer.stdout
    for line in lines:
        assert line["shard"].startswith("shardId-")
        assert line["sequence_number"].isdigit()
        assert line["data"]["event_id"] in stack.expected


def test_awslocal_in_the_localstack_container_shows_the_stream(stack):
    answer = stack.run(
        "exec", "-T", "localstack", "awslocal", "kinesis", "describe-stream-summary",
        "--stream-name", "events",
    )  # fmt: skip
    summary = json.loads(answer.stdout)["StreamDescriptionSummary"]
    assert summary["StreamStatus"] == "ACTIVE"
    assert summary["OpenShardCount"] == stack.shards
