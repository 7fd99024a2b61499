"""Host-side clients of a LocalStack, built by localstack-client as the producer's
`--localstack` builds its own: the emulator's endpoint and dummy keys, no boilerplate."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

import localstack_client.session

REGION = "us-east-1"


def localstack_kinesis(url: str, **client_options: Any) -> Any:
    """A Kinesis client of the LocalStack (or the proxy in front of one) at `url`;
    `client_options` go to boto3 (a botocore `config`, say)."""
    return localstack_service(url, "kinesis", **client_options)


def localstack_service(url: str, service: str, **client_options: Any) -> Any:
    """A client of `service` (kinesis, s3, sts) of the LocalStack at `url`."""
    session = localstack_client.session.Session(
        localstack_host=urlparse(url).netloc, region_name=REGION
    )
    return session.client(service, **client_options)
