"""Variables only the compose files read, as settings classes.

No service loads these classes: they give the Compose-only variables the same
one source as the services' settings (a type, a default, one line of docs
under each field), for `make docs` and for the test that holds the compose
files' defaults to them.
"""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings


class LocalStackSettings(BaseSettings):
    localstack_port: int = Field(4566, ge=1, le=65535)
    """Host port of LocalStack's gateway, published on 127.0.0.1 only."""
    kinesis_latency: int = Field(0, ge=0)
    """Artificial delay on stream operations, in ms (LocalStack's default is 500; 0
    keeps tests fast)."""
    kinesis_error_probability: float = Field(0.0, ge=0.0, le=1.0)
    """Share of PutRecord(s) calls LocalStack refuses on purpose (fault injection), 0.0 to
    1.0; a refused PutRecords fails every entry."""
    localstack_persistence: int = Field(1, ge=0, le=1)
    """1 keeps streams and records across LocalStack restarts (in the localstack-data volume)."""
    kinesis_mock_persist_interval: str = Field("10m", pattern=r"^\d+(ms|s|m|h)$")
    """How often kinesis-mock also saves every record it holds while running (calls wait for a
    save); it always saves when LocalStack stops."""


class KinesisProxyContainerSettings(BaseSettings):
    kinesis_proxy_port: int = Field(4567, ge=1, le=65535)
    """Host port of the Kinesis proxy (make up-proxy), on 127.0.0.1 only."""


class ConsumerContainerSettings(BaseSettings):
    spark_ui_port: int = Field(4040, ge=1, le=65535)
    """Host port of the consumer's Spark UI, on 127.0.0.1 only."""


class ClusterSettings(BaseSettings):
    spark_master_ui_port: int = Field(8080, ge=1, le=65535)
    """Host port of the standalone master's UI, on 127.0.0.1 only."""
    spark_worker_cores: int = Field(1, ge=1)
    """Cores each of the two workers offers."""
    spark_worker_memory: str = Field("1g", pattern=r"^\d+[kmgt]$")
    """Memory each of the two workers offers, e.g. 1g or 512m."""


class ConnectServerSettings(BaseSettings):
    spark_connect_port: int = Field(15002, ge=1, le=65535)
    """Host port of the Spark Connect server (connect profile), on 127.0.0.1 only:
    SparkSession.builder.remote("sc://localhost:15002")."""


class NotebookSettings(BaseSettings):
    jupyter_token: str | None = None
    """JupyterLab's token; empty: Jupyter makes one up and prints it (docker compose
    logs notebook)."""
    jupyter_port: int = Field(8888, ge=1, le=65535)
    """Host port of JupyterLab, on 127.0.0.1 only."""
    jupyter_uid: int = 10001
    """The uid JupyterLab runs as; your own (id -u) lets it save into ./notebooks."""
    jupyter_gid: int = 10001
    """The gid JupyterLab runs as; your own (id -g) lets it save into ./notebooks."""
    notebook_stream_name: str = "tutorial-notebook"
    """The stream the notebook creates, fills and deletes (not the stack's events stream)."""
    notebook_spark_remote: str | None = Field(None, pattern=r"^sc://")
    """Spark Connect server the notebook's Spark runs on, e.g. sc://spark-connect:15002 (with
    the connect profile); empty: Spark runs in the notebook's kernel."""


class RealAwsSettings(BaseSettings):
    aws_config_dir: str = "~/.aws"
    """Host folder with your AWS config and credentials, mounted read-only into
    producer and consumer."""
