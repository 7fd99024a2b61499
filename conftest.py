"""Fixtures shared by every test folder: a real LocalStack Kinesis for the unit suites.

The unit suites talk to the same emulator the Compose stack runs
(`localstack/localstack:4.14.0`), started once per test session with
testcontainers and published on 127.0.0.1 only. Ryuk, testcontainers' reaper,
cannot be pulled on registry-less machines, so the container is removed by the
fixture itself.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Iterator

import boto3
import pytest
import requests
from testcontainers.core.container import DockerContainer

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
REGION = "us-east-1"
STARTUP_DEADLINE_S = 90.0


def _wait_for_kinesis(url: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            services = requests.get(f"{url}/_localstack/health", timeout=2).json()["services"]
            if services.get("kinesis") in ("available", "running"):
                return
            last_error = f"kinesis is {services.get('kinesis')!r}"
        except (requests.RequestException, ValueError, KeyError) as error:
            last_error = str(error)
        time.sleep(0.5)
    raise RuntimeError(f"LocalStack at {url} not ready within {STARTUP_DEADLINE_S}s: {last_error}")


@pytest.fixture(scope="session")
def kinesis_endpoint() -> Iterator[str]:
    """URL of a LocalStack Kinesis, fresh for this test session."""
    container = DockerContainer(LOCALSTACK_IMAGE).with_env("SERVICES", "kinesis")
    # Tests inject their own faults; the emulator's artificial 500 ms delay only slows them.
    container.with_env("KINESIS_LATENCY", "0")
    container.ports["4566/tcp"] = ("127.0.0.1",)
    container.start()
    try:
        port = container.get_docker_client().port(container.get_container_id(), 4566)
        url = f"http://127.0.0.1:{port}"
        _wait_for_kinesis(url)
        yield url
    finally:
        container.stop()


@pytest.fixture(scope="session", autouse=True)
def _dummy_aws_credentials() -> None:
    # LocalStack accepts any key; fixed dummy values keep boto3 off the host's real profile.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


@pytest.fixture
def kinesis_client(kinesis_endpoint: str):  # type: ignore[no-untyped-def]
    return boto3.client("kinesis", endpoint_url=kinesis_endpoint, region_name=REGION)


@pytest.fixture
def stream_factory(kinesis_client):  # type: ignore[no-untyped-def]
    """Creates uniquely named ACTIVE streams and deletes them after the test."""
    created: list[str] = []

    def create(shards: int = 1) -> str:
        name = f"test-{uuid.uuid4().hex[:12]}"
        kinesis_client.create_stream(StreamName=name, ShardCount=shards)
        kinesis_client.get_waiter("stream_exists").wait(
            StreamName=name, WaiterConfig={"Delay": 0.2, "MaxAttempts": 300}
        )
        created.append(name)
        return name

    yield create
    for name in created:
        kinesis_client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
