"""Fixtures shared by every test folder: a real LocalStack Kinesis for the unit suites.

The unit suites talk to the same emulator the Compose stack runs
(`localstack/localstack:4.14.0`, see testkit/localstack.py), started once per
test session and published on 127.0.0.1 only.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kinesis_proxy import Behaviours, KinesisProxy, running_proxy

from testkit.clients import REGION, localstack_kinesis, localstack_service
from testkit.localstack import running_localstack
from testkit.streams import wait_active

SERVICES = "kinesis,s3,sts"
THROTTLING_PROBABILITY = 0.3

SUITES = ("unit", "integration", "aws")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test belongs to a suite: `make test` runs the suites by marker, so an
    unmarked test would silently run in none of them."""
    unmarked = [
        item.nodeid for item in items if not any(item.get_closest_marker(s) for s in SUITES)
    ]
    if unmarked:
        raise pytest.UsageError(f"tests without a unit/integration/aws marker: {unmarked}")


@pytest.fixture(scope="session")
def kinesis_endpoint() -> Iterator[str]:
    """URL of a LocalStack Kinesis, fresh for this test session."""
    # S3 holds the source's batch-end notes when checkpoints live there; STS assumes roles.
    with running_localstack(SERVICES) as url:
        yield url


@pytest.fixture(scope="session")
def throttled_kinesis_endpoint() -> Iterator[str]:
    """A LocalStack Kinesis with `KINESIS_ERROR_PROBABILITY` set.

    LocalStack injects its errors into PutRecord(s) only; reads are throttled by
    the `throttling_proxy` in front of it.
    """
    with running_localstack(SERVICES, KINESIS_ERROR_PROBABILITY=str(THROTTLING_PROBABILITY)) as url:
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
        wait_active(kinesis_client, name)
        created.append(name)
        return name

    yield create
    for name in created:
        kinesis_client.delete_stream(StreamName=name, EnforceConsumerDeletion=True)
