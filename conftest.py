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
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import requests
from botocore.exceptions import BotoCoreError, ClientError
from testcontainers.core.container import DockerContainer

from tests.clients import localstack_kinesis, localstack_service
from tests.kinesis_proxy import Behaviours, KinesisProxy, running_proxy

os.environ.setdefault("TESTCONTAINERS_RYUK_DISABLED", "true")

LOCALSTACK_IMAGE = "localstack/localstack:4.14.0"
REGION = "us-east-1"
STARTUP_DEADLINE_S = 90.0
THROTTLING_PROBABILITY = 0.3


def _wait_for_kinesis(url: str) -> None:
    deadline = time.monotonic() + STARTUP_DEADLINE_S
    last_error = "no answer yet"
    while time.monotonic() < deadline:
        try:
            services = requests.get(f"{url}/_localstack/health", timeout=2).json()["services"]
            if services.get("kinesis") in ("available", "running"):
                # LocalStack starts its Kinesis engine on the first call, which a busy
                # machine can refuse: the first test must not be the one to find out.
                localstack_kinesis(url).list_streams()
                return
            last_error = f"kinesis is {services.get('kinesis')!r}"
        except (
            requests.RequestException,
            ValueError,
            KeyError,
            BotoCoreError,
            ClientError,
        ) as error:
            last_error = str(error)
        time.sleep(0.5)
    raise RuntimeError(f"LocalStack at {url} not ready within {STARTUP_DEADLINE_S}s: {last_error}")


SUITES = ("unit", "integration", "aws")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to a suite: `make test` runs the suites by marker, so an
    unmarked test would silently run in none of them."""
    unmarked = [
        item.nodeid for item in items if not any(item.get_closest_marker(s) for s in SUITES)
    ]
    if unmarked:
        raise pytest.UsageError(f"tests without a unit/integration/aws marker: {unmarked}")


@contextmanager
def _localstack(**settings: str) -> Iterator[str]:
    # S3 holds the source's batch-end notes when checkpoints live there; STS assumes roles.
    container = DockerContainer(LOCALSTACK_IMAGE).with_env("SERVICES", "kinesis,s3,sts")
    # The emulator's artificial 500 ms delay on stream operations only slows tests.
    container.with_env("KINESIS_LATENCY", "0")
    for name, value in settings.items():
        container.with_env(name, value)
    container.ports["4566/tcp"] = ("127.0.0.1",)
    container.start()
    try:
        port = container.get_docker_client().port(container.get_container_id(), 4566)
        url = f"http://127.0.0.1:{port}"
        _wait_for_kinesis(url)
        yield url
    finally:
        container.stop()


@pytest.fixture(scope="session")
def kinesis_endpoint() -> Iterator[str]:
    """URL of a LocalStack Kinesis, fresh for this test session."""
    with _localstack() as url:
        yield url


@pytest.fixture(scope="session")
def throttled_kinesis_endpoint() -> Iterator[str]:
    """A LocalStack Kinesis with `KINESIS_ERROR_PROBABILITY` set.

    LocalStack injects its errors into PutRecord(s) only; reads are throttled by
    the `throttling_proxy` in front of it.
    """
    with _localstack(KINESIS_ERROR_PROBABILITY=str(THROTTLING_PROBABILITY)) as url:
        yield url


@pytest.fixture
def throttling_proxy(throttled_kinesis_endpoint: str) -> Iterator[KinesisProxy]:
    """A proxy refusing a seeded random share of reads, in front of the throttled LocalStack."""
    behaviours = Behaviours(random_throttling_probability=THROTTLING_PROBABILITY)
    with running_proxy(throttled_kinesis_endpoint, behaviours) as proxy:
        yield proxy


@pytest.fixture
def kinesis_proxy(kinesis_endpoint: str) -> Iterator[KinesisProxy]:
    """An AWS-faithful proxy in front of the session's LocalStack; every behaviour off.

    Tests switch behaviours on by assigning `kinesis_proxy.behaviours`
    (`Behaviours.aws()` for AWS's limits) and read what it did in `.events`.
    """
    with running_proxy(kinesis_endpoint) as proxy:
        yield proxy


@pytest.fixture(scope="session", autouse=True)
def _dummy_aws_credentials() -> None:
    # LocalStack accepts any key; fixed dummy values keep boto3 off the host's real profile.
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "test")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "test")
    os.environ.setdefault("AWS_DEFAULT_REGION", REGION)


@pytest.fixture(scope="session")
def localstack_kinesis_client() -> Callable[[str], Any]:
    """`localstack_kinesis`, for tests that talk to another LocalStack than `kinesis_endpoint`."""
    return localstack_kinesis


@pytest.fixture
def kinesis_client(kinesis_endpoint: str) -> Any:
    return localstack_kinesis(kinesis_endpoint)


@pytest.fixture
def s3_client(kinesis_endpoint: str) -> Any:
    """An S3 client of the session's LocalStack (the container its Kinesis runs in)."""
    return localstack_service(kinesis_endpoint, "s3")


@pytest.fixture
def s3_bucket(s3_client: Any) -> Iterator[str]:
    """A fresh bucket on the session's LocalStack S3, emptied and deleted after the test."""
    s3 = s3_client
    name = f"test-{uuid.uuid4().hex[:12]}"
    s3.create_bucket(Bucket=name)
    yield name
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=name):
        for entry in page.get("Contents", []):
            s3.delete_object(Bucket=name, Key=entry["Key"])
    s3.delete_bucket(Bucket=name)


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
