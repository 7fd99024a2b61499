"""The consumer's log set-up: its own lines at CONSUMER_LOG_LEVEL, its libraries' at WARNING.

At INFO, py4j logs every call the JVM makes into Python ("Received command c on
object id p0" between batches) and botocore at DEBUG logs signed request
headers: libraries stay at WARNING whatever the consumer's level, so the
console reads like the tutorial's and no credential reaches the log.
"""

from __future__ import annotations

import logging
import sys

THIRD_PARTY_LOGGERS = ("py4j", "botocore", "boto3", "urllib3", "s3transfer")


def configure_logging(level: str) -> None:
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr)
    logging.getLogger().setLevel(level)
    for name in THIRD_PARTY_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
