"""The stack as a daily tool: one-off Spark scripts, and a look into the stream without Spark.

A one-off process in the consumer image starts Spark however it is started: through the
image's entrypoint, past it (`--entrypoint python`), or inside the running consumer
(`docker compose exec`). The cluster profile, where executors reach the driver, is
checked in test_cluster.py.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

SCRIPT = Path(__file__).parent / "scripts" / "tutorial_rows.py"


@pytest.mark.parametrize(
    "command",
    [
        pytest.param(["run", "--rm", "-T", "consumer", "python", "-"], id="run"),
        pytest.param(
            ["run", "--rm", "-T", "--entrypoint", "python", "consumer", "-"],
            id="run, past the image's entrypoint",
        ),
        pytest.param(["exec", "-T", "consumer", "python", "-"], id="exec in the running consumer"),
    ],
)
def test_a_one_off_spark_script_prints_the_tutorials_five_rows(stack, command):
    answer = stack.run(*command, check=False, input=SCRIPT.read_text())
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
