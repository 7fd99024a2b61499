"""Where the stack's services find Kinesis: one settings class, one set of checks, one
error format.

The producer's and the consumer's settings classes extend `KinesisConnection`,
so KINESIS_STREAM_NAME, AWS_REGION and KINESIS_ENDPOINT_URL are declared here
only, and a bad value is refused with the same words by either service. AWS
credentials are deliberately not settings: boto3's default chain finds them
(docker-compose.yml passes LocalStack's dummies).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from pydantic import BaseModel, Field, ValidationError
from pydantic_settings import BaseSettings, SettingsConfigDict

# The endpoint docker-compose.yml gives the services (and the Kinesis proxy forwards to);
# the classes' own default is real AWS.
LOCALSTACK_URL = "http://localstack:4566"


class KinesisConnection(BaseSettings):
    """The stream and how to reach it: the settings every service of the stack shares.

    Each `description` is what the variable accepts (errors quote it); the string
    under each field documents it (`make docs` copies it into `.env.example` and
    the table of docs/configuration.md).
    """

    # Compose passes unset optional variables as empty strings: treat them as unset.
    model_config = SettingsConfigDict(env_ignore_empty=True, extra="ignore")

    kinesis_stream_name: str = Field(
        "events",
        min_length=1,
        max_length=128,
        pattern=r"^[a-zA-Z0-9_.-]+$",
        description="a stream name of 1 to 128 characters from a-z, A-Z, 0-9, '_', '.', '-'",
    )
    """Name of the stream the producer writes and the consumer reads."""
    aws_region: str = Field(
        "us-east-1",
        pattern=r"^[a-z]{2}(-[a-z]+)+-\d+$",
        description="an AWS region name such as us-east-1",
    )
    """AWS region of the stream (LocalStack accepts any)."""
    kinesis_endpoint_url: str | None = Field(
        None,
        json_schema_extra={"stack_default": LOCALSTACK_URL},
        pattern=r"^https?://[^\s/]+\S*$",
        description=f"an http(s) URL such as {LOCALSTACK_URL}, or unset/empty for real AWS",
    )
    """Kinesis endpoint; the compose default points at LocalStack. Empty means real AWS
    (see docker-compose.aws.yml)."""


class SettingsError(ValueError):
    """Invalid configuration; the message is one line naming each variable and its fix."""


def configuration_error(
    error: ValidationError, settings_class: type[BaseModel], options: Mapping[str, str]
) -> SettingsError:
    """The services' one way to say what is wrong: `NAME='value' is invalid (why): expected
    what it accepts`, problems joined on one line. `options` maps a field to the command-line
    option it came from, so that the error names the option as well as the variable."""
    return SettingsError(
        "; ".join(_describe(problem, settings_class, options) for problem in error.errors())
    )


def _describe(problem: Any, settings_class: type[BaseModel], options: Mapping[str, str]) -> str:
    field = str(problem["loc"][0]) if problem["loc"] else ""
    info = settings_class.model_fields.get(field)
    name = field.upper() or "settings"
    if field in options:
        name += f" ({options[field]})"
    expected = f": expected {info.description}" if info and info.description else ""
    return f"{name}={problem.get('input')!r} is invalid ({problem['msg']}){expected}"
