"""What the compose files start: the shard renewer runs against LocalStack only."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

pytestmark = pytest.mark.unit

ROOT = Path(__file__).resolve().parents[1]


def _services(*files: str) -> set[str]:
    """The services `docker compose up` would start with these files (no profile)."""
    options = [item for name in files for item in ("-f", name)]
    # The AWS overlay asks for these (${NAME:?...}); any value does for `config`.
    env = {**os.environ, "KINESIS_STREAM_NAME": "events", "AWS_REGION": "eu-west-1"}
    answer = subprocess.run(
        ["docker", "compose", *options, "config", "--services"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=True,
    )
    return set(answer.stdout.split())


def test_the_local_stack_renews_shards():
    assert "shard-renewer" in _services("docker-compose.yml")


def test_the_aws_overlay_never_starts_the_shard_renewer():
    assert "shard-renewer" not in _services("docker-compose.yml", "docker-compose.aws.yml")
