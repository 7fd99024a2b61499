"""`python -m settings_docs` (`make docs`): writes `.env.example` and the settings
table of `docs/configuration.md`.

With `--check` it writes nothing and exits 1 when either file is out of date.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from consumer.settings import ConsumerSettings
from kinesis_connection import KinesisConnection
from kinesis_proxy import ProxySettings
from producer.settings import ProducerSettings, ShardRenewalSettings

from settings_docs.render import (
    Section,
    env_example,
    settings,
    settings_table,
    with_settings_table,
)
from settings_docs.stack import (
    ClusterSettings,
    ConnectServerSettings,
    ConsumerContainerSettings,
    KinesisProxyContainerSettings,
    LocalStackSettings,
    NotebookSettings,
    RealAwsSettings,
)

ROOT = Path(__file__).resolve().parents[1]
SECTIONS = (
    Section(
        "Kinesis (producer, consumer and LocalStack)",
        (KinesisConnection, ProducerSettings),
        only=(*KinesisConnection.model_fields, "kinesis_shard_count"),
    ),
    Section("LocalStack", (LocalStackSettings,)),
    Section("Producer", (ProducerSettings,)),
    Section("Shard renewal (LocalStack only)", (ShardRenewalSettings,)),
    Section("Consumer (Spark)", (ConsumerSettings, ConsumerContainerSettings)),
    Section("Cluster profile", (ClusterSettings,)),
    Section("Spark Connect profile", (ConnectServerSettings,)),
    Section("Notebook profile", (NotebookSettings,)),
    Section("Real AWS (docker-compose.aws.yml)", (RealAwsSettings,)),
    Section(
        "Kinesis proxy (docker-compose.proxy.yml, make up-proxy)",
        (KinesisProxyContainerSettings, ProxySettings),
    ),
)


def generated() -> dict[Path, str]:
    """Each generated file's path and its content as the settings classes have it now."""
    documented = settings(SECTIONS)
    configuration = ROOT / "docs" / "configuration.md"
    return {
        ROOT / ".env.example": env_example(documented),
        configuration: with_settings_table(configuration.read_text(), settings_table(documented)),
    }


def main() -> int:
    parser = argparse.ArgumentParser(prog="settings_docs", description=__doc__)
    parser.add_argument("--check", action="store_true", help="exit 1 if a file is out of date")
    stale = [path for path, text in generated().items() if path.read_text() != text]
    if parser.parse_args().check:
        for path in stale:
            print(f"{path.name} is out of date: run `make docs`", file=sys.stderr)
        return 1 if stale else 0
    for path, text in generated().items():
        path.write_text(text)
    print("wrote .env.example and the settings table of docs/configuration.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
